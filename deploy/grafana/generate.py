"""Writes the Grafana dashboards in deploy/grafana/dashboards/ (run after editing this file).

    .venv/bin/python deploy/grafana/generate.py [--check]

Four dashboards over the series of `yunguan exporter` (and the API's request
metrics): the capacity overview of the 1+1+N+14 cloud, one prefecture
(templated), supercomputing, and migration progress. They are generated so
that ids, grid positions and the datasource stay consistent; the JSON files
are what Grafana imports (provisioning or "Import dashboard"). `--check`
exits 1 when a file differs from what this script would write
(tests/observability/test_dashboards.py runs it, and checks that every
panel's query parses in a real Prometheus).
"""

from __future__ import annotations

import argparse
import json
import sys

from board import (  # the sibling module: this file runs as a script
    GRANT_THRESHOLDS,
    OUT,
    USE_THRESHOLDS,
    Board,
    ratio,
)


def capacity_overview() -> Board:
    b = Board(
        "yunguan-capacity",
        "Yunguan · 1+1+N+14 capacity overview",
        "Granted, allocatable and used capacity of every cloud, provider health and syncs.",
    )
    b.variable(
        "resource_class",
        "label_values(yunguan_capacity_allocatable_units, resource_class)",
        label="Resource class",
        default="vcpu",
    )
    rc = 'resource_class="$resource_class"'
    b.panel("stat", "Clouds enabled", [('count(yunguan_cloud_info{enabled="true"})', "")], w=6, h=4)
    b.panel(
        "stat",
        "Providers down",
        [("count(yunguan_provider_up == 0) or vector(0)", "")],
        w=6,
        h=4,
        thresholds=[(None, "green"), (1, "red")],
    )
    b.panel(
        "stat",
        "Stale syncs (> 15 min)",
        [("count(time() - yunguan_sync_last_success_timestamp_seconds > 900) or vector(0)", "")],
        w=6,
        h=4,
        thresholds=[(None, "green"), (1, "orange")],
    )
    b.panel(
        "stat",
        "Pending quota requests",
        [('sum(yunguan_quota_requests{state="pending"})', "")],
        w=6,
        h=4,
    )
    b.panel(
        "bargauge",
        "Granted / allocatable by cloud ($resource_class)",
        [(ratio("capacity_granted_units", "capacity_allocatable_units", rc), "{{cloud}}")],
        unit="percentunit",
        thresholds=GRANT_THRESHOLDS,
        h=10,
    )
    b.panel(
        "bargauge",
        "Used / allocatable by cloud ($resource_class)",
        [(ratio("capacity_used_units", "capacity_allocatable_units", rc), "{{cloud}}")],
        unit="percentunit",
        thresholds=USE_THRESHOLDS,
        h=10,
    )
    b.panel(
        "table",
        "Capacity by cloud ($resource_class)",
        [
            (f"yunguan_capacity_total_units{{{rc}}}", "total"),
            (f"yunguan_capacity_reserved_units{{{rc}}}", "reserved"),
            (f"yunguan_capacity_allocatable_units{{{rc}}}", "allocatable"),
            (f"yunguan_capacity_granted_units{{{rc}}}", "granted"),
            (f"yunguan_capacity_used_units{{{rc}}}", "used"),
        ],
        w=24,
        table=True,
    )
    b.panel(
        "timeseries",
        "Granted by cloud role ($resource_class)",
        [
            (
                f"sum by (role) (yunguan_capacity_granted_units{{{rc}}}"
                " * on (cloud) group_left (role) max by (cloud, role) (yunguan_cloud_info))",
                "{{role}}",
            )
        ],
    )
    b.panel(
        "timeseries",
        "Granted / allocatable over time ($resource_class)",
        [(ratio("capacity_granted_units", "capacity_allocatable_units", rc), "{{cloud}}")],
        unit="percentunit",
    )
    b.panel(
        "timeseries",
        "Observed capacity by architecture ($resource_class)",
        [
            (
                f"sum by (architecture) (yunguan_capacity_observed_total_units{{{rc}}})",
                "total {{architecture}}",
            ),
            (
                f"sum by (architecture) (yunguan_capacity_observed_used_units{{{rc}}})",
                "used {{architecture}}",
            ),
        ],
    )
    b.panel("timeseries", "Provider up", [("yunguan_provider_up", "{{cloud}}")])
    b.panel(
        "timeseries",
        "Failed provisioning operations (30 min window)",
        [
            (
                'sum by (cloud) (delta(yunguan_provisioning_operations{status="failed"}[30m]))',
                "{{cloud}}",
            )
        ],
    )
    b.panel(
        "timeseries",
        "API requests by status class",
        [
            (
                "sum by (status_class) (rate(yunguan_http_requests_total[$__rate_interval]))",
                "{{status_class}}",
            )
        ],
        unit="reqps",
    )
    return b


