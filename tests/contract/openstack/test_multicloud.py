"""Two Yunguan clouds on one Keystone: each routes to its own domains and tenants.

`provincial` and `changsha` are two clouds.yaml entries with their own admin
users, as two OpenStack clouds sharing a Keystone would be. Each Yunguan cloud
puts its tenants in the domain of the tenant's owning scope, and sees (lists,
reads, writes) only the tenants it manages.
"""

from __future__ import annotations

import contextlib
from concurrent.futures import ThreadPoolExecutor

import pytest

from controlplane.vocabulary import ResourceClass
from providers.base import CloudProvider, ProviderError, ProviderNotFound, TenantRef, TenantSpec
from tests.contract.openstack import cloudops
from tests.contract.openstack.conftest import OsTestbed, RunClouds


def test_two_clouds_route_to_their_own_domains_and_tenants(
    testbed: OsTestbed, test_clouds: RunClouds, flavor_image: tuple[str, str]
) -> None:
    run = test_clouds.run
    provincial = test_clouds.provider("provincial", "provincial")
    changsha = test_clouds.provider("changsha", "changsha")
    health = {"health": [provincial.check_health(), changsha.check_health()]}
    assert all(report.up for report in health["health"]), health

    hn_key, cs_key = f"{run}-hn-health-hall", f"{run}-cs-data-portal"
    hn = TenantSpec(key=hn_key, name="湖南省卫健委 办事大厅", path=("hunan", "hn-health", hn_key))
    cs = TenantSpec(
        key=cs_key, name="长沙市政务服务网", path=("hunan", "changsha", "cs-data", cs_key)
    )
    created: list[tuple[CloudProvider, TenantRef]] = []
    try:
        # Both clouds at once: their sessions are independent.
        with ThreadPoolExecutor(max_workers=2) as pool:
            a_future = pool.submit(provincial.ensure_tenant, hn)
            b_future = pool.submit(changsha.ensure_tenant, cs)
            a, b = a_future.result(), b_future.result()
        created += [(provincial, a), (changsha, b)]

        for ref, domain, cloud in ((a, "hunan", provincial), (b, "changsha", changsha)):
            project = testbed.admin.identity.get_project(ref.provider_id)
            assert testbed.admin.identity.get_domain(project.domain_id).name == f"{run}-{domain}"
            assert f"yg-cloud:{cloud.cloud}" in project.tags
        assert (
            f"yg-cloud:{provincial.cloud}"
            not in testbed.admin.identity.get_project(b.provider_id).tags
        )

        provincial.set_quota(a, {ResourceClass.VCPU: 3})
        changsha.set_quota(b, {ResourceClass.VCPU: 5})
        assert provincial.read_quota(a).limits[ResourceClass.VCPU] == 3
        assert changsha.read_quota(b).limits[ResourceClass.VCPU] == 5
        # A reference routed to the wrong cloud fails instead of touching the other's tenant.
        with pytest.raises(ProviderNotFound):
            provincial.read_quota(b)
        with pytest.raises(ProviderNotFound):
            changsha.set_quota(a, {ResourceClass.VCPU: 1})
        assert provincial.read_quota(a).limits[ResourceClass.VCPU] == 3

        # A server in Changsha's tenant is in Changsha's inventory only.
        as_tenant = cloudops.member_connection(
            testbed.admin, testbed.auth_url, f"{run}-li.na", b.provider_id
        )
        flavor_id, image_id = flavor_image
        server = cloudops.boot(as_tenant, f"{run}-cs-web", flavor_id, image_id)
        assert server.id in {i.id for i in changsha.list_inventory()}
        assert server.id not in {i.id for i in provincial.list_inventory()}
        assert provincial.list_inventory(a) == ()
    finally:
        for cloud, ref in created:
            with contextlib.suppress(ProviderError):
                cloud.retire_tenant(ref)
            cloudops.purge_project(testbed.admin, testbed.system, ref.provider_id)
