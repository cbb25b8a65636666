"""Jobs as inventory, and each account's usage summed over its running jobs.

Called by `adapter.SlurmProvider.list_inventory` (migration acceptance
evidence: a project with a RUNNING job is live) and `read_usage` (observed
usage of every tenant in one REST call, for the metrics snapshots).

Source: `GET /slurm/v0.0.38/jobs`, i.e. what slurmctld holds in memory:
pending, running, suspended and completing jobs, plus finished ones for
MinJobAge seconds. Finished jobs are history, not inventory, and are left
out; sacct holds them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from controlplane.vocabulary import ResourceClass
from providers.base import InventoryItem
from providers.slurm.session import SlurmSession
from providers.slurm.tres import resources, tres_string

RUNNING: Final = "RUNNING"
_FINISHED: Final = frozenset({
    "BOOT_FAIL", "CANCELLED", "COMPLETED", "DEADLINE", "FAILED", "NODE_FAIL",
    "OUT_OF_MEMORY", "PREEMPTED", "REVOKED", "TIMEOUT",
})


def _jobs(session: SlurmSession) -> list[Mapping[str, Any]]:
    return list(session.rest.slurm("GET", "jobs").body.get("jobs") or [])


def _state(job: Mapping[str, Any]) -> str:
    return str(job.get("job_state") or "UNKNOWN").upper()


def job_item(job: Mapping[str, Any]) -> InventoryItem:
    state = _state(job)
    # A running job holds what was allocated; a pending one what it asks for.
    tres = tres_string(job.get("tres_alloc_str") if state == RUNNING else job.get("tres_req_str"))
    return InventoryItem(
        kind="job",
        id=str(job.get("job_id")),
        name=str(job.get("name") or ""),
        tenant=str(job.get("account")) if job.get("account") else None,
        status=state,
        running=state == RUNNING,
        flavor=str(job.get("partition")) if job.get("partition") else None,
        resources=resources(tres),
    )


def list_jobs(session: SlurmSession, account: str | None) -> tuple[InventoryItem, ...]:
    return tuple(
        job_item(job)
        for job in _jobs(session)
        if _state(job) not in _FINISHED and (account is None or job.get("account") == account)
    )


def usage_by_account(session: SlurmSession) -> dict[str, dict[ResourceClass, int]]:
    """{account: {class: amount}} over RUNNING jobs; accounts without one are absent."""
    usage: dict[str, dict[ResourceClass, int]] = {}
    for job in _jobs(session):
        if _state(job) != RUNNING or not job.get("account"):
            continue
        totals = usage.setdefault(str(job["account"]), {})
        for rc, amount in resources(tres_string(job.get("tres_alloc_str"))).items():
            totals[rc] = totals.get(rc, 0) + amount
    return usage
