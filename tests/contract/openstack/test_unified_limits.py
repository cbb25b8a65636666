"""Nova on Keystone unified limits: the contract's quota tests, GPU, enforcement, a model switch.

This module switches the testbed once (`openstack.sh up --unified-limits`,
~35-40 s: Nova restarts) and back to the default DB quotas when it ends, so it
runs last (file order) and everything else runs in DB mode. A provider that
detected the DB model before the switch must notice the switch by itself.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from openstack import exceptions as sdk_exc
from openstack.connection import Connection

from controlplane.vocabulary import ResourceClass
from providers.base import (
    CloudProvider,
    ProviderRejected,
    TenantRef,
    TenantSpec,
    UnsupportedResourceClass,
)
from tests.contract.openstack import cloudops
from tests.contract.openstack.conftest import OsTestbed, RunClouds, run_testbed
from tests.contract.suite import ProviderContract

VGPU = "class:VGPU"
GPU, VCPU, INSTANCES = ResourceClass.GPU, ResourceClass.VCPU, ResourceClass.INSTANCES


def spec_for(run: str, name: str) -> TenantSpec:
    key = f"{run}-{name}"
    return TenantSpec(key=key, name=name, path=("hunan", "changsha", "cs-data", key))


def keystone_limits(system: Connection, project_id: str) -> dict[str, int]:
    return {
        limit.resource_name: limit.resource_limit
        for limit in system.identity.limits(project_id=project_id)
    }


class VgpuRegistration:
    """The cloud-wide registered limit for class:VGPU, which Keystone needs
    before any project limit for it (a cloud admin's decision, not Yunguan's)."""

    def __init__(self, system: Connection) -> None:
        self.system = system
        self.compute = next(iter(system.identity.services(type="compute"))).id

    def register(self) -> None:
        if not list(
            self.system.identity.registered_limits(service_id=self.compute, resource_name=VGPU)
        ):
            self.system.identity.create_registered_limit(
                service_id=self.compute, region_id="RegionOne", resource_name=VGPU, default_limit=0
            )

    def unregister(self) -> None:
        for limit in list(self.system.identity.limits(resource_name=VGPU)):
            self.system.identity.delete_limit(limit)
        for registered in list(
            self.system.identity.registered_limits(service_id=self.compute, resource_name=VGPU)
        ):
            self.system.identity.delete_registered_limit(registered)


@pytest.fixture(scope="module")
def detected_db(
    test_clouds: RunClouds, testbed: OsTestbed
) -> Iterator[tuple[CloudProvider, TenantRef]]:
    """A provider that detected the DB model, before the switch (the fixture runs first)."""
    early = test_clouds.provider("switch")
    tenant = early.ensure_tenant(spec_for(test_clouds.run, "switch"))
    try:
        early.set_quota(tenant, {VCPU: 2})
        assert GPU not in early.supported_classes()  # detected: DB quota driver
        yield early, tenant
    finally:
        cloudops.purge_project(testbed.admin, testbed.system, tenant.provider_id)


@pytest.fixture(scope="module", autouse=True)
def unified_limits(
    testbed: OsTestbed, detected_db: tuple[CloudProvider, TenantRef]
) -> Iterator[None]:
    run_testbed("up", "--unified-limits")
    try:
        yield
    finally:
        run_testbed("up", "--db-quotas")  # the default the rest of the suite expects


@pytest.fixture(scope="module")
def vgpu(testbed: OsTestbed, unified_limits: None) -> Iterator[VgpuRegistration]:
    registration = VgpuRegistration(testbed.system)
    yield registration
    registration.unregister()


@pytest.fixture(scope="module")
def provider(test_clouds: RunClouds, unified_limits: None) -> CloudProvider:
    return test_clouds.provider("unified")  # no quota_model: it detects


@pytest.fixture
def quota_sample(vgpu: VgpuRegistration) -> dict[ResourceClass, int]:
    vgpu.register()
    return {
        VCPU: 4,
        ResourceClass.MEMORY_MIB: 4096,
        INSTANCES: 3,
        GPU: 2,
        ResourceClass.DISK_GIB: 20,
        ResourceClass.FLOATING_IPS: 2,
    }


class TestContractQuotasUnderUnifiedLimits:
    """The contract's quota tests again, now with Keystone holding Nova's limits
    (the rest of the contract does not depend on the quota model and ran in
    test_contract.py; a Nova restart is too dear to run it twice)."""

    test_set_then_read_quota = ProviderContract.test_set_then_read_quota
    test_set_quota_overwrites_only_given_keys = (
        ProviderContract.test_set_quota_overwrites_only_given_keys
    )
    test_unsupported_class_is_refused = ProviderContract.test_unsupported_class_is_refused
    test_retire_is_idempotent_and_ensure_revives = (
        ProviderContract.test_retire_is_idempotent_and_ensure_revives
    )


def test_a_switch_of_quota_model_is_noticed(
    detected_db: tuple[CloudProvider, TenantRef], testbed: OsTestbed, vgpu: VgpuRegistration
) -> None:
    vgpu.register()
    early, tenant = detected_db
    early.set_quota(tenant, {VCPU: 3})  # Nova ignores the quota-set: read back, re-detect
    assert early.read_quota(tenant).limits[VCPU] == 3
    assert keystone_limits(testbed.system, tenant.provider_id)["class:VCPU"] == 3
    assert GPU in early.supported_classes()


def test_gpu_quota_needs_a_registered_limit(
    test_clouds: RunClouds,
    testbed: OsTestbed,
    vgpu: VgpuRegistration,
    tenant_spec: TenantSpec,
    retire_after: list[TenantRef],
) -> None:
    vgpu.unregister()
    fresh = test_clouds.provider("gpu")
    tenant = fresh.ensure_tenant(tenant_spec)
    retire_after.append(tenant)
    with pytest.raises(UnsupportedResourceClass, match="no registered limit for class:VGPU"):
        fresh.set_quota(tenant, {GPU: 1, VCPU: 6})
    assert keystone_limits(testbed.system, tenant.provider_id) == {}  # nothing half-written
    vgpu.register()
    fresh.set_quota(tenant, {GPU: 1, VCPU: 6})
    reading = fresh.read_quota(tenant)
    assert (reading.limits[GPU], reading.in_use[GPU], reading.limits[VCPU]) == (1, 0, 6)
    assert keystone_limits(testbed.system, tenant.provider_id) == {VGPU: 1, "class:VCPU": 6}


def test_a_configured_model_that_is_wrong_is_caught(
    test_clouds: RunClouds, tenant_spec: TenantSpec, retire_after: list[TenantRef]
) -> None:
    wrong = test_clouds.provider("wrong", quota_model="db")
    tenant = wrong.ensure_tenant(tenant_spec)
    retire_after.append(tenant)
    with pytest.raises(ProviderRejected, match="does not report the limits written"):
        wrong.set_quota(tenant, {VCPU: 9})


def test_nova_enforces_the_keystone_limits(
    provider: CloudProvider,
    testbed: OsTestbed,
    test_clouds: RunClouds,
    flavor_image: tuple[str, str],
    tenant_spec: TenantSpec,
    retire_after: list[TenantRef],
) -> None:
    tenant = provider.ensure_tenant(tenant_spec)
    retire_after.append(tenant)
    provider.set_quota(tenant, {VCPU: 2, INSTANCES: 1})
    user = cloudops.member_connection(
        testbed.admin, testbed.auth_url, f"{test_clouds.run}-wang.fang", tenant.provider_id
    )
    flavor_id, image_id = flavor_image
    cloudops.boot(user, f"{test_clouds.run}-u-1", flavor_id, image_id)
    with pytest.raises(sdk_exc.HttpException) as refused:
        user.compute.create_server(
            name=f"{test_clouds.run}-u-2", flavor_id=flavor_id, image_id=image_id, networks="none"
        )
    assert refused.value.status_code == 403 and "servers" in str(refused.value.details)
    assert provider.read_quota(tenant).in_use[INSTANCES] == 1
    # Unified limits never check usage on write; retiring zeroes them all the same.
    provider.retire_tenant(tenant)
    limits = keystone_limits(testbed.system, tenant.provider_id)
    assert limits["servers"] == 0 and limits["class:VCPU"] == 0
    assert provider.read_quota(tenant).limits[INSTANCES] == 0
