"""Issue 8 end to end, through Yunguan's normal flow, on the real kube-apiserver.

The `ai-centre` cloud of the sample topology (kind kubernetes, owned by the
province) points at the testbed's admin context. Everything goes through the
API with real tokens: an admin declares capacity and grants a provincial
department its envelope, a member of the department files a request for its
project, the admin approves it; the worker's code path then runs in-process
(`relay_outbox`, then `run_operation` for each operation it dispatched). The
apiserver itself then refuses what the grant does not allow, and admits it
once a second approved request raises the grant.

Capacity: Node objects (amd64 with GPUs, arm64; there is no kubelet) carry a
label of their own, and the adapter counts only the nodes with it (its
dedicated-node-pool selector; the topology's connection cannot name one, so
the test's worker context builds the adapter with it). `sync_capacity`, the
periodic task body, stores one row per (class, architecture) and the pools
follow, as `GET /v1/pools` shows.

Both database backends (`container`). Every namespace and node a test creates
is removed in teardown.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator, Mapping
from typing import Any, Literal, cast

import pytest
from kubernetes.client import CoreV1Api, V1Node
from kubernetes.client.exceptions import ApiException
from sqlalchemy import select

from controlplane.bootstrap import Container
from controlplane.db.tables import Cloud
from controlplane.db.uow import UnitOfWork
from controlplane.db.worker_tables import CapacityObservation
from controlplane.identity.roles import Role
from controlplane.worker.context import ProviderCache, WorkerContext
from controlplane.worker.sync import sync_capacity
from providers.kubernetes.adapter import KubernetesProvider
from providers.kubernetes.client import connect
from providers.kubernetes.naming import namespace_name
from tests.contract.kubernetes.conftest import (  # noqa: F401 - fixtures used by name
    admin_client,
    core,
    drop_namespace,
    kube_testbed,
)
from tests.contract.kubernetes.testbed import (
    GPU,
    RUN,
    RUN_LABEL,
    KubeTestbed,
    node_body,
    pod,
    refused,
)
from tests.worker.flow import Api
from tests.worker.world import RecordingDispatcher, apply_world, context, drain, operations

CLOUD = "ai-centre"
DEPARTMENT = "hn-health"  # a provincial department; the province approves its requests
POOL_LABEL = "yunguan.test/flow-pool"
COUNTED = ("vcpu", "memory_mib", "pods", "gpu")  # what nodes offer, per architecture


class KubeFlow:
    """One test's world: the database, the API, the in-process worker, the cluster."""

    def __init__(self, c: Container, tb: KubeTestbed) -> None:
        self.c = c
        connection = {"kind": "kubernetes", "context": tb.admin_context,
                      "kubeconfig": tb.kubeconfig}  # fmt: skip
        self.project = apply_world(c, CLOUD, connection, DEPARTMENT)
        self.namespace = namespace_name(self.project)
        self.api = Api(
            c,
            (
                ("admin", Role.PROVINCE_ADMIN, "hunan"),
                ("member", Role.DEPARTMENT_MEMBER, DEPARTMENT),
            ),
        )
        self.ctx = context(c, RecordingDispatcher())

    def declare(self, capacity: Mapping[str, int]) -> None:
        for rc, total in capacity.items():
            self.api.call("admin", "PUT", f"/v1/pools/{CLOUD}/{rc}", json={"total": total})

    def grant_department(self, amounts: Mapping[str, int]) -> None:
        for rc, n in amounts.items():
            url = f"/v1/grants/{CLOUD}/{DEPARTMENT}/{rc}"
            self.api.call("admin", "PUT", url, json={"amount": n})

    def request(
        self, items: Mapping[str, int], how: Literal["absolute", "delta"] = "absolute"
    ) -> int:
        return self.api.request_and_approve("member", "admin", self.project, CLOUD, items, how)

    def converge(self) -> None:
        """The relay and the task body, in-process: one provisioning, succeeded
        (only Slurm mirrors the department above the project)."""
        assert drain(self.ctx) == ["succeeded"], operations(self.c)

    def pools(self) -> dict[str, dict[str, Any]]:
        rows = self.api.call("admin", "GET", "/v1/pools", params={"cloud": CLOUD})
        return {r["resource_class"]: r for r in rows}


def quota_hard(core: CoreV1Api, namespace: str) -> dict[str, str]:
    quota = core.read_namespaced_resource_quota("yunguan", namespace)
    return dict((quota.spec.hard if quota.spec else None) or {})


@pytest.fixture
def flow(container: Container, kube_testbed: KubeTestbed, core: CoreV1Api) -> Iterator[KubeFlow]:
    f = KubeFlow(container, kube_testbed)
    try:
        yield f
    finally:
        drop_namespace(core, f.namespace)


