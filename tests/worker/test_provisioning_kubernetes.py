"""Task bodies against the real kube-apiserver: relay → operation → namespace and
ResourceQuota equal to the grant; idempotent; drift noticed and corrected."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from kubernetes.client import CoreV1Api
from kubernetes.client.exceptions import ApiException

from controlplane.bootstrap import Container
from controlplane.db.uow import UnitOfWork
from controlplane.db.worker_tables import CloudTenant, Operation, QuotaObservation
from controlplane.worker.provisioning import TASK_RUN_OPERATION, run_operation
from controlplane.worker.sync import sync_cloud, sync_quotas
from providers.kubernetes.client import connect
from tests.worker.testbeds import bring_up
from tests.worker.world import RecordingDispatcher, apply_world, context, drain, grant

CLOUD = "ai-centre"


@pytest.fixture(scope="module")
def kube() -> dict[str, str]:
    return bring_up("kubernetes")


@pytest.fixture(scope="module")
def core(kube: dict[str, str]) -> Iterator[CoreV1Api]:
    client = connect(kube["KUBECONFIG"], kube["YUNGUAN_KUBE_CONTEXT_ADMIN"], cloud="t", timeout=15)
    yield client.core
    client.close()


@pytest.fixture
def project(container: Container, kube: dict[str, str], core: CoreV1Api) -> Iterator[str]:
    code = apply_world(
        container,
        CLOUD,
        {
            "kind": "kubernetes",
            "context": kube["YUNGUAN_KUBE_CONTEXT_ADMIN"],
            "kubeconfig": kube["KUBECONFIG"],
        },
    )
    yield code
    try:
        core.delete_namespace(f"yg-{code}")
    except ApiException as exc:
        if exc.status != 404:
            raise


def _hard(core: CoreV1Api, ns: str) -> dict[str, str]:
    rq = core.read_namespaced_resource_quota("yunguan", ns)
    return dict(rq.spec.hard or {})


def test_grant_becomes_namespace_and_quota(
    container: Container, project: str, core: CoreV1Api
) -> None:
    grant(
        container,
        CLOUD,
        ["hn-health", project],
        {"vcpu": 4, "pods": 2, "gpu": 1, "memory_mib": 8192},
        {"vcpu": 64, "pods": 500, "gpu": 8, "memory_mib": 262144},
    )
    dispatcher = RecordingDispatcher()
    statuses = drain(context(container, dispatcher))
    assert statuses == ["succeeded"]  # one operation: the department grant implies none
    hard = _hard(core, f"yg-{project}")
    assert hard["pods"] == "2"
    assert hard["requests.cpu"] == "4"
    assert hard["requests.nvidia.com/gpu"] == "1"
    assert hard["requests.memory"] == "8Gi"
    assert hard["requests.storage"] == "0"  # nothing granted: nothing allowed

    with UnitOfWork(container.session_factory) as uow:
        op = uow.session.query(Operation).one()
        op_id = op.id
        assert (op.kind, op.status, op.attempts, op.reason) == (
            "provision",
            "succeeded",
            1,
            "event",
        )
        bound = uow.session.query(CloudTenant).one()
        assert bound.provider_id == f"yg-{project}"

    # the same operation again, and a duplicate message: nothing changes
    ctx = context(container, dispatcher)
    assert run_operation(ctx, op_id).status == "succeeded"
    assert _hard(core, f"yg-{project}") == hard


def test_drift_is_reported_and_corrected(
    container: Container, project: str, core: CoreV1Api
) -> None:
    grant(
        container,
        CLOUD,
        ["hn-health", project],
        {"vcpu": 2, "pods": 3, "memory_mib": 1024},
        {"vcpu": 64, "pods": 500, "memory_mib": 262144},
    )
    dispatcher = RecordingDispatcher()
    assert drain(context(container, dispatcher)) == ["succeeded"]
    ns = f"yg-{project}"
    # someone raises the quota by hand, as another field manager
    core.patch_namespaced_resource_quota("yunguan", ns, {"spec": {"hard": {"pods": "50"}}})
    assert _hard(core, ns)["pods"] == "50"

    ctx = context(container, dispatcher)
    started = sync_quotas(ctx, CLOUD)
    assert len(started) == 1
    with UnitOfWork(container.session_factory) as uow:
        drifted = uow.session.query(QuotaObservation).filter_by(drift=True).all()
        assert [(o.resource_class, o.limit, o.granted) for o in drifted] == [("pods", 50, 3)]
    (op_id,) = [a[0] for a in dispatcher.take(TASK_RUN_OPERATION)]
    assert run_operation(ctx, op_id).status == "succeeded"
    deadline = time.monotonic() + 10
    while _hard(core, ns)["pods"] != "3" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _hard(core, ns)["pods"] == "3"
    assert sync_quotas(ctx, CLOUD) == []  # converged: no drift left


def test_report_policy_does_not_correct(
    container: Container, project: str, core: CoreV1Api
) -> None:
    grant(container, CLOUD, ["hn-health", project], {"pods": 3}, {"pods": 500})
    dispatcher = RecordingDispatcher()
    assert drain(context(container, dispatcher)) == ["succeeded"]
    core.patch_namespaced_resource_quota(
        "yunguan", f"yg-{project}", {"spec": {"hard": {"pods": "9"}}}
    )
    ctx = context(container, dispatcher)
    ctx.drift_policy = "report"
    assert sync_quotas(ctx, CLOUD) == []
    with UnitOfWork(container.session_factory) as uow:
        assert uow.session.query(QuotaObservation).filter_by(drift=True).count() == 1


def test_full_sync_records_capacity_and_status(container: Container, project: str) -> None:
    dispatcher = RecordingDispatcher()
    sync_cloud(context(container, dispatcher), CLOUD)
    from controlplane.db.worker_tables import SyncStatus

    with UnitOfWork(container.session_factory) as uow:
        kinds = {
            (s.kind, s.provider_up, s.last_error_code) for s in uow.session.query(SyncStatus).all()
        }
    assert kinds == {
        ("health", True, None),
        ("capacity", True, None),
        ("quotas", True, None),
        ("inventory", True, None),
    }
