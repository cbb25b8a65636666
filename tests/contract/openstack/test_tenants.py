"""Tenants as Keystone projects: domain per owning scope, deterministic names, tags."""

from __future__ import annotations

from dataclasses import replace

from providers.base import CloudProvider, TenantRef, TenantSpec
from providers.openstack.tenants import project_name
from tests.contract.openstack.conftest import OsTestbed, RunClouds


def test_tenant_is_a_tagged_project_in_its_scope_domain(
    provider: CloudProvider,
    testbed: OsTestbed,
    test_clouds: RunClouds,
    tenant_spec: TenantSpec,
    retire_after: list[TenantRef],
) -> None:
    tenant = provider.ensure_tenant(tenant_spec)
    retire_after.append(tenant)
    project = testbed.admin.identity.get_project(tenant.provider_id)
    domain = testbed.admin.identity.get_domain(project.domain_id)
    assert domain.name == f"{test_clouds.run}-changsha"
    assert project.name == f"yg-{tenant_spec.key}"
    assert set(project.tags) == {
        "yunguan",
        f"yg-cloud:{provider.cloud}",
        f"yg-project:{tenant_spec.key}",
        "yg-department:cs-data",
        "yg-prefecture:changsha",
    }
    assert tenant_spec.name in project.description


def test_provincial_department_lands_in_the_province_domain(
    provider: CloudProvider,
    testbed: OsTestbed,
    test_clouds: RunClouds,
    retire_after: list[TenantRef],
) -> None:
    key = f"{test_clouds.run}-hn-health-app"
    tenant = provider.ensure_tenant(
        TenantSpec(key=key, name="省卫健委", path=("hunan", "hn-health", key))
    )
    retire_after.append(tenant)
    project = testbed.admin.identity.get_project(tenant.provider_id)
    assert testbed.admin.identity.get_domain(project.domain_id).name == f"{test_clouds.run}-hunan"
    assert {"yg-department:hn-health", "yg-prefecture:hunan"} <= set(project.tags)


def test_ensure_finds_a_renamed_project_and_revives_it(
    provider: CloudProvider,
    testbed: OsTestbed,
    tenant_spec: TenantSpec,
    retire_after: list[TenantRef],
) -> None:
    tenant = provider.ensure_tenant(tenant_spec)
    retire_after.append(tenant)
    # An operator renames it, disables it, drops one of our tags and adds one of theirs.
    project = testbed.admin.identity.get_project(tenant.provider_id)
    tags = [t for t in project.tags if not t.startswith("yg-department:")] + ["ops-keep"]
    testbed.admin.identity.update_project(
        project, name=f"renamed-{tenant_spec.key}", is_enabled=False, tags=tags
    )
    assert provider.ensure_tenant(replace(tenant_spec, users=("nobody-yet",))) == tenant
    project = testbed.admin.identity.get_project(tenant.provider_id)
    assert project.is_enabled
    assert {"ops-keep", "yg-department:cs-data"} <= set(project.tags)


def test_project_names_are_deterministic_and_fit_keystone() -> None:
    assert project_name("cs-data-portal") == "yg-cs-data-portal"
    long_key = "x" * 100
    assert project_name(long_key) == project_name(long_key)
    assert len(project_name(long_key)) == 64
    assert project_name(long_key) != project_name("x" * 99)
