"""The shared provider contract, run against the real Slurm testbed, plus the
Slurm-specific parts of tenants: the account chain mirrors the org tree,
users become associations, names are deterministic."""

from __future__ import annotations

import pytest

from controlplane.vocabulary import Architecture, CloudKind, ResourceClass
from providers.base import (
    CloudProvider,
    ProviderNotFound,
    ProviderRejected,
    TenantRef,
    TenantSpec,
)
from providers.slurm.adapter import SlurmProvider
from providers.slurm.client import SlurmRestClient, nothing_found
from providers.slurm.naming import account_name
from tests.contract.slurm.testbed import Janitor, new_code
from tests.contract.suite import ProviderContract


class TestSlurmContract(ProviderContract):
    pass


def _association(admin: SlurmRestClient, account: str, user: str | None = None) -> dict | None:
    reply = admin.slurmdb("GET", "associations", params={"account": account},
                          tolerate=nothing_found)
    for assoc in reply.body.get("associations") or ():
        if assoc.get("account") == account and (assoc.get("user") or None) == user:
            return dict(assoc)
    return None


def test_account_chain_mirrors_the_org_tree(
    provider: SlurmProvider,
    tenant_spec: TenantSpec,
    retire_after: list[TenantRef],
    slurm_admin: SlurmRestClient,
    janitor: Janitor,
    run_prefix: str,
) -> None:
    users = (f"{run_prefix}u1", f"{run_prefix}u2")
    spec = TenantSpec(key=tenant_spec.key, name=tenant_spec.name, path=tenant_spec.path,
                      users=users)
    try:
        tenant = provider.ensure_tenant(spec)
        retire_after.append(tenant)
        assert tenant.provider_id == account_name(spec.key) == f"yg-{spec.key}"
        parent = "root"
        for code in spec.path:
            assoc = _association(slurm_admin, account_name(code))
            assert assoc is not None, code
            assert assoc["parent_account"] == parent
            parent = account_name(code)
        for user in users:
            assert _association(slurm_admin, tenant.provider_id, user) is not None, user
        account = slurm_admin.slurmdb("GET", f"account/{tenant.provider_id}").body["accounts"][0]
        assert account["description"] == spec.name  # UTF-8 survives slurmdbd
        assert account["organization"] == "yunguan"
        # Converging again adds nothing and changes nothing.
        assert provider.ensure_tenant(spec) == tenant
    finally:
        janitor.delete_users(users)


def test_a_moved_department_moves_its_project(
    provider: SlurmProvider,
    tenant_spec: TenantSpec,
    retire_after: list[TenantRef],
    slurm_admin: SlurmRestClient,
    org_scope: tuple[str, str, str],
    run_prefix: str,
) -> None:
    tenant = provider.ensure_tenant(tenant_spec)
    retire_after.append(tenant)
    other_dept = new_code(run_prefix, "dept")
    moved = TenantSpec(key=tenant_spec.key, name=tenant_spec.name,
                       path=(*org_scope[:2], other_dept, tenant_spec.key))
    assert provider.ensure_tenant(moved) == tenant
    assoc = _association(slurm_admin, tenant.provider_id)
    assert assoc is not None and assoc["parent_account"] == account_name(other_dept)


def test_foreign_account_is_not_adopted(
    provider: SlurmProvider,
    tenant_spec: TenantSpec,
    slurm_admin: SlurmRestClient,
    janitor: Janitor,
) -> None:
    # A same-named account the site made by hand (another organization).
    name = account_name(tenant_spec.key)
    slurm_admin.slurmdb("POST", "accounts", body={"accounts": [
        {"name": name, "description": "site's own", "organization": "nscc"}]})
    try:
        with pytest.raises(ProviderRejected, match="not created by Yunguan"):
            provider.ensure_tenant(tenant_spec)
    finally:
        janitor.delete_account(name)


def test_scope_limits_and_reads(
    provider: SlurmProvider, org_scope: tuple[str, str, str]
) -> None:
    scope = provider.set_scope_quota(org_scope[:2], {ResourceClass.HPC_CPU: 64,
                                                     ResourceClass.HPC_CORE_HOURS: 1000})
    assert scope.provider_id == account_name(org_scope[1])
    reading = provider.read_scope_quota(org_scope[:2])
    assert reading.limits[ResourceClass.HPC_CPU] == 64
    assert reading.limits[ResourceClass.HPC_CORE_HOURS] == 1000
    assert reading.limits[ResourceClass.HPC_GPU] is None  # unlimited: never set
    # Lift it again: other tests of the session live under this prefecture.
    provider.set_scope_quota(org_scope[:2], {ResourceClass.HPC_CPU: 4096,
                                             ResourceClass.HPC_CORE_HOURS: 10**6})


def test_quota_of_a_missing_account_is_not_found(provider: SlurmProvider) -> None:
    ghost = TenantRef(key="ghost", provider_id="yg-does-not-exist-0000")
    with pytest.raises(ProviderNotFound):
        provider.set_quota(ghost, {ResourceClass.HPC_CPU: 1})
    provider.retire_tenant(ghost)  # retiring what is gone is a no-op


def test_negative_limit_is_rejected(
    provider: SlurmProvider, tenant_spec: TenantSpec, retire_after: list[TenantRef]
) -> None:
    tenant = provider.ensure_tenant(tenant_spec)
    retire_after.append(tenant)
    with pytest.raises(ProviderRejected):
        provider.set_quota(tenant, {ResourceClass.HPC_CPU: -1})


def test_capacity_of_the_testbed_node(provider: SlurmProvider) -> None:
    assert isinstance(provider, CloudProvider) and provider.kind is CloudKind.SLURM
    entries = {(e.resource_class, e.architecture): e for e in provider.read_capacity().entries}
    cpu = entries[(ResourceClass.HPC_CPU, Architecture.X86_64)]
    gpu = entries[(ResourceClass.HPC_GPU, Architecture.X86_64)]
    mem = entries[(ResourceClass.MEMORY_MIB, Architecture.X86_64)]
    assert (cpu.total, gpu.total, mem.total) == (4, 2, 8192)
    assert cpu.reserved == 0  # the node is idle/mixed and its partition UP
