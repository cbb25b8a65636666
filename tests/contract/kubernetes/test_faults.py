"""Faults: an unreachable or silent apiserver, credentials without rights or rejected,
an untrusted certificate, broken kubeconfig references, and the apiserver's own
refusals, each surfacing as the right `providers.base` error, chained to its cause.

The shared apiserver is never stopped: "unreachable" is a kubeconfig written
to tmp that points at a closed port on 127.0.0.1, "silent" one that points at
a socket that accepts connections and never answers.
"""

from __future__ import annotations

import base64
import datetime
import json
import secrets
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import urllib3
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from kubernetes.client import CoreV1Api
from kubernetes.client.exceptions import ApiException

from controlplane.vocabulary import CloudKind
from controlplane.vocabulary import ResourceClass as RC
from providers.base import (
    ProviderAuthError,
    ProviderError,
    ProviderNotFound,
    ProviderRejected,
    ProviderUnavailable,
    TenantRef,
    TenantSpec,
)
from providers.kubernetes.adapter import KubernetesProvider
from providers.kubernetes.client import connect
from providers.kubernetes.errors import from_api_exception
from providers.registry import build_provider
from tests.contract.kubernetes.testbed import CLOUD, KubeTestbed, make_provider
from tests.secrets_scan import register_secret


def write_kubeconfig(testbed: KubeTestbed, path: Path, **change: str) -> str:
    """A copy of the testbed kubeconfig with the admin context's server, token or CA changed."""
    config = json.loads(Path(testbed.kubeconfig).read_text(encoding="utf-8"))
    cluster = config["clusters"][0]["cluster"]
    if "server" in change:
        cluster["server"] = change["server"]
    if "ca_pem" in change:
        cluster["certificate-authority-data"] = base64.b64encode(change["ca_pem"].encode()).decode()
    if "token" in change:
        for user in config["users"]:
            user["user"]["token"] = change["token"]
    path.write_text(json.dumps(config), encoding="utf-8")
    path.chmod(0o600)
    return str(path)


def faulty_provider(path: str, testbed: KubeTestbed, *, timeout: float = 5) -> KubernetesProvider:
    return KubernetesProvider(
        CLOUD, connect(path, testbed.admin_context, cloud=CLOUD, timeout=timeout)
    )