def prefecture() -> Board:
    b = Board(
        "yunguan-prefecture",
        "Yunguan · prefecture",
        "One prefecture (or the province's own departments): its envelopes on the provincial "
        "clouds, its own cloud, its departments and projects, requests and migration.",
    )
    b.variable(
        "prefecture",
        "label_values(yunguan_cloud_info, prefecture)",
        label="Prefecture",
        default="changsha",
    )
    b.variable(
        "resource_class",
        "label_values(yunguan_capacity_allocatable_units, resource_class)",
        label="Resource class",
        default="vcpu",
    )
    p = 'prefecture="$prefecture"'
    prc = f'{p},resource_class="$resource_class"'
    b.panel(
        "stat", "Clouds owned", [(f"count(yunguan_cloud_info{{{p}}}) or vector(0)", "")], w=6, h=4
    )
    b.panel(
        "stat",
        "Pending quota requests",
        [(f'sum(yunguan_quota_requests{{{p},state="pending"}})', "")],
        w=6,
        h=4,
    )
    b.panel(
        "stat",
        "Oldest pending request",
        [(f"time() - min(yunguan_quota_oldest_pending_request_timestamp_seconds{{{p}}})", "")],
        w=6,
        h=4,
        unit="s",
        thresholds=[(None, "green"), (172800, "orange")],
    )
    b.panel(
        "stat",
        "应上尽上 rate",
        [(f"yunguan_migration_prefecture_rate_ratio{{{p}}}", "")],
        w=6,
        h=4,
        unit="percentunit",
    )
    b.panel(
        "bargauge",
        "Envelopes on provincial clouds: used / granted",
        [
            (
                ratio("quota_prefecture_used_units", "quota_prefecture_granted_units", p),
                "{{cloud}} {{resource_class}}",
            )
        ],
        unit="percentunit",
        thresholds=USE_THRESHOLDS,
    )
    b.panel(
        "bargauge",
        "Envelopes handed down: allocated / granted",
        [
            (
                ratio("quota_prefecture_allocated_units", "quota_prefecture_granted_units", p),
                "{{cloud}} {{resource_class}}",
            )
        ],
        unit="percentunit",
        thresholds=GRANT_THRESHOLDS,
    )
    b.panel(
        "timeseries",
        "Own cloud: granted / allocatable",
        [
            (
                ratio("capacity_granted_units", "capacity_allocatable_units", p),
                "{{cloud}} {{resource_class}}",
            )
        ],
        unit="percentunit",
    )
    b.panel(
        "timeseries",
        "Departments: used ($resource_class)",
        [(f"sum by (department) (yunguan_quota_department_used_units{{{prc}}})", "{{department}}")],
    )
    b.panel(
        "table",
        "Departments: granted and used ($resource_class)",
        [
            (f"yunguan_quota_department_granted_units{{{prc}}}", "granted"),
            (f"yunguan_quota_department_allocated_units{{{prc}}}", "allocated"),
            (f"yunguan_quota_department_used_units{{{prc}}}", "used"),
        ],
        w=24,
        table=True,
    )
    b.panel(
        "table",
        "Projects closest to their grant ($resource_class)",
        [
            (
                "topk(20, "
                + ratio("quota_project_used_units", "quota_project_granted_units", prc)
                + ")",
                "",
            )
        ],
        table=True,
        unit="percentunit",
    )
    b.panel(
        "timeseries",
        "Own clouds: time since last successful sync",
        [
            (
                f"time() - yunguan_sync_last_success_timestamp_seconds{{{p}}}",
                "{{cloud}} {{sync}}",
            )
        ],
        unit="s",
    )
    b.panel(
        "timeseries",
        "Migration: systems by state",
        [(f"sum by (state) (yunguan_migration_systems{{{p}}})", "{{state}}")],
    )
    b.panel(
        "timeseries",
        "Quota requests by state",
        [(f"yunguan_quota_requests{{{p}}}", "{{state}}")],
    )
    return b


