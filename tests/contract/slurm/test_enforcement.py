"""Slurm itself enforces what the adapter writes: real jobs pend on a project's
grant and on a prefecture's grant, and raising a grant releases them.

Adapter level: the same calls Yunguan's provisioning task makes, without the
API and the worker around them (tests/worker/test_slurm_flow.py is that E2E).
Jobs are `sleep` batch jobs submitted as root with `--account`; each test
cancels its jobs in teardown. Every wait is bounded and generous.
"""

from __future__ import annotations

from controlplane.vocabulary import ResourceClass
from providers.base import TenantRef, TenantSpec
from providers.slurm.adapter import SlurmProvider
from tests.contract.slurm.testbed import Jobs, SlurmTestbed, new_code, wait_enforced

CPU, GPU, MEM = ResourceClass.HPC_CPU, ResourceClass.HPC_GPU, ResourceClass.MEMORY_MIB


def _with_root(spec: TenantSpec) -> TenantSpec:
    # Jobs are submitted as root, which needs an association with the account.
    return TenantSpec(key=spec.key, name=spec.name, path=spec.path, users=("root",))


def test_project_grant_pends_over_limit_jobs_and_raising_it_releases_them(
    provider: SlurmProvider,
    tenant_spec: TenantSpec,
    retire_after: list[TenantRef],
    jobs: Jobs,
    slurm_testbed: SlurmTestbed,
) -> None:
    tenant = provider.ensure_tenant(_with_root(tenant_spec))
    retire_after.append(tenant)
    account = tenant.provider_id
    provider.set_quota(tenant, {CPU: 2, GPU: 1})
    wait_enforced(slurm_testbed, account, {"cpu": "2", "gres/gpu": "1"})

    too_many_cpus = jobs.submit(account, cpus=3)
    too_many_gpus = jobs.submit(account, cpus=1, gpus=2)
    fits = jobs.submit(account, cpus=1, gpus=1)

    jobs.wait_running(fits)
    assert jobs.wait_pending_on(too_many_cpus, "GrpCpuLimit") == "AssocGrpCpuLimit"
    assert jobs.wait_pending_on(too_many_gpus, "GrpGRES") == "AssocGrpGRES"

    # Observed usage, two ways: slurmctld's association manager and the jobs.
    reading = provider.read_quota(tenant)
    assert (reading.limits[CPU], reading.limits[GPU], reading.limits[MEM]) == (2, 1, None)
    assert (reading.in_use[CPU], reading.in_use[GPU], reading.in_use[MEM]) == (1, 1, 256)
    assert provider.read_usage()[account] == {CPU: 1, GPU: 1, MEM: 256}
    items = {item.id: item for item in provider.list_inventory(tenant)}
    assert set(items) == {too_many_cpus, too_many_gpus, fits}
    assert [i for i, item in items.items() if item.running] == [fits]
    assert items[too_many_cpus].resources[CPU] == 3 and items[too_many_cpus].kind == "job"

    # Raising the grant (only hpc_cpu; the GPU limit stays) releases the CPU job.
    provider.set_quota(tenant, {CPU: 4})
    jobs.wait_running(too_many_cpus, timeout=60)
    # Still held by a limit (now whichever slurmctld checks first: cpu is full too).
    state, reason = jobs.state(too_many_gpus)
    assert state == "PENDING" and reason.startswith("AssocGrp"), reason
    assert provider.read_quota(tenant).limits[GPU] == 1


def test_prefecture_grant_caps_all_its_departments_together(
    provider: SlurmProvider,
    org_scope: tuple[str, str, str],
    run_prefix: str,
    retire_after: list[TenantRef],
    jobs: Jobs,
    slurm_testbed: SlurmTestbed,
) -> None:
    # A prefecture of its own, so its limit cannot touch other tests' projects.
    prefecture = (org_scope[0], new_code(run_prefix, "pref"))
    scope = provider.set_scope_quota(prefecture, {CPU: 2})
    projects = []
    for dept in ("dept-a", "dept-b"):
        key = new_code(run_prefix)
        spec = TenantSpec(key=key, name=key, users=("root",),
                          path=(*prefecture, new_code(run_prefix, dept), key))
        tenant = provider.ensure_tenant(spec)
        retire_after.append(tenant)
        provider.set_quota(tenant, {CPU: 2})  # each project alone may use 2 CPUs
        projects.append(tenant)
    wait_enforced(slurm_testbed, scope.provider_id, {"cpu": "2"})
    for tenant in projects:
        wait_enforced(slurm_testbed, tenant.provider_id, {"cpu": "2"})

    first = jobs.submit(projects[0].provider_id, cpus=2)
    jobs.wait_running(first)
    # Fits its project's grant (1 ≤ 2) but not the prefecture's (2 + 1 > 2).
    second = jobs.submit(projects[1].provider_id, cpus=1)
    assert "GrpCpuLimit" in jobs.wait_pending_on(second, "GrpCpuLimit")
    assert provider.read_scope_quota(prefecture).in_use[CPU] == 2

    provider.set_scope_quota(prefecture, {CPU: 3})
    jobs.wait_running(second, timeout=60)
