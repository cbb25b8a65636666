"""End to end at the adapter level: the quota Yunguan writes is what the apiserver enforces.

A project on the AI training centre gets pods=2, gpu=1, vcpu=4 (and memory:
the tenant starts closed, so a grant without memory admits no pod at all,
see test_tenants.py). The apiserver itself refuses the third pod and a pod
asking for a second GPU; raising the grant with `set_quota` lets them in with
no waiting on the caller's side, because `set_quota` returns only once the
quota controller enforces the new limits.

The same story through Yunguan's normal flow (a department's request approved
through the API, the worker converging the grant onto the cluster) is
tests/worker/test_kubernetes_flow.py.
"""

from __future__ import annotations

import threading

from kubernetes.client import CoreV1Api

from controlplane.vocabulary import ResourceClass as RC
from providers.base import ProviderRejected, TenantRef, TenantSpec
from providers.kubernetes.adapter import KubernetesProvider
from providers.kubernetes.errors import from_api_exception
from tests.contract.kubernetes.testbed import (
    GPU,
    KubeTestbed,
    make_provider,
    pod,
    refused,
    wait_for,
)


def test_ai_centre_grant_is_enforced_by_the_apiserver(
    provider: KubernetesProvider,
    tenant_spec: TenantSpec,
    retire_after: list[TenantRef],
    core: CoreV1Api,
) -> None:
    tenant = provider.ensure_tenant(tenant_spec)
    retire_after.append(tenant)
    ns = tenant.provider_id
    provider.set_quota(tenant, {RC.PODS: 2, RC.GPU: 1, RC.VCPU: 4, RC.MEMORY_MIB: 4096})

    # No waiting here: set_quota returned, so the quota is enforced.
    core.create_namespaced_pod(ns, pod("train-1", {"cpu": "1", GPU: "1"}))

    two_gpus = refused(core, ns, pod("train-2gpu", {"cpu": "1", GPU: "2"}))
    assert two_gpus.status == 403 and "exceeded quota" in str(two_gpus.body)
    assert "requests.nvidia.com/gpu" in str(two_gpus.body)
    second_gpu = refused(core, ns, pod("train-2", {"cpu": "1", GPU: "1"}))
    assert "exceeded quota" in str(second_gpu.body)

    # A pod stating nothing gets the LimitRange defaults, so the quota counts it.
    plain = core.create_namespaced_pod(ns, pod("notebook"))
    requests = plain.spec.containers[0].resources.requests
    assert requests == {"cpu": "250m", "memory": "256Mi"}

    third = refused(core, ns, pod("notebook-2"))
    assert third.status == 403 and "exceeded quota" in str(third.body)
    assert "pods=1" in str(third.body)
    # The adapter's translation of this very refusal keeps the apiserver's words.
    error = from_api_exception(third, cloud=provider.cloud, action="create pod")
    assert isinstance(error, ProviderRejected) and "exceeded quota" in error.message

    def usage_counted() -> dict[RC, int] | None:
        in_use = dict(provider.read_quota(tenant).in_use)
        return in_use if in_use[RC.PODS] == 2 else None

    in_use = wait_for("quota usage of the two pods", usage_counted)
    # gpu pod: cpu 1/1 (request/limit) + notebook 250m/1 -> requests 1.25, limits 2
    assert in_use[RC.GPU] == 1
    assert in_use[RC.VCPU] == 2  # the larger of ceil(1.25) and 2
    # memory: 256Mi + 256Mi requested, 1Gi + 1Gi limits -> 2048 MiB
    assert in_use[RC.MEMORY_MIB] == 2048

    # Raise the grant: both refused pods go through at once.
    provider.set_quota(tenant, {RC.PODS: 4, RC.GPU: 2})
    core.create_namespaced_pod(ns, pod("train-2", {"cpu": "1", GPU: "1"}))
    core.create_namespaced_pod(ns, pod("notebook-2"))
    reading = provider.read_quota(tenant)
    assert reading.limits[RC.PODS] == 4 and reading.limits[RC.GPU] == 2
    assert reading.limits[RC.VCPU] == 4 and reading.limits[RC.MEMORY_MIB] == 4096

    # Lowering below usage is accepted by Kubernetes (running pods stay) and
    # refuses the next pod: decreases are always allowed.
    provider.set_quota(tenant, {RC.PODS: 1})
    assert "exceeded quota" in str(refused(core, ns, pod("late")).body)
    assert len(core.list_namespaced_pod(ns).items) == 4


def test_a_new_tenant_is_closed_until_granted(
    provider: KubernetesProvider,
    tenant_spec: TenantSpec,
    retire_after: list[TenantRef],
    core: CoreV1Api,
) -> None:
    tenant = provider.ensure_tenant(tenant_spec)
    retire_after.append(tenant)
    reading = provider.read_quota(tenant)
    assert all(reading.limits[rc] == 0 for rc in provider.supported_classes())

    def admission_knows_the_quota() -> bool:
        error = refused(core, tenant.provider_id, pod("early"))
        # Until the controller's first sync, admission says "status unknown".
        return "exceeded quota" in str(error.body)

    wait_for("the closed quota to be enforced", admission_knows_the_quota)


def test_concurrent_writers_lose_no_update(
    provider: KubernetesProvider,
    kube_testbed: KubeTestbed,
    tenant_spec: TenantSpec,
    retire_after: list[TenantRef],
) -> None:
    """Two workers set different classes of one tenant at once. Each apply
    re-sends the keys Yunguan owns, so without the resourceVersion guard the
    slower one would write back the other's old value; with it, it gets a 409,
    re-reads and re-applies."""
    tenant = provider.ensure_tenant(tenant_spec)
    retire_after.append(tenant)
    other = make_provider(kube_testbed)
    rounds = 12
    errors: list[BaseException] = []

    def worker(p: KubernetesProvider, rc: RC) -> None:
        try:
            for n in range(1, rounds + 1):
                p.set_quota(tenant, {rc: n})
        except BaseException as exc:  # report in the main thread
            errors.append(exc)

    threads = [
        threading.Thread(target=worker, args=(provider, RC.PODS)),
        threading.Thread(target=worker, args=(other, RC.GPU)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    other.close()
    assert not errors, errors
    limits = provider.read_quota(tenant).limits
    assert limits[RC.PODS] == rounds and limits[RC.GPU] == rounds
