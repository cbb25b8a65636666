"""Is the cluster manageable? slurmctld answers ping and slurmdbd answers a query.

Called by `adapter.SlurmProvider.check_health`. Never raises for "down":
every ProviderError becomes a failed check with its code, so the report says
*why* (auth refused vs. unreachable). Both daemons are needed: slurmctld
runs the jobs and enforces limits, slurmdbd stores the accounts and limits
this adapter writes.
"""

from __future__ import annotations

import time

from providers.base import HealthReport, ProviderError
from providers.slurm.session import SlurmSession


def _ping_slurmctld(session: SlurmSession) -> str:
    pings = session.rest.slurm("GET", "ping").body.get("pings") or []
    # With a backup controller the list has two entries; one UP is enough.
    states = [f"{p.get('hostname')}={p.get('ping')}" for p in pings]
    if any(str(p.get("ping")).upper() == "UP" for p in pings):
        return "up"
    return "down: " + (", ".join(states) or "no controller answered ping")


def _query_slurmdbd(session: SlurmSession) -> str:
    # /tres is the cheapest query that reaches slurmdbd: with slurmdbd gone
    # it answers error 7000 (under HTTP 200), which the client maps.
    session.rest.slurmdb("GET", "tres")
    return "up"


def check_health(session: SlurmSession) -> HealthReport:
    started = time.monotonic()
    checks: dict[str, str] = {}
    for name, probe in (("slurmctld", _ping_slurmctld), ("slurmdbd", _query_slurmdbd)):
        try:
            checks[name] = probe(session)
        except ProviderError as exc:
            checks[name] = f"down: {exc.code}: {exc.message}"
    latency_ms = (time.monotonic() - started) * 1000
    failed = {k: v for k, v in checks.items() if v != "up"}
    detail = "; ".join(f"{k} {v}" for k, v in failed.items()) or "slurmctld and slurmdbd up"
    return HealthReport(up=not failed, latency_ms=latency_ms, detail=detail, checks=checks)
