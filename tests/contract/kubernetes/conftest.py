"""Fixtures for the Kubernetes adapter, against the real kube-apiserver of the testbed.

`scripts/testbed/kubernetes.sh up` runs once per session (fast when the
testbed is already up; the first run on a fresh machine builds the apiserver).
A testbed that does not come up FAILS the session: a skip would hide it.

Everything a test creates carries the session's random prefix and is removed
in teardown: the test tenants are retired through the adapter (as the port
says) and then their namespaces deleted (they are throwaway); the Node
objects (there is no kubelet: nodes are API objects here) are deleted at the
end of the session.
"""

from __future__ import annotations

import json
import secrets
import shlex
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kubernetes.client import CoreV1Api
from kubernetes.client.exceptions import ApiException

from controlplane.vocabulary import ResourceClass
from providers.base import ProviderError, TenantRef, TenantSpec
from providers.kubernetes.adapter import KubernetesProvider
from providers.kubernetes.client import KubeClient, connect
from tests.contract.kubernetes.testbed import (
    RUN,
    RUN_LABEL,
    TESTBED,
    KubeTestbed,
    SessionNodes,
    make_provider,
    node_body,
)
from tests.secrets_scan import register_secret


def _testbed_up() -> dict[str, str]:
    started = time.monotonic()
    up = subprocess.run(
        ["bash", str(TESTBED), "up"], capture_output=True, text=True, timeout=1800, check=False
    )
    if up.returncode != 0:
        pytest.fail(
            f"Kubernetes testbed did not come up ({TESTBED} up, exit {up.returncode}):\n"
            f"{up.stderr[-3000:]}",
            pytrace=False,
        )
    env = subprocess.run(
        ["bash", str(TESTBED), "env"], capture_output=True, text=True, timeout=60, check=True
    )
    values: dict[str, str] = {}
    for line in env.stdout.splitlines():
        words = shlex.split(line)
        if len(words) == 2 and words[0] == "export" and "=" in words[1]:
            name, _, value = words[1].partition("=")
            values[name] = value
    values["_up_seconds"] = f"{time.monotonic() - started:.1f}"
    return values


@pytest.fixture(scope="session")
def kube_testbed() -> KubeTestbed:
    env = _testbed_up()
    testbed = KubeTestbed(
        kubeconfig=env["KUBECONFIG"],
        admin_context=env["YUNGUAN_KUBE_CONTEXT_ADMIN"],
        norights_context=env["YUNGUAN_KUBE_CONTEXT_NORIGHTS"],
        api_url=env["YUNGUAN_KUBE_API_URL"],
    )
    # The bearer tokens are secrets: the session's log scan fails the run if
    # any log record (ours, the client's, urllib3's) ever contains one.
    config = json.loads(Path(testbed.kubeconfig).read_text(encoding="utf-8"))
    for user in config["users"]:
        register_secret(user["user"]["token"])
    return testbed


@pytest.fixture(scope="session")
def admin_client(kube_testbed: KubeTestbed) -> Iterator[KubeClient]:
    """The test's own hands on the cluster (creating nodes and pods, cleaning up)."""
    client = connect(
        kube_testbed.kubeconfig, kube_testbed.admin_context, cloud="test-admin", timeout=15
    )
    yield client
    client.close()


@pytest.fixture(scope="session")
def core(admin_client: KubeClient) -> CoreV1Api:
    return admin_client.core


