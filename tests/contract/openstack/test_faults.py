"""Faults: unreachable, silent, misconfigured and under-privileged clouds.

None of these stops the shared testbed: an unreachable Keystone is a
clouds.yaml entry on a closed 127.0.0.1 port, a slow one a socket that accepts
and never answers. (A quota below usage is refused in test_e2e.py, where a
server exists.)
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import yaml
from keystoneauth1 import exceptions as ka_exc

from controlplane.vocabulary import CloudKind
from providers.base import (
    ProviderAuthError,
    ProviderUnavailable,
    TenantRef,
    TenantSpec,
)
from providers.registry import build_provider
from tests.contract.openstack import cloudops
from tests.contract.openstack.conftest import OsTestbed, RunClouds


def spec(run: str) -> TenantSpec:
    key = f"{run}-faulty"
    return TenantSpec(key=key, name="faulty", path=("hunan", "changsha", "cs-data", key))


def test_unreachable_keystone_is_down_and_unavailable(test_clouds: RunClouds) -> None:
    provider = test_clouds.provider("unreachable", "unreachable", timeout=5)
    report = provider.check_health()
    assert not report.up
    assert "cannot reach" in report.checks["identity"]
    assert report.checks["compute"].startswith("skipped")
    for call in (
        lambda: provider.ensure_tenant(spec(test_clouds.run)),
        provider.read_capacity,
        lambda: provider.read_quota(TenantRef("k", "0" * 32)),
    ):
        with pytest.raises(ProviderUnavailable) as info:
            call()
        assert info.value.retryable and info.value.code == "provider.unavailable"
        assert isinstance(info.value.__cause__, ka_exc.ConnectFailure)


def test_bad_credentials_are_an_auth_error(test_clouds: RunClouds) -> None:
    provider = test_clouds.provider("bad-password", "bad-password")
    report = provider.check_health()
    assert not report.up and "HTTP 401" in report.checks["identity"]
    with pytest.raises(ProviderAuthError) as info:
        provider.ensure_tenant(spec(test_clouds.run))
    assert not info.value.retryable and "HTTP 401" in info.value.message


@pytest.fixture
def black_hole() -> Iterator[int]:
    """A port that accepts connections (the kernel completes the handshake) and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield int(listener.getsockname()[1])


@pytest.mark.timeout(120)
def test_a_silent_cloud_times_out_without_blocking_another(
    test_clouds: RunClouds, black_hole: int, tmp_path: Path
) -> None:
    clouds = yaml.safe_load(test_clouds.path.read_text())
    slow = clouds["clouds"]["yg-test"]
    slow["auth"]["auth_url"] = f"http://127.0.0.1:{black_hole}/v3"
    path = tmp_path / "clouds.yaml"
    path.write_text(yaml.safe_dump({"clouds": {"silent": slow}}))
    silent = build_provider(
        f"{test_clouds.run}-silent",
        CloudKind.OPENSTACK,
        {"kind": "openstack", "cloud": "silent", "clouds_yaml": str(path)},
        timeout=1.0,
    )
    healthy = test_clouds.provider("healthy")
    healthy.check_health()  # authenticated already, as a long-running worker would be

    with ThreadPoolExecutor(max_workers=2) as pool:
        started = time.monotonic()
        slow_report = pool.submit(silent.check_health)
        fast_report = pool.submit(healthy.check_health)
        assert fast_report.result().up
        healthy_done = time.monotonic() - started
        assert not slow_report.result().up
        silent_done = time.monotonic() - started
    assert healthy_done < silent_done
    # No hang: the 1 s timeout bounds the whole check (discovery, then the token);
    # the test's own timeout turns a hang into a failure, with no speed target here.
    with pytest.raises(ProviderUnavailable):
        silent.read_capacity()


def test_misconfigured_references_are_auth_errors(test_clouds: RunClouds) -> None:
    missing = test_clouds.provider("nowhere", "no-such-entry")  # building contacts nothing
    with pytest.raises(ProviderAuthError, match="no-such-entry"):
        missing.read_capacity()
    with pytest.raises(ProviderAuthError, match="kind"):
        build_provider("x", CloudKind.OPENSTACK, {"kind": "slurm", "cloud": "x"}, timeout=5)
    with pytest.raises(ProviderAuthError, match="quota_model"):
        build_provider("x", CloudKind.OPENSTACK, {"cloud": "x", "quota_model": "nova"}, timeout=5)


def test_a_policy_refusal_is_an_auth_error(
    testbed: OsTestbed, test_clouds: RunClouds, tmp_path: Path
) -> None:
    """403 from policy means our credentials lack a role: an admin must act (not retryable)."""
    login, password = f"{test_clouds.run}-member", cloudops.new_password()
    user_id = cloudops.create_user(testbed.admin, login, password, "default")
    try:
        cloudops.grant(
            testbed.admin, user_id, "member", project_id=testbed.admin.current_project_id
        )
        clouds = yaml.safe_load(test_clouds.path.read_text())
        entry = clouds["clouds"]["yg-test"]
        entry["auth"].update(username=login, password=password)
        path = tmp_path / "clouds.yaml"
        path.write_text(yaml.safe_dump({"clouds": {"member": entry}}))
        provider = build_provider(
            f"{test_clouds.run}-member",
            CloudKind.OPENSTACK,
            {
                "kind": "openstack",
                "cloud": "member",
                "clouds_yaml": str(path),
                "domain_prefix": test_clouds.run,
            },
            timeout=30,
        )
        with pytest.raises(ProviderAuthError, match="HTTP 403"):
            provider.ensure_tenant(spec(test_clouds.run))
        with pytest.raises(ProviderAuthError, match="HTTP 403"):
            provider.read_capacity()
    finally:
        testbed.admin.identity.delete_user(user_id)
