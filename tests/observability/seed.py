"""A known state for the exporter tests: grants through the quota service, worker
observations as the sync task writes them, and the seeded migration ledger.

    provincial vcpu: total 1000, reserved 100, overcommit 4 → allocatable 3900
      changsha 2000 (→ cs-data 500 → cs-data-portal 100, 80 used)
      hn-health 300 (→ hn-health-hrp 50, 40 used)          granted = 2300, used = 120
    changsha (its own cloud) vcpu: total 100 → allocatable 400; cs-data 100
    nscc-changsha hpc_core_hours: total 1,000,000 (no overcommit); hn-health 250,000
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from sqlalchemy import select, update

from controlplane.bootstrap import Container
from controlplane.db.tables import Cloud, OrgNode
from controlplane.db.uow import UnitOfWork
from controlplane.db.worker_tables import (
    CapacityObservation,
    Operation,
    QuotaObservation,
    SyncStatus,
)
from controlplane.ledgerstore.inventory import ObservedItem
from controlplane.vocabulary import ResourceClass
from migration.model import SystemState
from quotas import service
from quotas.model import RequestItem
from tests.db.quota_world import ADMIN, World, make_world
from tests.ledger.conftest import move, run_import, seed_workbook, sync

NOW = datetime(2026, 4, 15, 8, 0, tzinfo=UTC)
TODAY = date(2026, 4, 15)  # cs-2026-1 ended 2026-03-31: behind plan; hn-2026-1 runs to 06-30
PORTAL = "cs-data/长沙市政务服务网"


def seed_quotas(w: World) -> None:
    w.run(lambda s: service.set_capacity(s, ADMIN, "provincial", "vcpu", 1000, reserved=100))
    for node, amount in (("changsha", 2000), ("cs-data", 500), ("cs-data-portal", 100)):
        w.run(lambda s, n=node, a=amount: service.set_grant(s, ADMIN, n, "provincial", "vcpu", a))
    for node, amount in (("hn-health", 300), ("hn-health-hrp", 50)):
        w.run(lambda s, n=node, a=amount: service.set_grant(s, ADMIN, n, "provincial", "vcpu", a))
    w.run(lambda s: service.set_observed_usage(s, "cs-data-portal", "provincial", "vcpu", 80))
    w.run(lambda s: service.set_observed_usage(s, "hn-health-hrp", "provincial", "vcpu", 40))
    w.run(lambda s: service.set_capacity(s, ADMIN, "changsha", "vcpu", 100))
    w.run(lambda s: service.set_grant(s, ADMIN, "cs-data", "changsha", "vcpu", 100))
    w.run(lambda s: service.set_capacity(s, ADMIN, "nscc-changsha", "hpc_core_hours", 1_000_000))
    w.run(
        lambda s: service.set_grant(
            s, ADMIN, "hn-health", "nscc-changsha", "hpc_core_hours", 250_000
        )
    )
    # Two pending requests: changsha approves the first, the province the second.
    items = [RequestItem(ResourceClass.VCPU, 8)]
    w.run(
        lambda s: service.file_request(
            s, ADMIN, "cs-data-portal", items, reason="t", cloud_code="provincial",
            now=NOW - timedelta(days=3),
        )
    )  # fmt: skip
    w.run(
        lambda s: service.file_request(
            s, ADMIN, "hn-health-hrp", items, reason="t", cloud_code="provincial", now=NOW
        )
    )


def seed_worker_rows(c: Container) -> None:
    """What the sync task and the operation runner write."""
    with UnitOfWork(c.session_factory) as uow:
        s = uow.session
        ids = dict(s.execute(select(Cloud.code, Cloud.id)).all())
        nodes = dict(s.execute(select(OrgNode.code, OrgNode.id)).all())
        prov, xc = ids["provincial"], ids["xinchuang"]
        s.execute(update(Cloud).where(Cloud.code == "industry-transport").values(enabled=False))
        s.add_all(
            [
                CapacityObservation(
                    cloud_id=prov, resource_class="vcpu", architecture="x86_64", total=1000,
                    reserved=100, allocation_ratio=4.0, used=300, observed_at=NOW,
                ),
                CapacityObservation(
                    cloud_id=prov, resource_class="floating_ips", architecture="", total=64,
                    reserved=0, allocation_ratio=1.0, used=10, observed_at=NOW,
                ),
                SyncStatus(
                    cloud_id=prov, kind="health", provider_up=True, last_attempt_at=NOW,
                    last_success_at=NOW, last_duration_s=0.05, errors_total=0, calls_total=7,
                ),
                SyncStatus(
                    cloud_id=prov, kind="capacity", provider_up=True, last_attempt_at=NOW,
                    last_success_at=NOW - timedelta(minutes=1), last_duration_s=1.5,
                    errors_total=2, calls_total=9, last_error_code="provider.timeout",
                ),
                SyncStatus(
                    cloud_id=xc, kind="health", provider_up=False, last_attempt_at=NOW,
                    last_success_at=None, last_duration_s=0.0, errors_total=3, calls_total=3,
                    last_error_code="provider.unavailable",
                ),
                QuotaObservation(
                    cloud_id=prov, project_id=nodes["cs-data-portal"], resource_class="vcpu",
                    limit=120, granted=100, drift=True, observed_at=NOW,
                ),
                QuotaObservation(
                    cloud_id=prov, project_id=nodes["cs-data-portal"],
                    resource_class="memory_mib", limit=0, granted=0, drift=False, observed_at=NOW,
                ),
            ]
        )  # fmt: skip
        for status in ("failed", "failed", "succeeded", "superseded"):
            s.add(
                Operation(
                    kind="provision", cloud_id=prov, node_id=nodes["cs-data-portal"],
                    scope_path="/hunan/changsha/cs-data/cs-data-portal/", target_generation=1,
                    status=status, attempts=1, reason="event",
                )
            )  # fmt: skip
        uow.commit()


def seed_ledger(c: Container) -> None:
    report = run_import(c, "seed.xlsx", seed_workbook())
    assert report.ok, [str(p) for p in report.problems]
    for state in (SystemState.PLANNED, SystemState.MIGRATING, SystemState.CUT_OVER):
        move(c, PORTAL, state)
    now = datetime.now(UTC)
    item = ObservedItem("server", "vm-1", "portal", "cs-data-portal", "ACTIVE", True, "x86_64")
    sync(c, "changsha", [item], now)
    move(c, PORTAL, SystemState.ACCEPTED)


def seed_all(c: Container) -> World:
    w = make_world(c)
    seed_quotas(w)
    seed_worker_rows(c)
    seed_ledger(c)
    return w