@pytest.fixture(scope="session")
def test_nodes(core: CoreV1Api) -> Iterator[SessionNodes]:
    """amd64 with 4 GPUs and 6500m CPU, arm64 without GPUs, plus nodes that must not count.

    The apiserver's TaintNodesByCondition admission gives every new Node the
    `node.kubernetes.io/not-ready:NoSchedule` taint; in a real cluster the node
    lifecycle controller lifts it once the kubelet reports Ready. There is no
    kubelet here, so the fixture lifts it itself, except on `fresh`, which
    shows that a just-registered node is not counted.
    """
    bodies = [
        node_body(f"{RUN}-amd64-gpu", "amd64", gpus=4, allocatable={"cpu": "6500m"}),
        node_body(f"{RUN}-arm64", "arm64"),
        node_body(f"{RUN}-amd64-ready", "amd64", gpus=0, ready="True"),
        node_body(f"{RUN}-amd64-cordoned", "amd64", gpus=8, cordoned=True),
        node_body(f"{RUN}-arm64-notready", "arm64", ready="False"),
        node_body(f"{RUN}-s390x", "s390x"),
        node_body(f"{RUN}-amd64-fresh", "amd64", gpus=2),
    ]
    names = tuple(b["metadata"]["name"] for b in bodies)
    try:
        for body in bodies:
            core.create_node(body)
            if not body["metadata"]["name"].endswith("-fresh"):
                core.patch_node(body["metadata"]["name"], {"spec": {"taints": None}})
        yield SessionNodes(
            selector=f"{RUN_LABEL}={RUN}", names=names, amd64_gpu=names[0], arm64=names[1]
        )
    finally:
        for name in names:
            try:
                core.delete_node(name)
            except ApiException as exc:
                if exc.status != 404:
                    raise


@pytest.fixture(scope="session")
def provider(kube_testbed: KubeTestbed, test_nodes: SessionNodes) -> Iterator[KubernetesProvider]:
    """The adapter, counting only this session's nodes so capacity is exact even
    when another run shares the testbed."""
    p = make_provider(kube_testbed, node_selector=test_nodes.selector)
    yield p
    p.close()


@pytest.fixture
def tenant_spec() -> TenantSpec:
    key = f"{RUN}-{secrets.token_hex(3)}"
    return TenantSpec(
        key=key,
        name=f"契约测试 {key}",
        path=("hunan", "changsha", "cs-data", key),
        description="throwaway tenant of the Kubernetes contract tests",
    )


@pytest.fixture
def new_spec() -> Callable[[], TenantSpec]:
    """More fresh specs for tests that need several tenants."""

    def make() -> TenantSpec:
        key = f"{RUN}-{secrets.token_hex(3)}"
        return TenantSpec(key=key, name=key, path=("hunan", "changsha", "cs-data", key))

    return make


@pytest.fixture
def retire_after(provider: KubernetesProvider, core: CoreV1Api) -> Iterator[list[TenantRef]]:
    tenants: list[TenantRef] = []
    yield tenants
    failures: list[str] = []
    for tenant in tenants:
        try:
            provider.retire_tenant(tenant)
        except ProviderError as exc:
            if exc.code != "provider.not_found":
                failures.append(f"retire {tenant.provider_id}: {exc}")
        try:
            drop_namespace(core, tenant.provider_id)
        except ApiException as exc:
            failures.append(f"delete {tenant.provider_id}: {exc.status}")
    assert not failures, failures


def drop_namespace(core: CoreV1Api, name: str) -> None:
    """Delete a throwaway namespace so that it really goes away on this testbed.

    The namespace controller finishes the deletion asynchronously (nothing
    waits for it), but two things would hold it in Terminating forever here:
    a pod bound to a node waits for a kubelet to confirm its end, and a claim
    keeps the pvc-protection finalizer that only its (absent) controller
    lifts. The test owns both, so it ends them itself.
    """
    try:
        for pod in core.list_namespaced_pod(name).items or []:
            core.delete_namespaced_pod(pod.metadata.name, name, grace_period_seconds=0)
        for claim in core.list_namespaced_persistent_volume_claim(name).items or []:
            core.patch_namespaced_persistent_volume_claim(
                claim.metadata.name, name, {"metadata": {"finalizers": None}}
            )
        core.delete_namespace(name)
    except ApiException as exc:
        if exc.status != 404:
            raise


@pytest.fixture
def quota_sample() -> dict[ResourceClass, int]:
    return {
        ResourceClass.VCPU: 4,
        ResourceClass.MEMORY_MIB: 2048,
        ResourceClass.DISK_GIB: 10,
        ResourceClass.GPU: 1,
        ResourceClass.PODS: 3,
    }


@pytest.fixture
def unsupported_class() -> ResourceClass:
    return ResourceClass.HPC_CORE_HOURS
