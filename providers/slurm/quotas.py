"""Quotas as association limits: written with sacctmgr, read from slurmdbd and slurmctld.

Called by `adapter.SlurmProvider` for tenants (project accounts) and scopes
(their ancestors). The mapping table lives in `tres`.

Why association limits written by sacctmgr, and not a per-tenant QOS over REST:

- Only association limits nest. slurmctld checks a job against the GrpTRES
  of its account *and every ancestor account*, so a prefecture's limit caps
  the sum of its departments. A job carries exactly one QOS, so per-tenant
  QOS cannot express province → prefecture → department → project.
- The ancestors need association limits anyway, and slurmrestd 22.05 cannot
  change an existing association's GrpTRES (five request shapes tried; at
  best one in nine applied, replacing the whole TRES list). A QOS for the
  leaves plus sacctmgr for the ancestors would be two mechanisms and two
  sources of truth; QOS limits also override association limits by default.
- `sacctmgr modify account … set GrpTRES=cpu=4` merges into the existing
  TRES list, so "overwrite only the given keys" is native; the change reaches
  slurmctld in about a second and releases pending jobs (2–5 s measured with
  the testbed's sched_interval=5).
- (Had QOS been chosen: v0.0.38 wants the request key `QOS`, not the schema's
  `qos`, and `GET qos/<absent>` answers 200 with an empty list.)

Reads: the limits come from slurmdbd over REST (what is stored), the in-use
numbers from `scontrol show assoc_mgr` (what slurmctld enforces right now,
including sub-accounts and the decayed core-minutes a GrpTRESMins budget is
charged with); REST v0.0.38 reports an association's usage as null.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

from controlplane.vocabulary import ResourceClass
from providers.base import ProviderNotFound, ProviderRejected, QuotaReading
from providers.slurm.naming import is_safe_account
from providers.slurm.session import SlurmSession
from providers.slurm.tenants import Tenants
from providers.slurm.tres import (
    GRP_TRES,
    GRP_TRES_MINS,
    SUPPORTED,
    limits_from_association,
    minutes_to_units,
    sacctmgr_limits,
)

# "cpu=4(1)" / "gres/gpu=N(0)": limit (N = none) and, in parentheses, usage.
_USAGE_ITEM: Final = re.compile(r"([\w/:.-]+)=[^(,]*\((\d+)\)")


def parse_assoc_mgr_usage(output: str, account: str) -> dict[str, dict[str, int]]:
    """From `scontrol -o show assoc_mgr accounts=A flags=assoc`, the usage of
    the account's own association: {"GrpTRES": {tres: n}, "GrpTRESMins": {…}}.
    Empty when slurmctld has not cached the association yet (it has no jobs then)."""
    for line in output.splitlines():
        if not line.startswith("ClusterName="):
            continue
        fields = dict(part.partition("=")[::2] for part in line.split(" ") if "=" in part)
        if fields.get("Account") != account or fields.get("UserName"):
            continue
        return {
            key: {tres: int(used) for tres, used in _USAGE_ITEM.findall(fields.get(key, ""))}
            for key in ("GrpTRES", "GrpTRESMins")
        }
    return {}


class Quotas:
    def __init__(self, session: SlurmSession, tenants: Tenants) -> None:
        self._s = session
        self._tenants = tenants

    def set_limits(self, account: str, limits: Mapping[ResourceClass, int]) -> None:
        """Overwrites exactly the given classes of the account's association."""
        unknown = set(limits) - SUPPORTED
        if unknown:  # the adapter checks first; this guards direct callers
            raise ProviderRejected(f"unmapped classes {sorted(unknown)}", cloud=self._s.cloud)
        if not limits:
            return
        if not is_safe_account(account):
            raise ProviderNotFound(f"no Yunguan Slurm account {account!r}", cloud=self._s.cloud)
        # "Nothing modified" (no such association) becomes ProviderNotFound in
        # the runner; setting a value it already has still answers "Modified".
        self._s.cli.sacctmgr(
            "modify", "account", "where", f"name={account}", f"cluster={self._s.cluster}",
            "set", *sacctmgr_limits(limits),
        )

    def read(self, account: str) -> QuotaReading:
        association = (
            self._tenants.account_association(account) if is_safe_account(account) else None
        )
        if association is None:
            raise ProviderNotFound(f"no Slurm account {account!r}", cloud=self._s.cloud)
        return QuotaReading(limits=limits_from_association(association),
                            in_use=self.in_use(account))

    def in_use(self, account: str) -> dict[ResourceClass, int]:
        output = self._s.cli.scontrol(
            "-o", "show", "assoc_mgr", f"accounts={account}", "flags=assoc"
        )
        usage = parse_assoc_mgr_usage(output, account)
        grp, grp_mins = usage.get("GrpTRES", {}), usage.get("GrpTRESMins", {})
        in_use = {rc: grp.get(tid, 0) for rc, tid in GRP_TRES.items()}
        for rc, (tid, per_unit) in GRP_TRES_MINS.items():
            in_use[rc] = minutes_to_units(grp_mins.get(tid, 0), per_unit)
        return in_use

    def zero_all(self, account: str) -> None:
        """Every managed limit to 0: no new job starts, running ones finish."""
        self.set_limits(account, dict.fromkeys(SUPPORTED, 0))