def every_verb_raises(provider: KubernetesProvider, expected: type[ProviderError]) -> None:
    tenant = TenantRef(key="anyone", provider_id="yg-anyone")
    spec = TenantSpec(key="anyone", name="anyone", path=("hunan", "x", "anyone"))
    calls: list[Any] = [
        lambda: provider.ensure_tenant(spec),
        lambda: provider.set_quota(tenant, {RC.PODS: 1}),
        lambda: provider.read_quota(tenant),
        provider.read_capacity,
        provider.list_inventory,
        lambda: provider.list_inventory(tenant),
        lambda: provider.retire_tenant(tenant),
    ]
    for call in calls:
        with pytest.raises(expected) as info:
            call()
        assert info.value.__cause__ is not None, "translated errors are chained"
        assert info.value.cloud == CLOUD


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def silent_port() -> Iterator[int]:
    """Accepts TCP connections (the kernel does) and never says a word."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        yield int(s.getsockname()[1])


def test_unreachable_apiserver(kube_testbed: KubeTestbed, tmp_path: Path, closed_port: int) -> None:
    path = write_kubeconfig(
        kube_testbed, tmp_path / "kubeconfig", server=f"https://127.0.0.1:{closed_port}"
    )
    provider = faulty_provider(path, kube_testbed)
    started = time.monotonic()
    report = provider.check_health()
    assert not report.up and "unreachable" in report.detail
    assert report.latency_ms >= 0
    every_verb_raises(provider, ProviderUnavailable)
    assert time.monotonic() - started < 10, "refused connections must fail fast"
    with pytest.raises(ProviderUnavailable) as info:
        provider.read_capacity()
    assert info.value.retryable
    assert isinstance(info.value.__cause__, urllib3.exceptions.HTTPError)


def test_silent_apiserver_times_out(
    kube_testbed: KubeTestbed, tmp_path: Path, silent_port: int
) -> None:
    path = write_kubeconfig(
        kube_testbed, tmp_path / "kubeconfig", server=f"https://127.0.0.1:{silent_port}"
    )
    provider = faulty_provider(path, kube_testbed, timeout=1)
    started = time.monotonic()
    with pytest.raises(ProviderUnavailable):
        provider.read_capacity()
    assert time.monotonic() - started < 5, "every request has a timeout"
    report = provider.check_health()
    assert not report.up


def test_credentials_without_rights(
    kube_testbed: KubeTestbed,
    provider: KubernetesProvider,
    tenant_spec: TenantSpec,
    retire_after: list[TenantRef],
) -> None:
    tenant = provider.ensure_tenant(tenant_spec)
    retire_after.append(tenant)
    weak = make_provider(kube_testbed, kube_testbed.norights_context)
    with pytest.raises(ProviderAuthError, match="cannot") as info:
        weak.ensure_tenant(tenant_spec)
    assert not info.value.retryable
    assert isinstance(info.value.__cause__, ApiException)
    with pytest.raises(ProviderAuthError):
        weak.set_quota(tenant, {RC.PODS: 1})
    every_verb_raises(weak, ProviderAuthError)
    # The cluster is fine; only our rights are missing.
    report = weak.check_health()
    assert report.up
    assert report.checks["rights"].startswith("missing")
    assert "lack rights" in report.detail


def test_rejected_credentials(kube_testbed: KubeTestbed, tmp_path: Path) -> None:
    token = register_secret(secrets.token_hex(24))
    path = write_kubeconfig(kube_testbed, tmp_path / "kubeconfig", token=token)
    provider = faulty_provider(path, kube_testbed)
    report = provider.check_health()
    assert not report.up and "credentials rejected" in report.detail
    every_verb_raises(provider, ProviderAuthError)


def _foreign_ca() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "not-the-testbed-ca")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def test_untrusted_certificate(kube_testbed: KubeTestbed, tmp_path: Path) -> None:
    path = write_kubeconfig(kube_testbed, tmp_path / "kubeconfig", ca_pem=_foreign_ca())
    provider = faulty_provider(path, kube_testbed)
    with pytest.raises(ProviderAuthError, match="not trusted"):
        provider.read_capacity()
    assert not provider.check_health().up


def test_broken_connection_references(kube_testbed: KubeTestbed, tmp_path: Path) -> None:
    connection = {"kind": "kubernetes", "context": "no-such-context"}
    with pytest.raises(ProviderAuthError, match="no-such-context"):
        build_provider(
            CLOUD, CloudKind.KUBERNETES, {**connection, "kubeconfig": kube_testbed.kubeconfig}
        )
    with pytest.raises(ProviderAuthError):
        build_provider(
            CLOUD,
            CloudKind.KUBERNETES,
            {"kind": "kubernetes", "context": "x", "kubeconfig": str(tmp_path / "missing")},
        )
    with pytest.raises(ProviderRejected):
        KubernetesProvider.from_connection(CLOUD, {"kind": "slurm", "context": "x"}, timeout=1)
    with pytest.raises(ProviderRejected):
        KubernetesProvider.from_connection(CLOUD, {"kind": "kubernetes"}, timeout=1)


def test_apiserver_refusals_are_translated(
    provider: KubernetesProvider,
    tenant_spec: TenantSpec,
    retire_after: list[TenantRef],
    core: CoreV1Api,
) -> None:
    tenant = provider.ensure_tenant(tenant_spec)
    retire_after.append(tenant)
    ns = tenant.provider_id

    def caught(call: Any) -> ApiException:
        with pytest.raises(ApiException) as info:
            call()
        return info.value

    invalid = caught(
        lambda: core.create_namespaced_resource_quota(
            ns, {"metadata": {"name": "bad"}, "spec": {"hard": {"pods": "-1"}}}
        )
    )
    exists = caught(
        lambda: core.create_namespaced_resource_quota(
            ns, {"metadata": {"name": "yunguan"}, "spec": {"hard": {"pods": "1"}}}
        )
    )
    missing = caught(lambda: core.read_namespace("yg-no-such-namespace-here"))
    for exc, expected, words in [
        (invalid, ProviderRejected, "must be greater than or equal to 0"),
        (exists, ProviderRejected, "already exists"),
        (missing, ProviderNotFound, "not found"),
    ]:
        error = from_api_exception(exc, cloud=CLOUD, action="test")
        assert type(error) is expected and words in error.message, error.message

    with pytest.raises(ProviderRejected, match="negative"):
        provider.set_quota(tenant, {RC.PODS: -1})
