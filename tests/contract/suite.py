"""The one contract every provider adapter passes, against its real service.

An adapter's test module subclasses `ProviderContract` and supplies fixtures:

- `provider`: a `CloudProvider` connected to the real testbed;
- `tenant_spec`: a fresh `TenantSpec` with a random key (the test owns it);
- `retire_after`: a list; every TenantRef appended is retired in teardown;
- `quota_sample`: limits in the adapter's supported classes, small and nonzero;
- `unsupported_class`: a ResourceClass the adapter has no quota for.

Nothing here knows OpenStack, Kubernetes or Slurm.
"""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from controlplane.vocabulary import ResourceClass
from providers.base import (
    CloudProvider,
    ProviderError,
    TenantRef,
    TenantSpec,
    UnsupportedResourceClass,
    read_quotas,
)


class ProviderContract:
    def test_health_reports_up(self, provider: CloudProvider) -> None:
        report = provider.check_health()
        assert report.up, report.detail
        assert report.latency_ms >= 0

    def test_ensure_tenant_is_idempotent(
        self, provider: CloudProvider, tenant_spec: TenantSpec, retire_after: list[TenantRef]
    ) -> None:
        first = provider.ensure_tenant(tenant_spec)
        retire_after.append(first)
        second = provider.ensure_tenant(tenant_spec)
        assert first == second
        assert first.key == tenant_spec.key and first.provider_id

    def test_set_then_read_quota(
        self,
        provider: CloudProvider,
        tenant_spec: TenantSpec,
        retire_after: list[TenantRef],
        quota_sample: Mapping[ResourceClass, int],
    ) -> None:
        tenant = provider.ensure_tenant(tenant_spec)
        retire_after.append(tenant)
        provider.set_quota(tenant, quota_sample)
        provider.set_quota(tenant, quota_sample)  # idempotent
        reading = provider.read_quota(tenant)
        for rc, value in quota_sample.items():
            assert reading.limits[rc] == value, rc
            assert reading.in_use.get(rc, 0) == 0, rc

    def test_set_quota_overwrites_only_given_keys(
        self,
        provider: CloudProvider,
        tenant_spec: TenantSpec,
        retire_after: list[TenantRef],
        quota_sample: Mapping[ResourceClass, int],
    ) -> None:
        tenant = provider.ensure_tenant(tenant_spec)
        retire_after.append(tenant)
        provider.set_quota(tenant, quota_sample)
        first, *rest = sorted(quota_sample)
        provider.set_quota(tenant, {first: quota_sample[first] + 1})
        reading = provider.read_quota(tenant)
        assert reading.limits[first] == quota_sample[first] + 1
        for rc in rest:
            assert reading.limits[rc] == quota_sample[rc], rc

    def test_unsupported_class_is_refused(
        self,
        provider: CloudProvider,
        tenant_spec: TenantSpec,
        retire_after: list[TenantRef],
        unsupported_class: ResourceClass,
    ) -> None:
        tenant = provider.ensure_tenant(tenant_spec)
        retire_after.append(tenant)
        with pytest.raises(UnsupportedResourceClass):
            provider.set_quota(tenant, {unsupported_class: 1})
        assert unsupported_class not in provider.supported_classes()

    def test_capacity_is_consistent(self, provider: CloudProvider) -> None:
        report = provider.read_capacity()
        assert report.entries, "a testbed with no capacity proves nothing"
        for e in report.entries:
            assert e.resource_class in provider.supported_classes() or e.resource_class in {
                ResourceClass.DISK_GIB
            }
            assert e.total >= 0 and e.used >= 0 and e.reserved >= 0
            assert e.allocation_ratio > 0

    def test_new_tenant_has_no_inventory(
        self, provider: CloudProvider, tenant_spec: TenantSpec, retire_after: list[TenantRef]
    ) -> None:
        tenant = provider.ensure_tenant(tenant_spec)
        retire_after.append(tenant)
        assert provider.list_inventory(tenant) == ()
        everything = provider.list_inventory()
        assert all(item.tenant != tenant.provider_id for item in everything)

    def test_retire_is_idempotent_and_ensure_revives(
        self,
        provider: CloudProvider,
        tenant_spec: TenantSpec,
        retire_after: list[TenantRef],
        quota_sample: Mapping[ResourceClass, int],
    ) -> None:
        tenant = provider.ensure_tenant(tenant_spec)
        retire_after.append(tenant)
        provider.set_quota(tenant, quota_sample)
        provider.retire_tenant(tenant)
        provider.retire_tenant(tenant)
        retired = provider.read_quota(tenant)
        assert all(retired.limits[rc] == 0 for rc in quota_sample)
        assert provider.ensure_tenant(tenant_spec) == tenant

    def test_errors_are_provider_errors(self, provider: CloudProvider) -> None:
        ghost = TenantRef(key="ghost", provider_id="yg-does-not-exist-0000")
        with pytest.raises(ProviderError) as info:
            provider.read_quota(ghost)
        assert info.value.code == "provider.not_found"

    def test_bulk_read_equals_reading_each_tenant(
        self,
        provider: CloudProvider,
        tenant_spec: TenantSpec,
        retire_after: list[TenantRef],
        quota_sample: Mapping[ResourceClass, int],
    ) -> None:
        """What the quota sync reads (the adapter's BulkQuotaReader when it has
        one, else read_quota per tenant) is what read_quota says; a tenant that
        is gone is that tenant's error, not the whole read's."""
        tenant = provider.ensure_tenant(tenant_spec)
        retire_after.append(tenant)
        provider.set_quota(tenant, quota_sample)
        ghost = TenantRef(key="ghost", provider_id="yg-does-not-exist-0000")
        readings = read_quotas(provider, [ghost, tenant], parallel=2)
        assert set(readings) == {ghost, tenant}
        assert readings[tenant] == provider.read_quota(tenant)
        lost = readings[ghost]
        assert isinstance(lost, ProviderError) and lost.code == "provider.not_found"
        assert read_quotas(provider, [], parallel=2) == {}
