"""The quota sweep (`read_quotas`) against `read_quota`, tenant by tenant, on
tenants that really use something: a booted server, a volume, a floating IP.

The sweep reads Nova through /limits, Neutron through cloud-wide listings and
Keystone through one project listing (see providers/openstack/sweep.py); the
services' own per-tenant answers are the reference it must equal.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest
from openstack import exceptions as sdk_exc

from controlplane.vocabulary import ResourceClass
from providers.base import (
    BulkQuotaReader,
    CloudProvider,
    ProviderError,
    QuotaReading,
    TenantRef,
    TenantSpec,
)
from tests.contract.openstack import cloudops
from tests.contract.openstack.conftest import OsTestbed, RunClouds

LIMITS = {
    ResourceClass.VCPU: 4,
    ResourceClass.MEMORY_MIB: 4096,
    ResourceClass.INSTANCES: 2,
    ResourceClass.DISK_GIB: 10,
    ResourceClass.FLOATING_IPS: 2,
}


@pytest.fixture(scope="module")
def external_network(testbed: OsTestbed, test_clouds: RunClouds) -> Iterator[str]:
    """A flat external network with a documentation subnet: floating IPs need
    nothing more from an agent-less Neutron."""
    admin = testbed.admin
    net = admin.network.create_network(
        name=f"{test_clouds.run}-ext",
        is_router_external=True,
        provider_network_type="flat",
        provider_physical_network=f"{test_clouds.run}-ext",
    )
    try:
        admin.network.create_subnet(
            network_id=net.id, ip_version=4, cidr="203.0.113.0/24", is_dhcp_enabled=False
        )
        yield str(net.id)
    finally:
        for ip in admin.network.ips(floating_network_id=net.id):
            with contextlib.suppress(sdk_exc.SDKException):
                admin.network.delete_ip(ip.id)
        with contextlib.suppress(sdk_exc.SDKException):
            admin.network.delete_network(net.id)


def spec(test_clouds: RunClouds, suffix: str) -> TenantSpec:
    key = f"{test_clouds.run}-sw-{suffix}"
    return TenantSpec(key=key, name=key, path=("hunan", "changsha", "cs-data", key))


def test_sweep_equals_read_quota_with_servers_volumes_and_floating_ips(
    provider: CloudProvider,
    testbed: OsTestbed,
    test_clouds: RunClouds,
    flavor_image: tuple[str, str],
    external_network: str,
    retire_after: list[TenantRef],
) -> None:
    assert isinstance(provider, BulkQuotaReader)
    busy, idle, retired = (provider.ensure_tenant(spec(test_clouds, s)) for s in "abc")
    retire_after.extend([busy, idle, retired])
    for tenant in (busy, idle, retired):
        provider.set_quota(tenant, LIMITS)
    provider.retire_tenant(retired)

    # The busy tenant uses one of everything: a server (1 vCPU, 64 MiB), a
    # 1 GiB volume (Cinder counts it at once; with no volume service it stays
    # "creating") and a floating IP.
    user = cloudops.member_connection(
        testbed.admin, testbed.auth_url, f"{test_clouds.run}-sw-user", busy.provider_id
    )
    flavor_id, image_id = flavor_image
    cloudops.boot(user, f"{test_clouds.run}-sw-vm", flavor_id, image_id)
    user.block_storage.create_volume(size=1, name=f"{test_clouds.run}-sw-vol")
    testbed.admin.network.create_ip(
        floating_network_id=external_network, project_id=busy.provider_id
    )

    # Another Yunguan cloud's tenant on the same Keystone, and one that is gone.
    other_cloud = test_clouds.provider("sweep-other")
    foreign = other_cloud.ensure_tenant(spec(test_clouds, "d"))
    retire_after.append(foreign)
    ghost = TenantRef(key="ghost", provider_id="0" * 32)

    tenants = [busy, idle, retired, foreign, ghost]
    swept = provider.read_quotas(tenants, parallel=3)
    assert set(swept) == set(tenants)
    for tenant in (busy, idle, retired):
        assert swept[tenant] == provider.read_quota(tenant), tenant
    for tenant in (foreign, ghost):
        error = swept[tenant]
        assert isinstance(error, ProviderError) and error.code == "provider.not_found"
        with pytest.raises(ProviderError) as single:
            provider.read_quota(tenant)
        assert single.value.code == "provider.not_found"

    reading = swept[busy]
    assert isinstance(reading, QuotaReading)
    assert dict(reading.in_use) == {
        ResourceClass.VCPU: 1,
        ResourceClass.MEMORY_MIB: 64,
        ResourceClass.INSTANCES: 1,
        ResourceClass.DISK_GIB: 1,
        ResourceClass.FLOATING_IPS: 1,
    }
    assert dict(reading.limits) == LIMITS
    quiet = swept[idle]
    assert isinstance(quiet, QuotaReading) and not any(quiet.in_use.values())
    gone = swept[retired]
    assert isinstance(gone, QuotaReading)
    assert all(gone.limits[rc] == 0 for rc in LIMITS)
