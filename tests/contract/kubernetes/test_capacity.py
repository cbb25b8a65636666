"""Capacity of a cluster with amd64, arm64 and GPU nodes, per architecture and GPU.

The session's nodes (conftest.py): amd64 with 4 GPUs and 6.5 CPUs, amd64
Ready with a zero GPU count, arm64 without GPUs; not counted: a cordoned
amd64 with 8 GPUs, an arm64 that reports NotReady, an s390x (an architecture
Yunguan does not know) and a freshly registered amd64 still carrying the
apiserver's not-ready taint.
"""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes.client import CoreV1Api

from controlplane.vocabulary import Architecture, CloudKind
from controlplane.vocabulary import ResourceClass as RC
from providers.base import CapacityEntry, CloudProvider, TenantRef, TenantSpec
from providers.kubernetes.adapter import KubernetesProvider
from providers.registry import build_provider
from tests.contract.kubernetes.testbed import KubeTestbed, SessionNodes, wait_for

X86, ARM = Architecture.X86_64, Architecture.AARCH64


def by_key(
    entries: tuple[CapacityEntry, ...],
) -> dict[tuple[RC, Architecture | None], CapacityEntry]:
    keyed = {(e.resource_class, e.architecture): e for e in entries}
    assert len(keyed) == len(entries), "one entry per (class, architecture)"
    return keyed


def test_capacity_per_architecture_and_gpu(provider: KubernetesProvider) -> None:
    entries = by_key(provider.read_capacity().entries)
    totals = {key: e.total for key, e in entries.items()}
    assert totals == {
        (RC.VCPU, X86): 22,  # 6500m + 16, floored
        (RC.VCPU, ARM): 16,
        (RC.MEMORY_MIB, X86): 2 * 64 * 1024,
        (RC.MEMORY_MIB, ARM): 64 * 1024,
        (RC.PODS, X86): 220,
        (RC.PODS, ARM): 110,
        (RC.GPU, X86): 4,  # no GPU entry for arm64: no node there offers one
    }
    for e in entries.values():
        assert e.reserved == 0 and e.allocation_ratio == 1.0


def _pod(name: str, **spec: Any) -> dict[str, Any]:
    container = {"name": "main", "image": "registry.invalid/x:1"}
    container.update(spec.pop("container", {}))
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [container], **spec}}  # fmt: skip


def test_used_comes_from_the_quota_split_by_placement(
    provider: KubernetesProvider,
    tenant_spec: TenantSpec,
    retire_after: list[TenantRef],
    core: CoreV1Api,
    test_nodes: SessionNodes,
) -> None:
    tenant = provider.ensure_tenant(tenant_spec)
    retire_after.append(tenant)
    provider.set_quota(tenant, {RC.PODS: 5, RC.GPU: 2, RC.VCPU: 8, RC.MEMORY_MIB: 8192})
    ns = tenant.provider_id
    gpu_limits = {"resources": {"limits": {"cpu": "1500m", "nvidia.com/gpu": "1"}}}
    # Bound to the amd64 GPU node by name (there is no scheduler to do it).
    core.create_namespaced_pod(
        ns, _pod("bound", nodeName=test_nodes.amd64_gpu, container=gpu_limits)
    )
    # Pinned to arm64, not yet bound: LimitRange defaults, 250m.
    core.create_namespaced_pod(ns, _pod("pinned", nodeSelector={"kubernetes.io/arch": "arm64"}))
    wait_for("quota usage of both pods", lambda: provider.read_quota(tenant).in_use[RC.PODS] == 2)

    entries = by_key(provider.read_capacity().entries)
    # Other Yunguan tenants on a shared testbed may add to `used`, never subtract.
    assert entries[(RC.GPU, X86)].used >= 1
    assert entries[(RC.VCPU, X86)].used >= 2  # 1500m -> 2
    assert entries[(RC.VCPU, ARM)].used >= 1  # 250m -> 1
    assert entries[(RC.PODS, ARM)].used >= 1
    assert entries[(RC.PODS, X86)].used >= 1


def test_without_a_node_selector_every_node_counts(
    kube_testbed: KubeTestbed, test_nodes: SessionNodes
) -> None:
    """The registry builds the adapter from a topology connection; it counts all
    nodes, so the session's are a lower bound."""
    provider = build_provider(
        "ai-centre",
        CloudKind.KUBERNETES,
        {
            "kind": "kubernetes",
            "context": kube_testbed.admin_context,
            "kubeconfig": kube_testbed.kubeconfig,
        },
        timeout=10,
    )
    assert isinstance(provider, CloudProvider)
    assert provider.kind is CloudKind.KUBERNETES
    entries = by_key(provider.read_capacity().entries)
    assert entries[(RC.GPU, X86)].total >= 4
    assert entries[(RC.VCPU, ARM)].total >= 16
    assert {arch for _, arch in entries} <= {X86, ARM, Architecture.LOONGARCH64,
                                            Architecture.MIPS64EL, Architecture.SW_64}  # fmt: skip


def test_kubeconfig_defaults_to_the_environment(
    kube_testbed: KubeTestbed, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", kube_testbed.kubeconfig)
    provider = build_provider(
        "ai-centre",
        CloudKind.KUBERNETES,
        {"kind": "kubernetes", "context": kube_testbed.admin_context, "kubeconfig": None},
    )
    assert provider.check_health().up
