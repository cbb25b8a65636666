"""Tenants as namespaces on the real apiserver: ids, defaults, other managers' fields,
retirement without deleting workloads, refusing namespaces that are not ours, inventory."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from kubernetes.client import CoreV1Api
from kubernetes.client.exceptions import ApiException

from controlplane.vocabulary import Architecture
from controlplane.vocabulary import ResourceClass as RC
from providers.base import (
    ProviderRejected,
    ProviderUnavailable,
    TenantRef,
    TenantSpec,
)
from providers.kubernetes.adapter import KubernetesProvider
from providers.kubernetes.naming import namespace_name
from providers.kubernetes.quotas import APPLY, owned_keys
from tests.contract.kubernetes.testbed import RUN, SessionNodes, wait_for

DOMAIN = "yunguan.hunan.gov.cn"


def managers(obj: Any) -> set[str]:
    return {m.manager for m in obj.metadata.managed_fields or []}


def test_namespace_carries_yunguans_ids_and_defaults(
    provider: KubernetesProvider,
    tenant_spec: TenantSpec,
    retire_after: list[TenantRef],
    core: CoreV1Api,
) -> None:
    tenant = provider.ensure_tenant(tenant_spec)
    retire_after.append(tenant)
    assert tenant.provider_id == f"yg-{tenant_spec.key}"
    ns = core.read_namespace(tenant.provider_id)
    assert ns.metadata.labels["app.kubernetes.io/managed-by"] == "yunguan"
    assert ns.metadata.labels[f"{DOMAIN}/project"] == tenant_spec.key
    assert ns.metadata.labels[f"{DOMAIN}/department"] == "cs-data"
    assert ns.metadata.labels[f"{DOMAIN}/prefecture"] == "changsha"
    assert ns.metadata.annotations[f"{DOMAIN}/name"] == tenant_spec.name  # Chinese kept
    assert ns.metadata.annotations[f"{DOMAIN}/path"] == "/".join(tenant_spec.path)
    limit_range = core.read_namespaced_limit_range("yunguan-defaults", tenant.provider_id)
    (item,) = limit_range.spec.limits
    assert item.type == "Container"
    assert item.default_request == {"cpu": "250m", "memory": "256Mi"}
    assert item.default == {"cpu": "1", "memory": "1Gi"}
    quota = core.read_namespaced_resource_quota("yunguan", tenant.provider_id)
    assert set(quota.spec.hard) == {
        "requests.cpu", "limits.cpu", "requests.memory", "limits.memory",
        "requests.storage", "persistentvolumeclaims", "requests.nvidia.com/gpu", "pods",
    }  # fmt: skip


def test_long_and_odd_keys_get_valid_namespaces(
    provider: KubernetesProvider, retire_after: list[TenantRef]
) -> None:
    key = f"{RUN}-" + "very-long-project-code-" * 3 + "end-"
    spec = TenantSpec(key=key, name="长项目", path=("hunan", "hn-health", key))
    tenant = provider.ensure_tenant(spec)
    retire_after.append(tenant)
    assert tenant.provider_id == namespace_name(key) != f"yg-{key}"
    assert len(tenant.provider_id) <= 63
    assert provider.ensure_tenant(spec) == tenant


def test_fields_of_other_managers_are_left_alone(
    provider: KubernetesProvider,
    tenant_spec: TenantSpec,
    retire_after: list[TenantRef],
    core: CoreV1Api,
) -> None:
    tenant = provider.ensure_tenant(tenant_spec)
    retire_after.append(tenant)
    ns = tenant.provider_id
    provider.set_quota(tenant, {RC.VCPU: 4, RC.PODS: 3})
    # A platform team adds its own key to our quota object, and a label to our namespace.
    theirs = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "yunguan", "namespace": ns},
        "spec": {"hard": {"count/configmaps": "5"}},
    }
    core.patch_namespaced_resource_quota(
        "yunguan", ns, theirs, field_manager="platform-team", _content_type=APPLY
    )
    core.patch_namespace(ns, {"metadata": {"labels": {"team.example/cost-centre": "cc-17"}}})
    # Someone edits one of our keys by hand (an Update, as kubectl edit does).
    core.patch_namespaced_resource_quota(
        "yunguan", ns, {"spec": {"hard": {"pods": "99"}}}, field_manager="kubectl-edit"
    )

    provider.set_quota(tenant, {RC.VCPU: 6})
    provider.set_quota(tenant, {RC.PODS: 3})  # takes our key back
    provider.ensure_tenant(tenant_spec)

    quota = core.read_namespaced_resource_quota("yunguan", ns)
    assert quota.spec.hard["count/configmaps"] == "5"
    assert "count/configmaps" in owned_keys(quota, "platform-team")
    assert "count/configmaps" not in owned_keys(quota, "yunguan")
    assert quota.spec.hard["requests.cpu"] == "6" and quota.spec.hard["pods"] == "3"
    assert "pods" in owned_keys(quota, "yunguan")
    assert core.read_namespace(ns).metadata.labels["team.example/cost-centre"] == "cc-17"
    # Retiring zeroes our keys only.
    provider.retire_tenant(tenant)
    quota = core.read_namespaced_resource_quota("yunguan", ns)
    assert quota.spec.hard["count/configmaps"] == "5"
    assert quota.spec.hard["requests.cpu"] == "0"


def _pod(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "main", "image": "registry.invalid/x:1"}], **spec},
    }


def test_retire_keeps_workloads_and_ensure_revives(
    provider: KubernetesProvider,
    tenant_spec: TenantSpec,
    retire_after: list[TenantRef],
    core: CoreV1Api,
) -> None:
    tenant = provider.ensure_tenant(tenant_spec)
    retire_after.append(tenant)
    ns = tenant.provider_id
    provider.set_quota(tenant, {RC.PODS: 2, RC.VCPU: 2, RC.MEMORY_MIB: 1024})
    core.create_namespaced_pod(ns, _pod("legacy-system"))

    provider.retire_tenant(tenant)
    namespace = core.read_namespace(ns)
    assert namespace.metadata.labels[f"{DOMAIN}/retired"] == "true"
    assert [p.metadata.name for p in core.list_namespaced_pod(ns).items] == ["legacy-system"]
    with pytest.raises(ApiException) as refused:
        core.create_namespaced_pod(ns, _pod("new-one"))
    assert "exceeded quota" in str(refused.value.body)

    assert provider.ensure_tenant(tenant_spec) == tenant
    namespace = core.read_namespace(ns)
    assert f"{DOMAIN}/retired" not in namespace.metadata.labels
    assert "yunguan-retire" not in managers(namespace)
    # Reviving does not re-grant: the quota stays at zero until set_quota.
    assert provider.read_quota(tenant).limits[RC.PODS] == 0


def test_namespaces_that_are_not_ours_are_refused(
    provider: KubernetesProvider,
    new_spec: Callable[[], TenantSpec],
    retire_after: list[TenantRef],
    core: CoreV1Api,
) -> None:
    squatted = new_spec()
    name = namespace_name(squatted.key)
    core.create_namespace({"metadata": {"name": name, "labels": {"owner": "platform"}}})
    try:
        with pytest.raises(ProviderRejected, match="not managed by Yunguan"):
            provider.ensure_tenant(squatted)
        with pytest.raises(ProviderRejected):
            provider.set_quota(TenantRef(key=squatted.key, provider_id=name), {RC.PODS: 1})
        untouched = core.read_namespace(name)
        assert untouched.metadata.labels.get("owner") == "platform"
        assert not any(
            k.startswith(DOMAIN) or k == "app.kubernetes.io/managed-by"
            for k in untouched.metadata.labels
        )
        assert not managers(untouched) & {"yunguan", "yunguan-retire"}
        with pytest.raises(ApiException):  # and no quota was created in it
            core.read_namespaced_resource_quota("yunguan", name)
    finally:
        core.delete_namespace(name)

    # A Yunguan namespace of another project is not this tenant's either.
    mine = provider.ensure_tenant(new_spec())
    retire_after.append(mine)
    with pytest.raises(ProviderRejected, match="belongs to Yunguan project"):
        provider.read_quota(TenantRef(key="someone-else", provider_id=mine.provider_id))


def test_a_namespace_being_deleted_is_retried_later(
    provider: KubernetesProvider,
    tenant_spec: TenantSpec,
    retire_after: list[TenantRef],
    core: CoreV1Api,
) -> None:
    tenant = provider.ensure_tenant(tenant_spec)
    retire_after.append(tenant)
    ns = tenant.provider_id
    # A finalizer on an object inside holds the namespace in Terminating.
    hold = {"metadata": {"name": "hold", "finalizers": [f"{DOMAIN}/test-hold"]}}
    core.create_namespaced_config_map(ns, hold)
    core.delete_namespace(ns)
    try:
        with pytest.raises(ProviderUnavailable, match="being deleted") as info:
            provider.ensure_tenant(tenant_spec)
        assert info.value.retryable
    finally:
        core.patch_namespaced_config_map("hold", ns, {"metadata": {"finalizers": None}})


def test_inventory_lists_pods_and_claims(
    provider: KubernetesProvider,
    tenant_spec: TenantSpec,
    retire_after: list[TenantRef],
    core: CoreV1Api,
    test_nodes: SessionNodes,
) -> None:
    tenant = provider.ensure_tenant(tenant_spec)
    retire_after.append(tenant)
    ns = tenant.provider_id
    provider.set_quota(
        tenant, {RC.PODS: 3, RC.VCPU: 4, RC.MEMORY_MIB: 4096, RC.GPU: 1, RC.DISK_GIB: 5}
    )
    gpu = {"resources": {"limits": {"cpu": "1500m", "memory": "2Gi", "nvidia.com/gpu": "1"}}}
    body = _pod("trainer", nodeName=test_nodes.amd64_gpu)
    body["spec"]["containers"][0].update(gpu)
    core.create_namespaced_pod(ns, body)
    core.create_namespaced_pod(ns, _pod("arm-job", nodeSelector={"kubernetes.io/arch": "arm64"}))
    core.create_namespaced_persistent_volume_claim(
        ns,
        {
            "metadata": {"name": "data"},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1536Mi"}},
            },
        },
    )
    items = {i.name: i for i in provider.list_inventory(tenant)}
    assert set(items) == {"trainer", "arm-job", "data"}
    trainer, arm_job, claim = items["trainer"], items["arm-job"], items["data"]
    # No kubelet: pods stay Pending, so none is running (migration evidence says "not yet").
    assert trainer.kind == "pod" and trainer.status == "Pending" and not trainer.running
    assert trainer.architecture is Architecture.X86_64
    assert trainer.resources == {RC.VCPU: 2, RC.MEMORY_MIB: 2048, RC.GPU: 1}
    assert arm_job.architecture is Architecture.AARCH64
    assert arm_job.resources == {RC.VCPU: 1, RC.MEMORY_MIB: 256}
    assert claim.kind == "pvc" and claim.status == "Pending" and not claim.running
    assert claim.resources == {RC.DISK_GIB: 2}  # 1.5 GiB requested, rounded up
    assert all(i.tenant == ns and i.id for i in items.values())

    everything = provider.list_inventory()
    assert {i.name for i in everything if i.tenant == ns} == {"trainer", "arm-job", "data"}
    assert all(i.tenant and i.tenant.startswith("yg-") for i in everything)
    wait_for("claim counted", lambda: provider.read_quota(tenant).in_use[RC.DISK_GIB] == 2)
