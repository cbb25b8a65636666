"""Cluster capacity from slurmctld's nodes and partitions, per CPU architecture.

Called by `adapter.SlurmProvider.read_capacity` (the capacity snapshots that
metrics are served from; a scrape never calls this). Per node, over REST:
`cpus`/`alloc_cpus`, `real_memory`/`alloc_memory` (MiB) and GPUs from
`gres`/`gres_used`. A node that cannot take new work (down, drained or
draining, failing, powered down, or in no partition that is UP) counts its
idle part as `reserved`: its running jobs still use what they hold, but
nothing new can be placed there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from controlplane.vocabulary import Architecture, ResourceClass
from providers.base import CapacityEntry, CapacityReport
from providers.slurm.session import SlurmSession
from providers.slurm.tres import gres_gpus

_UNUSABLE_STATES: Final = frozenset({"down", "future", "unknown", "error"})
_UNUSABLE_FLAGS: Final = frozenset({
    "DRAIN", "DRAINED", "DRAINING", "FAIL", "MAINTENANCE", "NOT_RESPONDING",
    "POWERED_DOWN", "POWERING_DOWN", "POWER_DOWN", "REBOOT_ISSUED", "REBOOT_REQUESTED",
})


@dataclass
class _Tally:
    total: int = 0
    reserved: int = 0
    used: int = 0


def _architecture(value: object) -> Architecture | None:
    # Nodes report `uname -m`, the spelling Architecture uses; an
    # architecture Yunguan has no word for is counted without one.
    try:
        return Architecture(str(value))
    except ValueError:
        return None


def _accepts_work(node: Mapping[str, Any], up_partitions: set[str]) -> bool:
    if str(node.get("state") or "").lower() in _UNUSABLE_STATES:
        return False
    flags = {str(f).upper() for f in node.get("state_flags") or ()}
    if flags & _UNUSABLE_FLAGS:
        return False
    return any(p in up_partitions for p in node.get("partitions") or ())


def _int(value: object) -> int:
    return value if isinstance(value, int) and value > 0 else 0


def capacity_from(
    nodes: list[Mapping[str, Any]], partitions: list[Mapping[str, Any]], observed_at: datetime
) -> CapacityReport:
    up_partitions = {
        str(p.get("name")) for p in partitions if str(p.get("state") or "").upper() == "UP"
    }
    tallies: dict[tuple[ResourceClass, Architecture | None], _Tally] = {}
    for node in nodes:
        arch = _architecture(node.get("architecture"))
        usable = _accepts_work(node, up_partitions)
        for rc, total, used in (
            (ResourceClass.HPC_CPU, _int(node.get("cpus")), _int(node.get("alloc_cpus"))),
            (ResourceClass.MEMORY_MIB, _int(node.get("real_memory")),
             _int(node.get("alloc_memory"))),
            (ResourceClass.HPC_GPU, gres_gpus(node.get("gres")), gres_gpus(node.get("gres_used"))),
        ):
            tally = tallies.setdefault((rc, arch), _Tally())
            tally.total += total
            tally.used += used
            if not usable:
                tally.reserved += max(total - used, 0)
    entries = tuple(
        CapacityEntry(resource_class=rc, architecture=arch, total=t.total,
                      reserved=t.reserved, used=t.used)
        for (rc, arch), t in sorted(tallies.items(), key=lambda kv: (kv[0][0], kv[0][1] or ""))
    )
    return CapacityReport(entries=entries, observed_at=observed_at)


def read_capacity(session: SlurmSession) -> CapacityReport:
    nodes = session.rest.slurm("GET", "nodes").body.get("nodes") or []
    partitions = session.rest.slurm("GET", "partitions").body.get("partitions") or []
    return capacity_from(list(nodes), list(partitions), datetime.now(UTC))