def test_approved_grant_is_enforced_by_the_apiserver_and_a_raise_lets_pods_in(
    flow: KubeFlow, core: CoreV1Api
) -> None:
    flow.declare({"pods": 500, "gpu": 8, "vcpu": 64, "memory_mib": 262144})
    flow.grant_department({"pods": 20, "gpu": 4, "vcpu": 16, "memory_mib": 32768})
    # New tenants start closed (0 for every class not granted), so memory too.
    request_id = flow.request({"pods": 2, "gpu": 1, "vcpu": 4, "memory_mib": 8192})
    flow.converge()
    assert flow.api.call("admin", "GET", f"/v1/requests/{request_id}")["state"] == "applied"
    ns = flow.namespace
    hard = quota_hard(core, ns)
    assert (hard["pods"], hard["requests.cpu"], hard["requests.nvidia.com/gpu"]) == ("2", "4", "1")
    assert hard["requests.storage"] == "0"  # disk was not granted

    core.create_namespaced_pod(ns, pod("train-1", {"cpu": "1", GPU: "1"}))
    two_gpus = refused(core, ns, pod("train-2gpu", {"cpu": "1", GPU: "2"}))
    assert two_gpus.status == 403 and "exceeded quota" in str(two_gpus.body)
    assert "requests.nvidia.com/gpu" in str(two_gpus.body)
    core.create_namespaced_pod(ns, pod("notebook"))  # LimitRange defaults: counted too
    third = refused(core, ns, pod("notebook-2"))
    assert third.status == 403 and "exceeded quota" in str(third.body)
    assert "pods=1" in str(third.body)

    # A second request raises the grant; once approved and applied, both go in.
    raise_id = flow.request({"pods": 2, "gpu": 2}, how="delta")
    flow.converge()
    assert flow.api.call("admin", "GET", f"/v1/requests/{raise_id}")["state"] == "applied"
    core.create_namespaced_pod(ns, pod("notebook-2"))
    core.create_namespaced_pod(ns, pod("train-2gpu", {"cpu": "1", GPU: "2"}))
    hard = quota_hard(core, ns)
    assert (hard["pods"], hard["requests.nvidia.com/gpu"]) == ("4", "3")
    assert len(core.list_namespaced_pod(ns).items) == 4


@pytest.fixture
def node_pool(core: CoreV1Api) -> Iterator[tuple[str, list[str]]]:
    """(label value, node names): the test creates the nodes, this removes them."""
    label, names = f"{RUN}-{secrets.token_hex(3)}", list[str]()
    yield label, names
    for name in names:
        try:
            core.delete_node(name)
        except ApiException as exc:
            if exc.status != 404:
                raise


def add_node(
    core: CoreV1Api, pool: tuple[str, list[str]], suffix: str, arch: str, **kw: Any
) -> None:
    label, names = pool
    body = node_body(f"{label}-{suffix}", arch, **kw)
    labels = body["metadata"]["labels"]
    del labels[RUN_LABEL]  # the contract suite's session nodes must stay exactly its own
    labels[POOL_LABEL] = label
    names.append(body["metadata"]["name"])
    core.create_node(cast(V1Node, body))  # a manifest dict, sent as it is
    # No kubelet lifts the apiserver's not-ready taint; the test does (as the
    # contract fixtures do), or the node would not count.
    core.patch_node(body["metadata"]["name"], {"spec": {"taints": None}})


def pool_context(c: Container, selector: str) -> WorkerContext:
    """The worker's context, its Kubernetes adapter counting one node pool."""
    ctx = context(c, RecordingDispatcher())
    ctx.providers = ProviderCache(
        lambda code, _kind, conn: KubernetesProvider(
            code,
            connect(conn["kubeconfig"], conn["context"], cloud=code, timeout=15),
            node_selector=selector,
        )
    )
    return ctx


def observed(c: Container) -> dict[tuple[str, str], int]:
    with UnitOfWork(c.session_factory) as uow:
        cloud_id = uow.session.scalar(select(Cloud.id).where(Cloud.code == CLOUD))
        rows = uow.session.scalars(
            select(CapacityObservation).where(CapacityObservation.cloud_id == cloud_id)
        ).all()
        return {(r.resource_class, r.architecture): r.total for r in rows}


def test_capacity_per_architecture_and_gpu_follows_into_the_pools(
    flow: KubeFlow, container: Container, core: CoreV1Api, node_pool: tuple[str, list[str]]
) -> None:
    flow.declare({"vcpu": 64, "memory_mib": 262144, "pods": 500, "gpu": 8})
    before = flow.pools()
    assert {rc: before[rc]["source"] for rc in COUNTED} == dict.fromkeys(COUNTED, "declared")
    add_node(core, node_pool, "amd64-gpu", "amd64", gpus=4)
    add_node(core, node_pool, "arm64", "arm64")
    ctx = pool_context(container, f"{POOL_LABEL}={node_pool[0]}")

    sync_capacity(ctx, CLOUD)
    gib64 = 64 * 1024
    assert observed(container) == {
        ("vcpu", "x86_64"): 16,
        ("vcpu", "aarch64"): 16,
        ("memory_mib", "x86_64"): gib64,
        ("memory_mib", "aarch64"): gib64,
        ("pods", "x86_64"): 110,
        ("pods", "aarch64"): 110,
        ("gpu", "x86_64"): 4,  # no GPU row for arm64: no node there offers one
    }
    pools = flow.pools()
    assert {rc: (pools[rc]["total"], pools[rc]["source"]) for rc in COUNTED} == {
        "vcpu": (32, "observed"),
        "memory_mib": (2 * gib64, "observed"),
        "pods": (220, "observed"),
        "gpu": (4, "observed"),
    }
    assert pools["disk_gib"] == before["disk_gib"]  # nodes offer no claimable storage

    # Another arm64 node joins: its architecture's rows and the pools follow.
    add_node(core, node_pool, "arm64-2", "arm64")
    sync_capacity(ctx, CLOUD)
    rows = observed(container)
    assert (rows[("vcpu", "aarch64")], rows[("vcpu", "x86_64")]) == (32, 16)
    assert rows[("gpu", "x86_64")] == 4 and ("gpu", "aarch64") not in rows
    pools = flow.pools()
    assert (pools["vcpu"]["total"], pools["pods"]["total"], pools["gpu"]["total"]) == (48, 330, 4)

    # Nothing changed: the pools' generations (their ETags) do not churn.
    sync_capacity(ctx, CLOUD)
    assert {rc: p["generation"] for rc, p in flow.pools().items()} == {
        rc: p["generation"] for rc, p in pools.items()
    }
