"""Fixtures for the Slurm adapter against the real testbed (slurmrestd v0.0.38).

The session starts the testbed (`scripts/testbed/slurm.sh up`, idempotent)
and fails, never skips, when it cannot. Every account, user and job a test
creates carries the session's random prefix `t<6 hex>`; tenants are retired
*and* deleted in teardown (deleting is a test's privilege, the adapter never
deletes), and the session sweeps whatever is left under its prefix.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Mapping

import pytest

from controlplane.vocabulary import CloudKind, ResourceClass
from providers.base import TenantRef, TenantSpec
from providers.registry import build_provider
from providers.slurm.adapter import SlurmProvider
from providers.slurm.client import SlurmRestClient
from providers.slurm.naming import account_name
from tests.contract.slurm.testbed import (
    Janitor,
    Jobs,
    SlurmTestbed,
    admin_client,
    bring_up,
    new_code,
)
from tests.secrets_scan import register_secret


@pytest.fixture(scope="session")
def slurm_testbed() -> SlurmTestbed:
    return bring_up()


@pytest.fixture(scope="session")
def run_prefix() -> str:
    return "t" + secrets.token_hex(3)


@pytest.fixture(scope="session")
def slurm_admin(slurm_testbed: SlurmTestbed) -> Iterator[SlurmRestClient]:
    client = admin_client(slurm_testbed)
    register_secret(client.token())  # the log scan fails the run if it shows up
    yield client
    client.close()


@pytest.fixture(scope="session")
def janitor(
    slurm_testbed: SlurmTestbed, slurm_admin: SlurmRestClient, run_prefix: str
) -> Iterator[Janitor]:
    j = Janitor(slurm_admin, slurm_testbed.cluster)
    yield j
    j.sweep(account_name(run_prefix) + "-")


@pytest.fixture(scope="session")
def slurm_provider(slurm_testbed: SlurmTestbed, janitor: Janitor) -> Iterator[SlurmProvider]:
    # Through the registry, as the control plane builds it; no `cluster` in
    # the connection, so discovery from slurmdbd is exercised too.
    provider = build_provider("nscc-changsha", CloudKind.SLURM, slurm_testbed.connection())
    assert isinstance(provider, SlurmProvider)
    yield provider
    provider.close()


@pytest.fixture
def provider(slurm_provider: SlurmProvider) -> SlurmProvider:
    return slurm_provider


@pytest.fixture(scope="session")
def org_scope(run_prefix: str) -> tuple[str, str, str]:
    """Throwaway province → prefecture → department codes for this session."""
    return (f"{run_prefix}-hunan", f"{run_prefix}-changsha", f"{run_prefix}-cs-data")


@pytest.fixture
def tenant_spec(org_scope: tuple[str, str, str], run_prefix: str) -> TenantSpec:
    key = new_code(run_prefix)
    return TenantSpec(key=key, name=f"长沙市测试项目 {key}", path=(*org_scope, key),
                      description="contract test")


@pytest.fixture
def retire_after(provider: SlurmProvider, janitor: Janitor) -> Iterator[list[TenantRef]]:
    refs: list[TenantRef] = []
    yield refs
    for ref in refs:
        provider.retire_tenant(ref)
    for ref in refs:
        janitor.delete_account(ref.provider_id)


@pytest.fixture
def quota_sample() -> Mapping[ResourceClass, int]:
    return {
        ResourceClass.HPC_CPU: 2,
        ResourceClass.HPC_GPU: 1,
        ResourceClass.MEMORY_MIB: 2048,
        ResourceClass.HPC_CORE_HOURS: 10,
    }


@pytest.fixture
def unsupported_class() -> ResourceClass:
    return ResourceClass.PODS


@pytest.fixture
def jobs(
    slurm_testbed: SlurmTestbed, slurm_admin: SlurmRestClient, run_prefix: str
) -> Iterator[Jobs]:
    j = Jobs(slurm_testbed, slurm_admin, run_prefix)
    yield j
    j.cancel_all()
