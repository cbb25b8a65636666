"""The DB exporter against a seeded database, on PostgreSQL and SQLite.

The values are what the grant ledger, the worker tables and the migration
ledger say; the output passes `promtool check metrics`; the cache renders once
per change and serves cached (gzipped) bytes in between.
"""

from __future__ import annotations

import gzip
import subprocess
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, update

from controlplane.bootstrap import Container
from controlplane.db.ledger_tables import LedgerWave
from controlplane.db.uow import UnitOfWork
from controlplane.db.worker_tables import SyncStatus
from controlplane.observability.cache import MetricsCache
from controlplane.observability.collector import build_exporter
from controlplane.settings import MetricsSettings
from quotas import service
from tests.db.quota_world import ADMIN, World
from tests.observability.conftest import samples, series, value
from tests.observability.seed import NOW, TODAY, seed_all


def exporter(c: Container, **settings: object) -> MetricsCache:
    return build_exporter(
        c.session_factory,
        MetricsSettings(**settings),
        today=lambda: TODAY,  # type: ignore[arg-type]
    )


@pytest.fixture
def world(container: Container) -> World:
    return seed_all(container)


def test_capacity_series_follow_the_grant_ledger(world: World) -> None:
    m = samples(exporter(world.container).get().decode())
    pool = {"cloud": "provincial", "prefecture": "hunan", "resource_class": "vcpu"}
    assert value(m, "yunguan_capacity_total_units", **pool) == 1000
    assert value(m, "yunguan_capacity_reserved_units", **pool) == 100
    assert value(m, "yunguan_capacity_allocatable_units", **pool) == 3900  # ⌊1000 × 4⌋ − 100
    assert value(m, "yunguan_capacity_granted_units", **pool) == 2300  # changsha + hn-health
    assert value(m, "yunguan_capacity_used_units", **pool) == 120
    own = {"cloud": "changsha", "prefecture": "changsha", "resource_class": "vcpu"}
    assert value(m, "yunguan_capacity_allocatable_units", **own) == 400
    assert value(m, "yunguan_capacity_granted_units", **own) == 100
    hpc = {"cloud": "nscc-changsha", "prefecture": "hunan", "resource_class": "hpc_core_hours"}
    assert value(m, "yunguan_capacity_allocatable_units", **hpc) == 1_000_000
    assert value(m, "yunguan_capacity_granted_units", **hpc) == 250_000
    # observed per architecture; "none" where no architecture applies
    arch = {**pool, "architecture": "x86_64"}
    assert value(m, "yunguan_capacity_observed_total_units", **arch) == 1000
    assert value(m, "yunguan_capacity_observed_used_units", **arch) == 300
    assert value(m, "yunguan_capacity_observed_allocatable_units", **arch) == 3900
    fips = {**pool, "resource_class": "floating_ips", "architecture": "none"}
    assert value(m, "yunguan_capacity_observed_total_units", **fips) == 64


def test_scope_and_project_series(world: World) -> None:
    m = samples(exporter(world.container).get().decode())
    pref = {"prefecture": "changsha", "cloud": "provincial", "resource_class": "vcpu"}
    assert value(m, "yunguan_quota_prefecture_granted_units", **pref) == 2000
    assert value(m, "yunguan_quota_prefecture_allocated_units", **pref) == 500
    assert value(m, "yunguan_quota_prefecture_used_units", **pref) == 80
    dept = {**pref, "department": "cs-data"}
    assert value(m, "yunguan_quota_department_granted_units", **dept) == 500
    assert value(m, "yunguan_quota_department_allocated_units", **dept) == 100
    assert value(m, "yunguan_quota_department_used_units", **dept) == 80
    # a provincial department: its prefecture label is the province
    hn = {"prefecture": "hunan", "department": "hn-health", "cloud": "provincial"}
    assert value(m, "yunguan_quota_department_granted_units", **hn, resource_class="vcpu") == 300
    assert value(m, "yunguan_quota_department_used_units", **hn, resource_class="vcpu") == 40
    # on a prefecture's own cloud the department is top-level: no prefecture row
    on_own = {"prefecture": "changsha", "department": "cs-data", "cloud": "changsha"}
    on_own["resource_class"] = "vcpu"
    assert value(m, "yunguan_quota_department_granted_units", **on_own) == 100
    assert not series(m, "yunguan_quota_prefecture_granted_units", cloud="changsha")
    proj = {**dept, "project": "cs-data-portal"}
    assert value(m, "yunguan_quota_project_granted_units", **proj) == 100
    assert value(m, "yunguan_quota_project_used_units", **proj) == 80
    # the pools are not scopes
    assert not series(m, "yunguan_quota_department_granted_units", department="")