def supercomputing() -> Board:
    b = Board(
        "yunguan-supercomputing",
        "Yunguan · supercomputing",
        "The National Supercomputing Centre in Changsha (Slurm): accounts, core-hours, GPUs.",
    )
    b.variable(
        "cloud",
        'label_values(yunguan_cloud_info{role="supercomputing"}, cloud)',
        label="Cloud",
        default="nscc-changsha",
    )
    c = 'cloud=~"$cloud"'
    b.panel("stat", "Provider up", [(f"min(yunguan_provider_up{{{c}}})", "")], w=6, h=4)
    b.panel(
        "stat",
        "Last successful quota sync",
        [(f'time() - max(yunguan_sync_last_success_timestamp_seconds{{{c},sync="quotas"}})', "")],
        w=6,
        h=4,
        unit="s",
        thresholds=[(None, "green"), (900, "orange")],
    )
    b.panel(
        "stat",
        "Core-hours granted",
        [(f'sum(yunguan_capacity_granted_units{{{c},resource_class="hpc_core_hours"}})', "")],
        w=6,
        h=4,
    )
    b.panel(
        "stat",
        "Core-hours used",
        [(f'sum(yunguan_capacity_used_units{{{c},resource_class="hpc_core_hours"}})', "")],
        w=6,
        h=4,
    )
    b.panel(
        "bargauge",
        "Granted / allocatable",
        [(ratio("capacity_granted_units", "capacity_allocatable_units", c), "{{resource_class}}")],
        unit="percentunit",
        thresholds=GRANT_THRESHOLDS,
    )
    b.panel(
        "bargauge",
        "Used / allocatable",
        [(ratio("capacity_used_units", "capacity_allocatable_units", c), "{{resource_class}}")],
        unit="percentunit",
        thresholds=USE_THRESHOLDS,
    )
    b.panel(
        "timeseries",
        "Core-hours: granted and used",
        [
            (f'yunguan_capacity_granted_units{{{c},resource_class="hpc_core_hours"}}', "granted"),
            (f'yunguan_capacity_used_units{{{c},resource_class="hpc_core_hours"}}', "used"),
        ],
    )
    b.panel(
        "timeseries",
        "CPUs and GPUs by architecture (observed)",
        [
            (
                f'yunguan_capacity_observed_used_units{{{c},resource_class=~"hpc_cpu|hpc_gpu"}}',
                "used {{resource_class}} {{architecture}}",
            ),
            (
                f'yunguan_capacity_observed_total_units{{{c},resource_class=~"hpc_cpu|hpc_gpu"}}',
                "total {{resource_class}} {{architecture}}",
            ),
        ],
    )
    b.panel(
        "table",
        "Accounts (departments): granted and used",
        [
            (f"yunguan_quota_department_granted_units{{{c}}}", "granted"),
            (f"yunguan_quota_department_used_units{{{c}}}", "used"),
        ],
        w=24,
        table=True,
    )
    b.panel(
        "table",
        "Top projects by core-hours used",
        [
            (
                "topk(20, yunguan_quota_project_used_units"
                f'{{{c},resource_class="hpc_core_hours"}})',
                "",
            )
        ],
        table=True,
    )
    b.panel(
        "timeseries",
        "Sync duration",
        [(f"yunguan_sync_duration_seconds{{{c}}}", "{{sync}}")],
        unit="s",
    )
    b.panel(
        "timeseries",
        "Sync errors",
        [(f"increase(yunguan_sync_errors_total{{{c}}}[1h])", "{{sync}}")],
    )
    b.panel(
        "timeseries",
        "Provisioning operations by status",
        [(f"sum by (status) (yunguan_provisioning_operations{{{c}}})", "{{status}}")],
    )
    return b


