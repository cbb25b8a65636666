"""Real `yunguan worker` and `yunguan beat` processes on a real Redis broker, with
the Kubernetes testbed: a grant becomes a namespace and quota with no test code
in between; a broker restart loses nothing."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from kubernetes.client import CoreV1Api
from kubernetes.client.exceptions import ApiException

from controlplane.bootstrap import Container
from controlplane.db.outbox import OutboxEvent
from controlplane.db.uow import UnitOfWork
from controlplane.db.worker_tables import Operation
from providers.kubernetes.client import connect
from tests.worker.stack import Redis, Stack
from tests.worker.testbeds import bring_up
from tests.worker.world import apply_world, grant

CLOUD = "ai-centre"
QUEUES = "control,provider.kubernetes"
T = TypeVar("T")


def eventually(what: str, probe: Callable[[], T | None], stack: Stack, timeout: float = 60) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.3)
    pytest.fail(f"timed out waiting for {what}; process logs:\n{stack.logs()}", pytrace=False)


@pytest.fixture(scope="module")
def kube() -> dict[str, str]:
    return bring_up("kubernetes")


@pytest.fixture(scope="module")
def core(kube: dict[str, str]) -> Iterator[CoreV1Api]:
    client = connect(kube["KUBECONFIG"], kube["YUNGUAN_KUBE_CONTEXT_ADMIN"], cloud="t", timeout=15)
    yield client.core
    client.close()


@pytest.fixture
def stack(pg_container: Container, tmp_path: Path) -> Iterator[tuple[Stack, Redis]]:
    redis = Redis(tmp_path / "redis")
    redis.start()
    url = pg_container.engine.url.render_as_string(hide_password=False)
    s = Stack(url, redis.url, tmp_path / "stack")
    try:
        yield s, redis
    finally:
        s.stop()
        redis.stop()


def _ns_quota(core: CoreV1Api, ns: str) -> dict[str, str] | None:
    try:
        return dict(core.read_namespaced_resource_quota("yunguan", ns).spec.hard or {})
    except ApiException:
        return None


def _ops(c: Container) -> list[tuple[str, str, int]]:
    with UnitOfWork(c.session_factory) as uow:
        return [(o.kind, o.status, o.attempts) for o in uow.session.query(Operation).all()]


def test_grant_to_namespace_through_worker_and_beat(
    pg_container: Container,
    stack: tuple[Stack, Redis],
    kube: dict[str, str],
    core: CoreV1Api,
) -> None:
    s, _ = stack
    project = apply_world(
        pg_container,
        CLOUD,
        {
            "kind": "kubernetes",
            "context": kube["YUNGUAN_KUBE_CONTEXT_ADMIN"],
            "kubeconfig": kube["KUBECONFIG"],
        },
    )
    try:
        s.worker(QUEUES)
        s.beat()
        grant(
            pg_container,
            CLOUD,
            ["hn-health", project],
            {"pods": 2, "vcpu": 4},
            {"pods": 100, "vcpu": 64},
        )
        hard = eventually(
            "the namespace quota",
            lambda: (q := _ns_quota(core, f"yg-{project}")) and q.get("pods") == "2" and q,
            s,
        )
        assert hard["requests.cpu"] == "4"
        assert eventually(
            "the operation to succeed",
            lambda: _ops(pg_container) == [("provision", "succeeded", 1)],
            s,
        )
    finally:
        with contextlib.suppress(ApiException):
            core.delete_namespace(f"yg-{project}")


def test_broker_restart_loses_nothing(
    pg_container: Container,
    stack: tuple[Stack, Redis],
    kube: dict[str, str],
    core: CoreV1Api,
) -> None:
    s, redis = stack
    project = apply_world(
        pg_container,
        CLOUD,
        {
            "kind": "kubernetes",
            "context": kube["YUNGUAN_KUBE_CONTEXT_ADMIN"],
            "kubeconfig": kube["KUBECONFIG"],
        },
    )
    try:
        s.worker(QUEUES)
        s.beat()
        redis.stop()  # the broker goes away with everything in it
        grant(pg_container, CLOUD, ["hn-health", project], {"pods": 3}, {"pods": 100})
        time.sleep(3)  # beat's relay runs (and fails to publish) meanwhile
        with UnitOfWork(pg_container.session_factory) as uow:
            assert uow.session.query(OutboxEvent).count() >= 1
        redis.start()  # same port, empty
        eventually(
            "the namespace quota after the broker came back",
            lambda: (_ns_quota(core, f"yg-{project}") or {}).get("pods") == "3",
            s,
            timeout=120,
        )
        with UnitOfWork(pg_container.session_factory) as uow:
            unpublished = (
                uow.session.query(OutboxEvent).filter(OutboxEvent.published_at.is_(None)).count()
            )
        assert unpublished == 0
    finally:
        with contextlib.suppress(ApiException):
            core.delete_namespace(f"yg-{project}")
