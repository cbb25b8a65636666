"""Acceptance evidence read from the real OpenStack testbed (boot-free).

The OpenStack adapter lists the inventory of a throwaway Yunguan tenant on
the testbed (`scripts/testbed/openstack.sh`); the items go through
`replace_cloud_inventory` exactly as the inventory sync task will feed them,
the provider's tenant id mapped to the Yunguan project code (`TenantRef.key`).
First nothing is booted, so the tenant runs nothing and acceptance must be
refused on that real evidence; then a server is booted (Nova's fake driver)
and acceptance is granted on it. A testbed that cannot be started fails the test; it
is never skipped. The tenant's domain carries a random prefix and is purged.
"""

from __future__ import annotations

import secrets
import shlex
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from controlplane.bootstrap import Container
from controlplane.db.ledger_tables import InventorySync
from controlplane.db.uow import UnitOfWork
from controlplane.ledgerstore.inventory import ObservedItem, replace_cloud_inventory
from controlplane.vocabulary import CloudKind, ConflictError, ResourceClass
from migration.model import SystemState
from providers.base import CloudProvider, InventoryItem, TenantRef, TenantSpec
from providers.registry import build_provider
from tests.contract.openstack import cloudops
from tests.ledger.conftest import move, seeded

TESTBED = Path(__file__).resolve().parents[2] / "scripts" / "testbed" / "openstack.sh"
PORTAL = "cs-data/长沙市政务服务网"


def _testbed(*args: str) -> str:
    done = subprocess.run(
        ["bash", str(TESTBED), *args], capture_output=True, text=True, timeout=900, check=False
    )
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-20:])
        pytest.fail(f"openstack.sh {' '.join(args)} failed:\n{tail}", pytrace=False)
    return done.stdout


@dataclass(frozen=True)
class Tenant:
    provider: CloudProvider
    ref: TenantRef
    clouds_yaml: Path
    entry: str


@pytest.fixture(scope="module")
def openstack_tenant() -> Iterator[Tenant]:
    _testbed("up")  # starts only what is missing, in the quota mode recorded last time
    env = {}
    for line in _testbed("env").splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        env[name] = shlex.split(value)[0] if value else ""
    clouds_yaml, entry = Path(env["OS_CLIENT_CONFIG_FILE"]), env["OS_CLOUD"]
    run = "ygl" + secrets.token_hex(3)
    connection = {
        "kind": "openstack",
        "cloud": entry,
        "clouds_yaml": str(clouds_yaml),
        "system_cloud": f"{entry}-system",
        "domain_prefix": run,
    }
    provider = build_provider("changsha", CloudKind.OPENSTACK, connection, timeout=60)
    try:
        ref = provider.ensure_tenant(
            TenantSpec(
                key="cs-data-portal",
                name="长沙市政务服务网",
                path=("hunan", "changsha", "cs-data", "cs-data-portal"),
            )
        )
        yield Tenant(provider, ref, clouds_yaml, entry)
    finally:
        admin = cloudops.connect_entry(clouds_yaml, entry)
        system = cloudops.connect_entry(clouds_yaml, f"{entry}-system")
        cloudops.purge_domains(admin, system, run)


def observed(items: tuple[InventoryItem, ...], keys: dict[str, str]) -> list[ObservedItem]:
    """What the sync task will do: provider tenant ids become Yunguan project codes."""
    return [
        ObservedItem(
            kind=i.kind,
            external_id=i.id,
            name=i.name,
            project=keys.get(i.tenant or ""),
            status=i.status,
            running=i.running,
            architecture=i.architecture.value if i.architecture else None,
        )
        for i in items
    ]


def test_acceptance_on_real_testbed_inventory(topo: Container, openstack_tenant: Tenant) -> None:
    seeded(topo)
    for state in (SystemState.PLANNED, SystemState.MIGRATING, SystemState.CUT_OVER):
        move(topo, PORTAL, state)
    ref = openstack_tenant.ref
    items = openstack_tenant.provider.list_inventory(ref)
    assert all(i.tenant == ref.provider_id for i in items)
    assert not any(i.running for i in items)  # boot-free: the new tenant runs nothing
    at = datetime.now(UTC)
    with UnitOfWork(topo.session_factory) as uow:
        summary = replace_cloud_inventory(
            uow.session, "changsha", observed(items, {ref.provider_id: ref.key}), at
        )
        uow.commit()
    assert summary.applied and summary.items == len(items) and summary.running == 0
    with UnitOfWork(topo.session_factory) as uow:
        synced = uow.session.scalar(select(InventorySync.observed_at))
        assert synced is not None and abs((synced - at).total_seconds()) < 1
    with pytest.raises(ConflictError) as err:
        move(topo, PORTAL, SystemState.ACCEPTED)
    assert err.value.code == "migration.acceptance_unverified"
    assert "shows nothing running for cs-data-portal" in err.value.message


def test_acceptance_granted_with_a_running_server(
    topo: Container, openstack_tenant: Tenant
) -> None:
    """The same path with real evidence: a server booted in the tenant (Nova's
    fake driver makes it ACTIVE) is listed, stored, and acceptance goes through."""
    seeded(topo)
    for state in (SystemState.PLANNED, SystemState.MIGRATING, SystemState.CUT_OVER):
        move(topo, PORTAL, state)
    ref = openstack_tenant.ref
    admin = cloudops.connect_entry(openstack_tenant.clouds_yaml, openstack_tenant.entry)
    auth_url = admin.config.get_auth_args()["auth_url"]
    login = f"{ref.provider_id}-{secrets.token_hex(3)}"
    user = cloudops.member_connection(admin, auth_url, login, ref.provider_id)
    prefix = f"{login}-tiny"
    with cloudops.flavor_and_image(admin, prefix) as (flavor, image):
        openstack_tenant.provider.set_quota(
            ref, {ResourceClass.VCPU: 2, ResourceClass.INSTANCES: 1, ResourceClass.MEMORY_MIB: 1024}
        )
        cloudops.boot(user, f"{prefix}-vm", flavor, image)
        items = openstack_tenant.provider.list_inventory(ref)
        assert any(i.running and i.kind == "server" for i in items)
        with UnitOfWork(topo.session_factory) as uow:
            summary = replace_cloud_inventory(
                uow.session,
                "changsha",
                observed(items, {ref.provider_id: ref.key}),
                datetime.now(UTC),
            )
            uow.commit()
        assert summary.running >= 1
        done = move(topo, PORTAL, SystemState.ACCEPTED)
        assert done.to_state is SystemState.ACCEPTED and not done.override
        cloudops.delete_servers(admin, ref.provider_id)