def migration() -> Board:
    b = Board(
        "yunguan-migration",
        "Yunguan · 上云 migration progress",
        "The migration ledger: 应上尽上 rate, systems by state, rooms and assets retired, waves.",
    )
    b.variable(
        "prefecture",
        "label_values(yunguan_migration_systems, prefecture)",
        label="Prefecture",
        multi=True,
    )
    p = 'prefecture=~"$prefecture"'
    b.panel(
        "stat",
        "应上尽上 rate (province)",
        [("yunguan_migration_total_rate_ratio", "")],
        w=6,
        h=4,
        unit="percentunit",
    )
    b.panel(
        "stat",
        "Systems accepted",
        [('sum(yunguan_migration_systems{state="accepted"})', "")],
        w=6,
        h=4,
    )
    b.panel(
        "stat",
        "Rooms retired",
        [('sum(yunguan_migration_rooms{status="retired"})', "")],
        w=4,
        h=4,
    )
    b.panel(
        "stat",
        "Assets retired or disposed",
        [('sum(yunguan_migration_assets{status=~"retired|disposed"})', "")],
        w=4,
        h=4,
    )
    b.panel(
        "stat",
        "Systems behind plan",
        [("sum(yunguan_migration_wave_behind_plan_systems) or vector(0)", "")],
        w=4,
        h=4,
        thresholds=[(None, "green"), (1, "red")],
    )
    b.panel(
        "bargauge",
        "Rate by prefecture",
        [(f"yunguan_migration_prefecture_rate_ratio{{{p}}}", "{{prefecture}}")],
        unit="percentunit",
        h=10,
    )
    b.panel(
        "bargauge",
        "Rate by department",
        [(f"yunguan_migration_department_rate_ratio{{{p}}}", "{{department}}")],
        unit="percentunit",
        h=10,
    )
    b.panel(
        "timeseries",
        "Rate over time",
        [(f"yunguan_migration_prefecture_rate_ratio{{{p}}}", "{{prefecture}}")],
        unit="percentunit",
    )
    b.panel(
        "timeseries",
        "Systems by state (non-classified)",
        [
            (
                "sum by (state) (yunguan_migration_systems"
                f'{{{p},classification="non-classified"}})',
                "{{state}}",
            )
        ],
    )
    b.panel(
        "table",
        "Waves",
        [
            (f"yunguan_migration_wave_systems{{{p}}}", "systems"),
            (f"yunguan_migration_wave_unfinished_systems{{{p}}}", "unfinished"),
            (f"yunguan_migration_wave_behind_plan_systems{{{p}}}", "behind plan"),
            (f"yunguan_migration_wave_end_timestamp_seconds{{{p}}} * 1000", "ends"),
        ],
        w=24,
        table=True,
    )
    b.panel(
        "timeseries",
        "Server rooms by status",
        [(f"sum by (status) (yunguan_migration_rooms{{{p}}})", "{{status}}")],
    )
    b.panel(
        "timeseries",
        "IT assets by status",
        [(f"sum by (status) (yunguan_migration_assets{{{p}}})", "{{status}}")],
    )
    return b


BOARDS = {
    "yunguan-capacity-overview.json": capacity_overview,
    "yunguan-prefecture.json": prefecture,
    "yunguan-supercomputing.json": supercomputing,
    "yunguan-migration.json": migration,
}


def render(name: str) -> str:
    return json.dumps(BOARDS[name]().json(), ensure_ascii=False, indent=2) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    args = parser.parse_args()
    stale = []
    for name in BOARDS:
        path, text = OUT / name, render(name)
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            OUT.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    if stale:
        print(f"out of date (run deploy/grafana/generate.py): {', '.join(stale)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