def test_project_series_can_be_switched_off(world: World) -> None:
    m = samples(exporter(world.container, project_series=False).get().decode())
    assert not series(m, "yunguan_quota_project_granted_units")
    assert not series(m, "yunguan_quota_project_used_units")
    # scopes still sum their projects' usage
    assert (
        value(
            m,
            "yunguan_quota_department_used_units",
            prefecture="changsha",
            department="cs-data",
            cloud="provincial",
            resource_class="vcpu",
        )
        == 80
    )


def test_provider_sync_operation_request_and_drift_series(world: World) -> None:
    m = samples(exporter(world.container).get().decode())
    prov = {"cloud": "provincial", "prefecture": "hunan"}
    assert value(m, "yunguan_provider_up", **prov) == 1
    assert value(m, "yunguan_provider_up", cloud="xinchuang", prefecture="hunan") == 0
    cap = {**prov, "sync": "capacity"}
    assert value(m, "yunguan_sync_last_success_timestamp_seconds", **cap) == pytest.approx(
        (NOW - timedelta(minutes=1)).timestamp()
    )
    assert value(m, "yunguan_sync_duration_seconds", **cap) == 1.5
    assert value(m, "yunguan_sync_errors_total", **cap) == 2
    assert value(m, "yunguan_sync_calls_total", **cap) == 9
    assert value(m, "yunguan_sync_last_error_info", **cap, code="provider.timeout") == 1
    # an enabled cloud that never synced: last success 0 (so "stale" fires)
    never = {"cloud": "zhuzhou", "prefecture": "zhuzhou", "sync": "quotas"}
    assert value(m, "yunguan_sync_last_success_timestamp_seconds", **never) == 0
    assert not series(m, "yunguan_provider_up", cloud="zhuzhou")
    # a disabled cloud is listed, but has no sync series
    assert series(m, "yunguan_cloud_info", cloud="industry-transport", enabled="false")
    assert not series(m, "yunguan_sync_last_success_timestamp_seconds", cloud="industry-transport")

    ops = {**prov, "kind": "provision"}
    assert value(m, "yunguan_provisioning_operations", **ops, status="failed") == 2
    assert value(m, "yunguan_provisioning_operations", **ops, status="succeeded") == 1
    assert value(m, "yunguan_provisioning_operations", **ops, status="pending") == 0  # zero-filled
    assert value(m, "yunguan_provisioning_operations", cloud="zhuzhou", prefecture="zhuzhou",
                 kind="retire", status="failed") == 0  # fmt: skip

    assert value(m, "yunguan_quota_requests", prefecture="changsha", state="pending") == 1
    assert value(m, "yunguan_quota_requests", prefecture="hunan", state="pending") == 1
    assert value(m, "yunguan_quota_requests", prefecture="zhuzhou", state="pending") == 0
    oldest = value(
        m, "yunguan_quota_oldest_pending_request_timestamp_seconds", prefecture="changsha"
    )
    assert oldest == pytest.approx((NOW - timedelta(days=3)).timestamp())

    assert value(m, "yunguan_quota_drifted_limits", **prov, resource_class="vcpu") == 1
    assert value(m, "yunguan_quota_drifted_limits", **prov, resource_class="memory_mib") == 0


def test_migration_series(world: World) -> None:
    m = samples(exporter(world.container).get().decode())
    cs = {"prefecture": "changsha", "department": "cs-data"}
    assert value(m, "yunguan_migration_systems", **cs, classification="non-classified",
                 state="accepted") == 1  # fmt: skip
    assert value(m, "yunguan_migration_systems", **cs, classification="classified",
                 state="inventoried") == 1  # fmt: skip
    # cs-data: 1 accepted of 2 in scope (the classified one never counts)
    assert value(m, "yunguan_migration_department_rate_ratio", **cs) == 0.5
    assert value(m, "yunguan_migration_prefecture_rate_ratio", prefecture="changsha") == 0.5
    assert value(m, "yunguan_migration_prefecture_rate_ratio", prefecture="hunan") == 0.0
    total = value(m, "yunguan_migration_total_rate_ratio")
    assert 0 < total < 0.5
    assert value(m, "yunguan_migration_rooms", prefecture="changsha", status="active") == 1
    assert value(m, "yunguan_migration_rooms", prefecture="changsha", status="retired") == 0
    assert value(m, "yunguan_migration_assets", prefecture="hunan", status="retired") == 1
    # cs-2026-1 ended 2026-03-31; today is 2026-04-15 and its one system is accepted
    cs_wave = {"prefecture": "changsha", "wave": "cs-2026-1"}
    assert value(m, "yunguan_migration_wave_systems", **cs_wave) == 1
    assert value(m, "yunguan_migration_wave_behind_plan_systems", **cs_wave) == 0
    hn_wave = {"prefecture": "hunan", "wave": "hn-2026-1"}
    assert value(m, "yunguan_migration_wave_unfinished_systems", **hn_wave) == 1
    assert value(m, "yunguan_migration_wave_behind_plan_systems", **hn_wave) == 0
    assert (
        value(m, "yunguan_migration_wave_end_timestamp_seconds", **hn_wave)
        == datetime(2026, 7, 1, tzinfo=UTC).timestamp()
    )


