"""The catalogue of series the DB exporter serves: names, help and label names.

Names follow `yunguan_<subsystem>_<name>_<unit>`. Quota amounts are in each
resource class's canonical unit (vcpu, MiB, GiB, instances, …), which the
`resource_class` label names, so those series end in `_units`; counts of
things end in the thing counted (`_systems`, `_operations`). Every label is
bounded by the topology (clouds, org nodes, resource classes) or by an enum
(states, sync kinds, error codes).

`prefecture` on every series is the prefecture it belongs to — a cloud's
owner, a scope's or project's prefecture — or the province's code for
provincial clouds and departments; Alertmanager routes on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

CLOUD = ("cloud", "prefecture")
POOL = (*CLOUD, "resource_class")
OBSERVED = (*POOL, "architecture")
SYNC = (*CLOUD, "sync")


@dataclass(frozen=True)
class Family:
    name: str  # a counter's name without `_total` (prometheus_client appends it)
    help: str
    labels: tuple[str, ...] = ()
    kind: Literal["gauge", "counter"] = "gauge"

    def new(self) -> Builder:
        return Builder(self)

    @property
    def exposed_name(self) -> str:
        return f"{self.name}_total" if self.kind == "counter" else self.name


class Builder:
    """One family being filled: `add(labels…, value)`; `metric` when done."""

    def __init__(self, family: Family) -> None:
        self.family = family
        self.metric: GaugeMetricFamily | CounterMetricFamily
        if family.kind == "counter":
            self.metric = CounterMetricFamily(family.name, family.help, labels=family.labels)
        else:
            self.metric = GaugeMetricFamily(family.name, family.help, labels=family.labels)

    def add(self, labels: Sequence[str], value: float) -> None:
        self.metric.add_metric(list(labels), value)

    def __len__(self) -> int:
        return len(self.metric.samples)


# -- clouds and capacity ------------------------------------------------------

CLOUD_INFO = Family(
    "yunguan_cloud_info",
    "A registered cloud (value 1): its name, kind, role and whether it is enabled.",
    (*CLOUD, "name", "cloud_kind", "role", "enabled"),
)
CAPACITY_TOTAL = Family(
    "yunguan_capacity_total_units",
    "Capacity of a cloud's pool before overcommit (declared, or observed by the last sync).",
    POOL,
)
CAPACITY_RESERVED = Family(
    "yunguan_capacity_reserved_units",
    "Capacity of a pool held back from grants (host reserve).",
    POOL,
)
CAPACITY_ALLOCATABLE = Family(
    "yunguan_capacity_allocatable_units",
    "What the top-level grants of a pool may add up to: "
    "floor(total x overcommit) - reserved, x oversubscription.",
    POOL,
)
CAPACITY_GRANTED = Family(
    "yunguan_capacity_granted_units",
    "Sum of a pool's top-level grants (prefecture envelopes, departments under the owner).",
    POOL,
)
CAPACITY_USED = Family(
    "yunguan_capacity_used_units",
    "In use on a cloud as its tenants' last quota sync observed it (sum over projects).",
    POOL,
)
OBSERVED_TOTAL = Family(
    "yunguan_capacity_observed_total_units",
    "Capacity per architecture as the provider reported it in the last capacity sync.",
    OBSERVED,
)
OBSERVED_RESERVED = Family(
    "yunguan_capacity_observed_reserved_units",
    "Reserved capacity per architecture as the provider reported it.",
    OBSERVED,
)
OBSERVED_ALLOCATABLE = Family(
    "yunguan_capacity_observed_allocatable_units",
    "Allocatable capacity per architecture: the pool formula applied to the observation.",
    OBSERVED,
)
OBSERVED_USED = Family(
    "yunguan_capacity_observed_used_units",
    "Used capacity per architecture as the provider reported it (all of the cloud's users).",
    OBSERVED,
)

# -- quota scopes -------------------------------------------------------------

_PREF = ("prefecture", "cloud", "resource_class")
_DEPT = ("prefecture", "department", "cloud", "resource_class")
_PROJ = ("prefecture", "department", "project", "cloud", "resource_class")
PREFECTURE_GRANTED = Family(
    "yunguan_quota_prefecture_granted_units",
    "A prefecture's grant (its envelope) on a provincial cloud.",
    _PREF,
)
PREFECTURE_ALLOCATED = Family(
    "yunguan_quota_prefecture_allocated_units",
    "What a prefecture has handed down to its departments (sum of their grants).",
    _PREF,
)
PREFECTURE_USED = Family(
    "yunguan_quota_prefecture_used_units",
    "Observed usage of a prefecture's projects on a cloud where it holds a grant.",
    _PREF,
)
DEPARTMENT_GRANTED = Family(
    "yunguan_quota_department_granted_units", "A department's grant on a cloud.", _DEPT
)
DEPARTMENT_ALLOCATED = Family(
    "yunguan_quota_department_allocated_units",
    "What a department has handed down to its projects (sum of their grants).",
    _DEPT,
)
DEPARTMENT_USED = Family(
    "yunguan_quota_department_used_units",
    "Observed usage of a department's projects on a cloud where it holds a grant.",
    _DEPT,
)
PROJECT_GRANTED = Family(
    "yunguan_quota_project_granted_units",
    "A project's grant: the quota its tenant gets (setting metrics.project_series).",
    _PROJ,
)
PROJECT_USED = Family(
    "yunguan_quota_project_used_units",
    "A project's usage as the last quota sync observed it (setting metrics.project_series).",
    _PROJ,
)

# -- providers, syncs, operations, requests, drift ----------------------------

PROVIDER_UP = Family(
    "yunguan_provider_up",
    "1 when the last health check reached the cloud's API, else 0 (enabled clouds).",
    CLOUD,
)
SYNC_LAST_SUCCESS = Family(
    "yunguan_sync_last_success_timestamp_seconds",
    "When a sync of this kind last succeeded (0: never) for each enabled cloud.",
    SYNC,
)
SYNC_LAST_ATTEMPT = Family(
    "yunguan_sync_last_attempt_timestamp_seconds",
    "When a sync of this kind was last attempted.",
    SYNC,
)
SYNC_DURATION = Family(
    "yunguan_sync_duration_seconds", "How long the last sync of this kind took.", SYNC
)
SYNC_CALLS = Family(
    "yunguan_sync_calls", "Syncs of this kind attempted against the cloud.", SYNC, "counter"
)
SYNC_ERRORS = Family(
    "yunguan_sync_errors",
    "Syncs of this kind that failed (a provider API error, or the cloud down).",
    SYNC,
    "counter",
)
SYNC_LAST_ERROR = Family(
    "yunguan_sync_last_error_info",
    "The stable error code of the last sync of this kind, while it is failing (value 1).",
    (*SYNC, "code"),
)
OPERATIONS = Family(
    "yunguan_provisioning_operations",
    "Provisioning operations by kind and status (outcome); zero-filled per enabled cloud.",
    (*CLOUD, "kind", "status"),
)
REQUESTS = Family(
    "yunguan_quota_requests",
    "Quota requests by state, per approving scope (prefecture, or the province).",
    ("prefecture", "state"),
)
OLDEST_PENDING = Family(
    "yunguan_quota_oldest_pending_request_timestamp_seconds",
    "When the oldest pending request of an approving scope was filed (age: time() - value).",
    ("prefecture",),
)
DRIFT = Family(
    "yunguan_quota_drifted_limits",
    "Project limits the provider enforces that differ from the grants, at the last quota sync.",
    POOL,
)

# -- migration ledger ---------------------------------------------------------

MIGRATION_SYSTEMS = Family(
    "yunguan_migration_systems",
    "Business systems by state, per department.",
    ("prefecture", "department", "classification", "state"),
)
MIGRATION_RATE_TOTAL = Family(
    "yunguan_migration_total_rate_ratio",
    "The 应上尽上 rate over the whole ledger: accepted / in scope.",
)
MIGRATION_RATE_PREFECTURE = Family(
    "yunguan_migration_prefecture_rate_ratio",
    "The 应上尽上 rate of a prefecture (the province's code: its own departments).",
    ("prefecture",),
)
MIGRATION_RATE_DEPARTMENT = Family(
    "yunguan_migration_department_rate_ratio",
    "The 应上尽上 rate of a department (absent while nothing is in scope).",
    ("prefecture", "department"),
)
MIGRATION_ROOMS = Family(
    "yunguan_migration_rooms", "Server rooms by status.", ("prefecture", "status")
)
MIGRATION_ASSETS = Family(
    "yunguan_migration_assets", "IT assets by status.", ("prefecture", "status")
)
_WAVE = ("prefecture", "wave")
WAVE_SYSTEMS = Family("yunguan_migration_wave_systems", "Systems in a migration wave.", _WAVE)
WAVE_UNFINISHED = Family(
    "yunguan_migration_wave_unfinished_systems",
    "Systems of a wave not yet accepted, exempted or decommissioned.",
    _WAVE,
)
WAVE_BEHIND = Family(
    "yunguan_migration_wave_behind_plan_systems",
    "Unfinished systems of a wave whose end date has passed (0 while on plan).",
    _WAVE,
)
WAVE_END = Family(
    "yunguan_migration_wave_end_timestamp_seconds",
    "The end of a wave's last day (UTC).",
    _WAVE,
)

# -- the exporter itself ------------------------------------------------------

EXPORTER_RENDERS = Family(
    "yunguan_exporter_renders",
    "Expositions rendered since the exporter started (one per detected change).",
    kind="counter",
)
EXPORTER_RENDER_TIME = Family(
    "yunguan_exporter_render_timestamp_seconds",
    "When this exposition was read from the database.",
)
EXPORTER_READ_DURATION = Family(
    "yunguan_exporter_read_duration_seconds",
    "How long reading this exposition's state from the database took.",
)
