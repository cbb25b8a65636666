"""End to end on the real testbed: a department's project, its quota enforced by Nova.

Yunguan provisions the project, gives the department's user membership and
sets cores=2, instances=1; that user boots a server (fake virt driver), a
second boot is refused by Nova's quota, the inventory shows the server,
Placement's usage rises, a limit below usage is refused with Nova's own
message, and retiring disables the project while the server stays.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import pytest
from openstack import exceptions as sdk_exc

from controlplane.vocabulary import Architecture, ResourceClass
from providers.base import CapacityReport, CloudProvider, ProviderRejected, TenantRef, TenantSpec
from tests.contract.openstack import cloudops
from tests.contract.openstack.conftest import OsTestbed, RunClouds


def used(report: CapacityReport) -> Counter[ResourceClass]:
    total: Counter[ResourceClass] = Counter()
    for entry in report.entries:
        total[entry.resource_class] += entry.used
    return total


def test_department_project_end_to_end(
    provider: CloudProvider,
    testbed: OsTestbed,
    test_clouds: RunClouds,
    flavor_image: tuple[str, str],
    retire_after: list[TenantRef],
) -> None:
    run, (flavor_id, image_id) = test_clouds.run, flavor_image
    key = f"{run}-cs-portal"
    spec = TenantSpec(key=key, name="长沙市政务服务网", path=("hunan", "changsha", "cs-data", key))
    tenant = provider.ensure_tenant(spec)
    retire_after.append(tenant)

    # The department's user exists in the tenant's domain: ensure adds it as a member.
    domain_id = testbed.admin.identity.get_project(tenant.provider_id).domain_id
    login, password = f"{run}-zhang.wei", cloudops.new_password()
    cloudops.create_user(testbed.admin, login, password, domain_id)
    assert provider.ensure_tenant(replace(spec, users=(login,))) == tenant

    provider.set_quota(tenant, {ResourceClass.VCPU: 2, ResourceClass.INSTANCES: 1})
    before = provider.read_capacity()

    user = cloudops.connect_as(testbed.auth_url, login, password, domain_id, tenant.provider_id)
    server = cloudops.boot(user, f"{run}-web-1", flavor_id, image_id)
    with pytest.raises(sdk_exc.HttpException) as refused:
        user.compute.create_server(
            name=f"{run}-web-2", flavor_id=flavor_id, image_id=image_id, networks="none"
        )
    assert refused.value.status_code == 403
    assert "Quota exceeded for instances" in str(refused.value.details)

    (item,) = provider.list_inventory(tenant)
    assert (item.kind, item.id, item.tenant) == ("server", server.id, tenant.provider_id)
    assert item.running and item.status == "ACTIVE" and item.flavor == f"{run}-tiny"
    # The fake compute node has no HW_ARCH trait: the image's property answers.
    assert item.architecture is Architecture.X86_64
    assert item.resources[ResourceClass.VCPU] == 1
    assert item.resources[ResourceClass.MEMORY_MIB] == 64
    assert server.id in {i.id for i in provider.list_inventory()}

    reading = provider.read_quota(tenant)
    assert reading.limits[ResourceClass.VCPU] == 2
    assert reading.in_use[ResourceClass.VCPU] == 1
    assert reading.in_use[ResourceClass.INSTANCES] == 1

    grown = used(provider.read_capacity()) - used(before)
    assert grown[ResourceClass.VCPU] == 1 and grown[ResourceClass.MEMORY_MIB] == 64

    # A limit below usage: Nova (DB driver) refuses with its own message, kept verbatim.
    with pytest.raises(ProviderRejected) as below:
        provider.set_quota(tenant, {ResourceClass.INSTANCES: 0})
    assert "must be greater than or equal to already used and reserved 1" in below.value.message
    assert below.value.__cause__ is not None
    assert provider.read_quota(tenant).limits[ResourceClass.INSTANCES] == 1

    provider.retire_tenant(tenant)
    assert testbed.admin.identity.get_project(tenant.provider_id).is_enabled is False
    retired = provider.read_quota(tenant)
    assert retired.limits[ResourceClass.VCPU] == 0 and retired.limits[ResourceClass.INSTANCES] == 0
    assert [i.id for i in provider.list_inventory(tenant)] == [server.id]  # never deleted
    with pytest.raises(sdk_exc.SDKException, match="HTTP 401"):  # no tokens for a disabled project
        cloudops.connect_as(
            testbed.auth_url, login, password, domain_id, tenant.provider_id
        ).authorize()
