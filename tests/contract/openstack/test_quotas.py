"""Quotas under Nova's DB driver: model detection, the mapping table, untouched keys."""

from __future__ import annotations

import pytest
from openstack.connection import Connection

from controlplane.vocabulary import CloudKind, ResourceClass
from providers.base import (
    CloudProvider,
    ProviderAuthError,
    TenantRef,
    TenantSpec,
    UnsupportedResourceClass,
)
from providers.registry import build_provider
from tests.contract.openstack.conftest import OsTestbed, RunClouds

GPU = ResourceClass.GPU


def raw_quotas(admin: Connection, project_id: str) -> dict[str, dict[str, int]]:
    nova = admin.compute.get(f"/os-quota-sets/{project_id}", microversion="2.57").json()
    cinder = admin.block_storage.get(f"/os-quota-sets/{project_id}").json()
    neutron = admin.network.get(f"/quotas/{project_id}").json()
    return {"nova": nova["quota_set"], "cinder": cinder["quota_set"], "neutron": neutron["quota"]}


def test_db_model_is_detected_and_gpu_refused(
    test_clouds: RunClouds,
    tenant_spec: TenantSpec,
    retire_after: list[TenantRef],
    provider: CloudProvider,
) -> None:
    fresh = test_clouds.provider("detect")
    assert GPU in fresh.supported_classes()  # not known yet: nothing was asked of the cloud
    tenant = fresh.ensure_tenant(tenant_spec)
    retire_after.append(tenant)
    with pytest.raises(UnsupportedResourceClass, match="unified limits"):
        fresh.set_quota(tenant, {GPU: 1})
    assert GPU not in fresh.supported_classes()  # detected: DB quota driver
    configured = test_clouds.provider("configured", quota_model="db")
    assert GPU not in configured.supported_classes()


def test_classes_land_in_their_services_and_nothing_else_changes(
    provider: CloudProvider,
    testbed: OsTestbed,
    tenant_spec: TenantSpec,
    retire_after: list[TenantRef],
) -> None:
    tenant = provider.ensure_tenant(tenant_spec)
    retire_after.append(tenant)
    before = raw_quotas(testbed.admin, tenant.provider_id)
    provider.set_quota(
        tenant,
        {
            ResourceClass.VCPU: 7,
            ResourceClass.MEMORY_MIB: 7168,
            ResourceClass.INSTANCES: 5,
            ResourceClass.DISK_GIB: 70,
            ResourceClass.FLOATING_IPS: 3,
        },
    )
    after = raw_quotas(testbed.admin, tenant.provider_id)
    assert (after["nova"]["cores"], after["nova"]["ram"], after["nova"]["instances"]) == (
        7,
        7168,
        5,
    )
    assert after["cinder"]["gigabytes"] == 70 and after["neutron"]["floatingip"] == 3
    # Everything Yunguan does not manage is as it was (incl. the detection probe's key).
    for service, keys in (
        ("nova", ("metadata_items", "key_pairs", "server_groups")),
        ("cinder", ("volumes", "snapshots", "backups")),
        ("neutron", ("network", "port", "router", "security_group")),
    ):
        for key in keys:
            assert after[service][key] == before[service][key], (service, key)


def test_unified_limits_need_a_system_scoped_entry(
    test_clouds: RunClouds, tenant_spec: TenantSpec, retire_after: list[TenantRef]
) -> None:
    conn = test_clouds.connection("yg-test", quota_model="unified")
    del conn["system_cloud"]
    provider = build_provider(f"{test_clouds.run}-nosys", CloudKind.OPENSTACK, conn, timeout=30)
    tenant = provider.ensure_tenant(tenant_spec)
    retire_after.append(tenant)
    with pytest.raises(ProviderAuthError, match="system_cloud"):
        provider.set_quota(tenant, {ResourceClass.VCPU: 1})
