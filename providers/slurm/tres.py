"""The adapter's one mapping table between Yunguan resource classes and Slurm TRES,
and the parsers for the ways Slurm writes TRES down.

Used by `quotas` (limits and usage), `capacity` (gres strings) and
`inventory` (per-job TRES).

==================  ==========================  =====================================
resource class      Slurm limit                 unit
==================  ==========================  =====================================
hpc_cpu             GrpTRES cpu                 CPUs in use at once
hpc_gpu             GrpTRES gres/gpu            GPUs in use at once
memory_mib          GrpTRES mem                 MiB in use at once (Slurm's "M")
hpc_core_hours      GrpTRESMins cpu             core-hours; Slurm stores minutes (×60)
==================  ==========================  =====================================
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any, Final

from controlplane.vocabulary import ResourceClass

# Concurrent limits (GrpTRES): class -> TRES id as sacctmgr and tres strings spell it.
GRP_TRES: Final[Mapping[ResourceClass, str]] = {
    ResourceClass.HPC_CPU: "cpu",
    ResourceClass.HPC_GPU: "gres/gpu",
    ResourceClass.MEMORY_MIB: "mem",
}
# Budgets (GrpTRESMins): class -> (TRES id, minutes per unit of the class).
GRP_TRES_MINS: Final[Mapping[ResourceClass, tuple[str, int]]] = {
    ResourceClass.HPC_CORE_HOURS: ("cpu", 60),
}
SUPPORTED: Final = frozenset(GRP_TRES) | frozenset(GRP_TRES_MINS)

_MEM_FACTORS_MIB: Final = {"K": 1 / 1024, "M": 1, "G": 1024, "T": 1024**2, "P": 1024**3}
_GPU_GRES: Final = re.compile(r"(?:^|,)gpu(?::[\w.-]+)?:(\d+)")


def tres_id(entry: Mapping[str, Any]) -> str:
    """`{"type": "gres", "name": "gpu"}` → `gres/gpu`; `{"type": "cpu"}` → `cpu`."""
    kind, name = entry.get("type") or "", entry.get("name")
    return f"{kind}/{name}" if name else str(kind)


def tres_list(entries: Iterable[Mapping[str, Any]] | None) -> dict[str, int]:
    """A REST TRES list (`[{"type", "name", "count"}]`) as {tres id: count}."""
    out: dict[str, int] = {}
    for entry in entries or ():
        count = entry.get("count")
        if isinstance(count, int):
            out[tres_id(entry)] = count
    return out


def _mem_mib(value: str) -> int:
    unit = value[-1:].upper()
    if unit in _MEM_FACTORS_MIB:
        return math.ceil(float(value[:-1]) * _MEM_FACTORS_MIB[unit])
    return int(float(value))  # no suffix: Slurm's default unit is M


def tres_string(text: str | None) -> dict[str, int]:
    """`cpu=1,mem=512M,node=1,billing=1,gres/gpu=1` → {"cpu": 1, "mem": 512, …} (mem in MiB).

    Unparsable items are skipped: these strings only feed observed usage,
    never enforcement, and one odd TRES must not hide the others."""
    out: dict[str, int] = {}
    for item in (text or "").split(","):
        key, sep, value = item.strip().partition("=")
        if not sep or not value:
            continue
        try:
            out[key] = _mem_mib(value) if key == "mem" else int(float(value))
        except ValueError:
            continue
    return out


def gres_gpus(text: str | None) -> int:
    """GPUs in a node's `gres`/`gres_used`: `gpu:2`, `gpu:a100:1(IDX:0),gpu:v100:2`."""
    return sum(int(m) for m in _GPU_GRES.findall(text or ""))


def resources(tres: Mapping[str, int]) -> dict[ResourceClass, int]:
    """Concurrent resources of a job or an account, in Yunguan's classes."""
    return {rc: tres[tid] for rc, tid in GRP_TRES.items() if tid in tres}


def limits_from_association(association: Mapping[str, Any]) -> dict[ResourceClass, int | None]:
    """The managed limits of an association from slurmdbd (None = unlimited).

    v0.0.38 returns GrpTRES under `max.tres.total` and GrpTRESMins under
    `max.tres.group.minutes` (not `max.tres.minutes.total`, which is empty
    whatever sacctmgr set)."""
    tres = (association.get("max") or {}).get("tres") or {}
    grp = tres_list(tres.get("total"))
    grp_mins = tres_list((tres.get("group") or {}).get("minutes"))
    limits: dict[ResourceClass, int | None] = {rc: grp.get(tid) for rc, tid in GRP_TRES.items()}
    for rc, (tid, per_unit) in GRP_TRES_MINS.items():
        minutes = grp_mins.get(tid)
        # Floor: a budget of 90 minutes set by hand grants one whole core-hour.
        limits[rc] = None if minutes is None else minutes // per_unit
    return limits


def sacctmgr_limits(limits: Mapping[ResourceClass, int]) -> list[str]:
    """`set` arguments for sacctmgr that touch exactly the given classes.

    sacctmgr merges TRES lists (`GrpTRES=cpu=4` leaves mem and gres/gpu as they
    were), which is exactly the port's "overwrite only the given keys"."""
    grp = [f"{GRP_TRES[rc]}={limits[rc]}" for rc in GRP_TRES if rc in limits]
    mins = [f"{tid}={limits[rc] * per}" for rc, (tid, per) in GRP_TRES_MINS.items() if rc in limits]
    args = []
    if grp:
        args.append("GrpTRES=" + ",".join(grp))
    if mins:
        args.append("GrpTRESMins=" + ",".join(mins))
    return args


def minutes_to_units(minutes: int, per_unit: int) -> int:
    """Usage rounds up: a tenant that ran for one core-minute has touched its first hour."""
    return math.ceil(minutes / per_unit)
