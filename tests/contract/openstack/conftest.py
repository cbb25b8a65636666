"""Fixtures for the OpenStack adapter, against the real testbed (never mocks).

The session starts the testbed (`scripts/testbed/openstack.sh up --db-quotas`:
idempotent, about a second when it already runs in that mode) and fails, never
skips, when it cannot. It then creates two admin users with random passwords
(registered with the log scan) and writes a clouds.yaml of its own, so the
adapter is tested as Yunguan runs it: from a clouds.yaml entry, with its own
credentials. Everything a run creates carries the run's random prefix (the
Keystone domains are `<run>-<scope>`) and is deleted at the end.
"""

from __future__ import annotations

import contextlib
import secrets
import shlex
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from openstack import exceptions as sdk_exc
from openstack.connection import Connection

from controlplane.vocabulary import CloudKind, ResourceClass
from providers.base import CloudProvider, ProviderError, TenantRef, TenantSpec
from providers.registry import build_provider
from tests.contract.openstack import cloudops

REPO = Path(__file__).resolve().parents[3]
TESTBED = REPO / "scripts" / "testbed" / "openstack.sh"
PROVIDER_TIMEOUT_S = 30.0  # generous: the CI machine has 2 busy cores


def run_testbed(*args: str, timeout: float = 900) -> str:
    try:
        done = subprocess.run(
            ["bash", str(TESTBED), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"openstack.sh {' '.join(args)} did not finish in {timeout}s", pytrace=False)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-30:])
        pytest.fail(
            f"openstack.sh {' '.join(args)} failed (exit {done.returncode}):\n{tail}", pytrace=False
        )
    return done.stdout


@dataclass(frozen=True)
class OsTestbed:
    clouds_yaml: Path
    admin: Connection  # project-scoped admin of the testbed itself
    system: Connection  # system-scoped: Keystone limits and system role grants
    auth_url: str


@pytest.fixture(scope="session")
def testbed() -> OsTestbed:
    run_testbed("up", "--db-quotas")
    env = {}
    for line in run_testbed("env").splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        env[name] = shlex.split(value)[0] if value else ""
    clouds_yaml = Path(env["OS_CLIENT_CONFIG_FILE"])
    admin = cloudops.connect_entry(clouds_yaml, env["OS_CLOUD"])
    system = cloudops.connect_entry(clouds_yaml, "testbed-admin-system")
    return OsTestbed(clouds_yaml, admin, system, admin.config.get_auth_args()["auth_url"])


@dataclass(frozen=True)
class RunClouds:
    """This run's clouds.yaml, and connection references into it."""

    run: str  # the random prefix of everything this session creates
    path: Path
    users: dict[str, str]  # entry user -> user id

    def connection(self, entry: str, **extra: Any) -> dict[str, Any]:
        return {
            "kind": "openstack",
            "cloud": entry,
            "clouds_yaml": str(self.path),
            "system_cloud": f"{entry}-system",
            "domain_prefix": self.run,
            **extra,
        }

    def provider(
        self,
        code: str,
        entry: str = "yg-test",
        *,
        timeout: float = PROVIDER_TIMEOUT_S,
        **extra: Any,
    ) -> CloudProvider:
        return build_provider(
            f"{self.run}-{code}",
            CloudKind.OPENSTACK,
            self.connection(entry, **extra),
            timeout=timeout,
        )


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when the block ends


def _entry(auth_url: str, username: str, password: str, *, system: bool) -> dict[str, Any]:
    auth: dict[str, Any] = {
        "auth_url": auth_url,
        "username": username,
        "password": password,
        "user_domain_name": "Default",
    }
    if system:
        auth["system_scope"] = "all"
    else:
        auth.update(project_name="admin", project_domain_name="Default")
    return {
        "auth": auth,
        "region_name": "RegionOne",
        "interface": "public",
        "identity_api_version": 3,
    }


@pytest.fixture(scope="session")
def test_clouds(
    testbed: OsTestbed, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunClouds]:
    run = "ygt" + secrets.token_hex(3)
    admin_project = testbed.admin.current_project_id
    users: dict[str, str] = {}
    passwords: dict[str, str] = {}
    clouds: dict[str, Any] = {}
    try:
        # Two admins, one per Yunguan cloud, as two real clouds would have.
        for who in ("provincial", "changsha"):
            passwords[who] = cloudops.new_password()
            user_id = cloudops.create_user(testbed.admin, f"{run}-{who}", passwords[who], "default")
            users[who] = user_id
            cloudops.grant(testbed.admin, user_id, "admin", project_id=admin_project)
            cloudops.grant(testbed.system, user_id, "admin", system=True)
            for entry in (who, "yg-test") if who == "provincial" else (who,):
                for system in (False, True):
                    clouds[entry + ("-system" if system else "")] = _entry(
                        testbed.auth_url, f"{run}-{who}", passwords[who], system=system
                    )
        dead = f"http://127.0.0.1:{closed_port()}/v3"
        clouds["unreachable"] = _entry(
            dead, f"{run}-provincial", passwords["provincial"], system=False
        )
        clouds["bad-password"] = _entry(
            testbed.auth_url, f"{run}-provincial", cloudops.new_password(), system=False
        )
        path = tmp_path_factory.mktemp("openstack") / "clouds.yaml"
        path.write_text(yaml.safe_dump({"clouds": clouds}))
        path.chmod(0o600)
        yield RunClouds(run, path, users)
    finally:
        cloudops.purge_domains(testbed.admin, testbed.system, run)
        for user_id in users.values():
            with contextlib.suppress(sdk_exc.SDKException):
                testbed.admin.identity.delete_user(user_id)


@pytest.fixture(scope="session")
def flavor_image(testbed: OsTestbed, test_clouds: RunClouds) -> Iterator[tuple[str, str]]:
    with cloudops.flavor_and_image(testbed.admin, f"{test_clouds.run}-tiny") as ids:
        yield ids


# -- the contract suite's fixtures (tests/contract/suite.py) ----------------------


@pytest.fixture(scope="session")
def provider(test_clouds: RunClouds) -> CloudProvider:
    return test_clouds.provider("test")


@pytest.fixture
def tenant_spec(test_clouds: RunClouds) -> TenantSpec:
    key = f"{test_clouds.run}-{secrets.token_hex(3)}"
    return TenantSpec(
        key=key, name=f"长沙市政务服务网 {key}", path=("hunan", "changsha", "cs-data", key)
    )


@pytest.fixture
def retire_after(provider: CloudProvider, testbed: OsTestbed) -> Iterator[list[TenantRef]]:
    refs: list[TenantRef] = []
    yield refs
    for ref in dict.fromkeys(refs):  # retire first (that is the contract), then delete
        with contextlib.suppress(ProviderError):
            provider.retire_tenant(ref)
        cloudops.purge_project(testbed.admin, testbed.system, ref.provider_id)


@pytest.fixture
def quota_sample() -> dict[ResourceClass, int]:
    return {
        ResourceClass.VCPU: 4,
        ResourceClass.MEMORY_MIB: 4096,
        ResourceClass.INSTANCES: 3,
        ResourceClass.DISK_GIB: 20,
        ResourceClass.FLOATING_IPS: 2,
    }


@pytest.fixture
def unsupported_class() -> ResourceClass:
    return ResourceClass.PODS
