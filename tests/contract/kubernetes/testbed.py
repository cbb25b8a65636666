"""Helpers shared by the Kubernetes contract tests (the fixtures are in conftest.py)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import pytest
from kubernetes.client import CoreV1Api, V1Pod
from kubernetes.client.exceptions import ApiException

from providers.kubernetes.adapter import KubernetesProvider
from providers.kubernetes.client import connect

REPO = Path(__file__).resolve().parents[3]
TESTBED = REPO / "scripts" / "testbed" / "kubernetes.sh"
RUN = f"kt{secrets.token_hex(3)}"  # the session's prefix: nodes, tenant keys
RUN_LABEL = "yunguan.test/run"
CLOUD = "ai-centre-test"
GPU = "nvidia.com/gpu"


@dataclass(frozen=True)
class KubeTestbed:
    kubeconfig: str
    admin_context: str
    norights_context: str
    api_url: str


@dataclass(frozen=True)
class SessionNodes:
    """The Node objects of this session, selected by `selector`."""

    selector: str
    names: tuple[str, ...]
    amd64_gpu: str
    arm64: str


def node_body(name: str, arch: str, *, gpus: int | None = None, **extra: Any) -> dict[str, Any]:
    allocatable = {"cpu": "16", "memory": "64Gi", "pods": "110", "ephemeral-storage": "100Gi"}
    if gpus is not None:
        allocatable["nvidia.com/gpu"] = str(gpus)
    allocatable.update(extra.get("allocatable", {}))
    spec: dict[str, Any] = {}
    if extra.get("cordoned"):
        spec["unschedulable"] = True
    status: dict[str, Any] = {"capacity": allocatable, "allocatable": allocatable}
    if "ready" in extra:
        status["conditions"] = [{"type": "Ready", "status": extra["ready"], "reason": "Test"}]
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {"kubernetes.io/arch": arch, "kubernetes.io/os": "linux", RUN_LABEL: RUN},
        },
        "spec": spec,
        "status": status,
    }


def make_provider(
    testbed: KubeTestbed, context: str | None = None, **kw: Any
) -> KubernetesProvider:
    client = connect(testbed.kubeconfig, context or testbed.admin_context, cloud=CLOUD, timeout=10)
    return KubernetesProvider(CLOUD, client, **kw)


T = TypeVar("T")


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 30.0) -> T:
    """Poll until probe() is truthy; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)


def pod(name: str, limits: dict[str, str] | None = None, **spec: Any) -> V1Pod:
    """A pod manifest (the client sends a dict as it is; typed as what it stands for)."""
    container: dict[str, Any] = {"name": "main", "image": "registry.invalid/train:1"}
    if limits:
        # Extended resources need requests == limits; stating only limits
        # makes the apiserver default the requests to them.
        container["resources"] = {"limits": limits}
    manifest = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [container], **spec},
    }
    return cast(V1Pod, manifest)


def refused(core: CoreV1Api, namespace: str, body: V1Pod) -> ApiException:
    with pytest.raises(ApiException) as info:
        core.create_namespaced_pod(namespace, body)
    return info.value