def test_a_wave_past_its_end_is_behind_plan(world: World) -> None:
    with UnitOfWork(world.container.session_factory) as uow:
        uow.session.execute(
            update(LedgerWave)
            .where(LedgerWave.code == "hn-2026-1")
            .values(ends_on=TODAY - timedelta(days=1))
        )
        uow.commit()
    m = samples(exporter(world.container).get().decode())
    hn_wave = {"prefecture": "hunan", "wave": "hn-2026-1"}
    assert value(m, "yunguan_migration_wave_behind_plan_systems", **hn_wave) == 1


def test_promtool_check_metrics_is_clean(world: World, promtool: str) -> None:
    body = exporter(world.container).get()
    proc = subprocess.run(
        [promtool, "check", "metrics"], check=False, input=body, capture_output=True
    )
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()
    assert proc.stdout == b"" and proc.stderr == b"", "promtool lint findings"


def test_an_empty_database_renders_and_lints(container: Container, promtool: str) -> None:
    body = exporter(container).get()
    proc = subprocess.run(
        [promtool, "check", "metrics"], check=False, input=body, capture_output=True
    )
    assert proc.returncode == 0 and not proc.stdout and not proc.stderr, proc


def test_renders_once_per_change_and_serves_cached_bytes(world: World) -> None:
    cache = exporter(world.container, check_interval_s=0)
    first = cache.get()
    assert cache.get() is first and cache.renders == 1  # nothing changed: the same bytes
    zipped = cache.get(gzipped=True)
    assert gzip.decompress(zipped) == first and cache.get(gzipped=True) is zipped

    world.run(lambda s: service.set_grant(s, ADMIN, "changsha", "provincial", "vcpu", 2500))
    after_grant = cache.get()
    assert cache.renders == 2
    assert b'yunguan_capacity_granted_units{cloud="provincial",prefecture="hunan",' \
           b'resource_class="vcpu"} 2800.0' in after_grant  # fmt: skip
    assert gzip.decompress(cache.get(gzipped=True)) == after_grant

    # a sync landing (an update of an existing row) is a change too
    with UnitOfWork(world.container.session_factory) as uow:
        uow.session.execute(update(SyncStatus).values(calls_total=SyncStatus.calls_total + 1))
        uow.commit()
    cache.get()
    assert cache.renders == 3
    # and so is a deletion
    with UnitOfWork(world.container.session_factory) as uow:
        uow.session.execute(delete(SyncStatus).where(SyncStatus.kind == "capacity"))
        uow.commit()
    assert b"provider.timeout" not in cache.get()
    assert cache.renders == 4
    cache.get()
    assert cache.renders == 4


def test_checks_at_most_every_interval(world: World) -> None:
    now = [0.0]
    inner = exporter(world.container)
    cache = MetricsCache(
        inner.get, lambda: world.count("quota_grants"), check_interval_s=10, max_age_s=60,
        clock=lambda: now[0],
    )  # fmt: skip
    cache.get()
    world.run(lambda s: service.set_grant(s, ADMIN, "zhuzhou", "provincial", "vcpu", 10))
    now[0] = 9.9
    cache.get()
    assert (cache.checks, cache.renders) == (1, 1)  # within the interval: not even a check
    now[0] = 10.0
    cache.get()
    assert (cache.checks, cache.renders) == (2, 2)  # a new grant row: rendered
    now[0] = 20.0
    cache.get()
    assert (cache.checks, cache.renders) == (3, 2)
    now[0] = 70.0
    cache.get()
    assert cache.renders == 3  # max_age: rendered although nothing changed
