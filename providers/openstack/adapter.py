"""`OpenStackProvider`: the provider port for the provincial, prefecture and Xinchuang clouds.

Built by `providers.registry.build_provider` from a cloud's connection
reference (see `connection.py`); one instance per Yunguan cloud, so several
OpenStack clouds are served at once, each with its own lazily opened session
and timeouts. This module only composes the operation families:

    tenants.py    Keystone projects in a domain per owning scope
    quotas.py     Nova / Cinder / Neutron quota-sets, or limits.py (Keystone
                  unified limits) when Nova runs the UnifiedLimitsDriver
    sweep.py      every tenant's quota and usage in ~2 calls each (the sync's read)
    capacity.py   Placement inventories, usages, architecture traits
    inventory.py  servers and volumes
    errors.py     every SDK exception -> providers.base error tree
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from controlplane.vocabulary import CloudKind, ResourceClass
from providers.base import (
    CapacityReport,
    HealthReport,
    InventoryItem,
    ProviderError,
    QuotaReading,
    QuotaReadings,
    TenantRef,
    TenantSpec,
    check_supported,
)
from providers.openstack.capacity import Placement
from providers.openstack.connection import CloudSession, ConnectionSettings, Service
from providers.openstack.inventory import Inventory
from providers.openstack.quotas import Quotas
from providers.openstack.sweep import QuotaSweep
from providers.openstack.tenants import Tenants

# Each service's version document: cheap, and proves the catalog entry answers.
HEALTH_PROBES = (
    ("compute", Service.COMPUTE),
    ("placement", Service.PLACEMENT),
    ("block-storage", Service.VOLUME),
    ("network", Service.NETWORK),
)


class OpenStackProvider:
    kind: CloudKind = CloudKind.OPENSTACK

    def __init__(self, settings: ConnectionSettings) -> None:
        self.cloud = settings.cloud
        session = CloudSession(settings)
        self._session = session
        self._tenants = Tenants(session)
        self._quotas = Quotas(session)
        self._placement = Placement(session)
        self._inventory = Inventory(session, self._placement)
        self._sweep = QuotaSweep(session, self._tenants, self._quotas)

    @classmethod
    def from_connection(
        cls, cloud: str, connection: Mapping[str, Any], *, timeout: float
    ) -> OpenStackProvider:
        """Parses the reference only: nothing is read or contacted until first use."""
        return cls(ConnectionSettings.parse(cloud, connection, timeout))

    def supported_classes(self) -> frozenset[ResourceClass]:
        """The kind's classes, less GPU once the cloud is known (configured, or
        detected by the first quota write) to run Nova's DB quota driver, which
        has no GPU quota. Under unified limits a GPU limit also needs Keystone's
        registered limit for class:VGPU; set_quota checks that when it writes."""
        return self._quotas.supported()

    def check_health(self) -> HealthReport:
        started = time.monotonic()
        checks: dict[str, str] = {}
        try:
            self._session.token()
            checks["identity"] = "ok"
        except ProviderError as exc:
            checks["identity"] = exc.message
            # Every other call needs a token: they would only wait out the same timeout.
            checks.update({name: "skipped: no token" for name, _ in HEALTH_PROBES})
        else:
            for name, service in HEALTH_PROBES:
                try:
                    self._session.call(service, "GET", "/", action=f"{name} version document")
                    checks[name] = "ok"
                except ProviderError as exc:
                    checks[name] = exc.message
        failing = {name: why for name, why in checks.items() if why != "ok"}
        return HealthReport(
            up=not failing,
            latency_ms=(time.monotonic() - started) * 1000,
            detail="; ".join(f"{name}: {why}" for name, why in failing.items()),
            checks=checks,
        )

    def ensure_tenant(self, spec: TenantSpec) -> TenantRef:
        return self._tenants.ensure(spec)

    def set_quota(self, tenant: TenantRef, limits: Mapping[ResourceClass, int]) -> None:
        check_supported(self, limits)
        project = self._tenants.get(tenant)
        self._quotas.set(project["id"], limits)

    def read_quota(self, tenant: TenantRef) -> QuotaReading:
        project = self._tenants.get(tenant)
        return self._quotas.read(project["id"])

    def read_quotas(self, tenants: Sequence[TenantRef], *, parallel: int) -> QuotaReadings:
        """`BulkQuotaReader`: see sweep.py for the calls it saves."""
        return self._sweep.read(tenants, parallel)

    def read_capacity(self) -> CapacityReport:
        return self._placement.report()

    def list_inventory(self, tenant: TenantRef | None = None) -> tuple[InventoryItem, ...]:
        if tenant is not None:
            return self._inventory.list(frozenset({self._tenants.get(tenant)["id"]}))
        return self._inventory.list(frozenset(self._tenants.owned_ids()))

    def retire_tenant(self, tenant: TenantRef) -> None:
        """Disables the project (no new tokens, so no new resources) and zeroes its
        quotas; servers and volumes stay, for the owners to hand over or delete."""
        project = self._tenants.get(tenant)
        self._tenants.disable(project)
        self._quotas.retire(project["id"])
