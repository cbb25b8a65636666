"""Provisioning on the real OpenStack testbed with real Celery workers and a real
broker: the API's approval becomes a Keystone project with Nova, Cinder and
Neutron quotas equal to the grant; duplicates converge; a worker killed
mid-call, Keystone going away and a permanent rejection all end as they should;
drift on Nova is noticed and corrected."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from controlplane.bootstrap import Container
from controlplane.db.uow import UnitOfWork
from controlplane.db.worker_tables import Operation
from controlplane.identity.roles import Role
from controlplane.worker import operations as ops
from controlplane.worker.celery_app import CeleryDispatcher, make_celery
from controlplane.worker.context import queue_for
from controlplane.worker.provisioning import TASK_RUN_OPERATION
from controlplane.worker.sync import sync_quotas
from tests.contract.openstack import cloudops
from tests.contract.openstack.conftest import (  # noqa: F401 - fixtures used by name
    OsTestbed,
    RunClouds,
    flavor_image,
    run_testbed,
    test_clouds,
    testbed,
)
from tests.worker.flow import Api
from tests.worker.stack import Redis, Stack
from tests.worker.world import RecordingDispatcher, apply_world, context

CLOUD = "provincial"
QUEUES = "control,provider.openstack"
T = TypeVar("T")
_last_ops: list[object] = []  # what `eventually` reports when it gives up


def eventually(
    what: str, probe: Callable[[], T | None], stack: Stack | None, timeout: float = 90
) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.3)
    logs = stack.logs() if stack else ""
    pytest.fail(f"timed out waiting for {what}\n{_last_ops}\n{logs}", pytrace=False)


class Flow:
    """One test's world: the database, the API, the processes, the cloud."""

    def __init__(self, c: Container, clouds: RunClouds, bed: OsTestbed, stack: Stack) -> None:
        self.c, self.clouds, self.bed, self.stack = c, clouds, bed, stack
        self.project = apply_world(c, CLOUD, clouds.connection("provincial"))
        self.api = Api(
            c,
            (
                ("admin", Role.PROVINCE_ADMIN, "hunan"),
                ("member", Role.DEPARTMENT_MEMBER, "hn-health"),
            ),
        )

    def call(self, who: str, method: str, url: str, **kw: Any) -> Any:
        return self.api.call(who, method, url, **kw)

    def grant_department(self, amounts: dict[str, int]) -> None:
        for rc, n in amounts.items():
            self.call("admin", "PUT", f"/v1/pools/{CLOUD}/{rc}", json={"total": n * 100})
            self.call("admin", "PUT", f"/v1/grants/{CLOUD}/hn-health/{rc}", json={"amount": n * 10})

    def request_and_approve(self, items: dict[str, int]) -> int:
        return self.api.request_and_approve("member", "admin", self.project, CLOUD, items)

    def keystone_project(self) -> Any:
        found = list(self.bed.admin.identity.projects(name=f"yg-{self.project}"))
        return found

    def nova(self, project_id: str) -> Any:
        return self.bed.admin.compute.get_quota_set(project_id)

    def operations(self) -> list[Operation]:
        with UnitOfWork(self.c.session_factory) as uow:
            rows = uow.session.query(Operation).order_by(Operation.id).all()
            uow.session.expunge_all()
        _last_ops[:] = [(o.id, o.kind, o.status, o.attempts, o.last_error_code,
                         (o.last_error_message or "")[:300]) for o in rows]
        return rows


@pytest.fixture
def flow(
    pg_container: Container,
    test_clouds: RunClouds,
    testbed: OsTestbed,
    tmp_path: Path,
) -> Iterator[Flow]:
    redis = Redis(tmp_path / "redis")
    redis.start()
    url = pg_container.engine.url.render_as_string(hide_password=False)
    stack = Stack(
        url,
        redis.url,
        tmp_path / "stack",
        extra_env={
            # a short lease so a killed worker's operation is taken over quickly
            "YUNGUAN_WORKER__TASK_HARD_TIME_LIMIT_S": "20",
            "YUNGUAN_WORKER__TASK_SOFT_TIME_LIMIT_S": "15",
            "YUNGUAN_WORKER__LEASE_S": "25",
            "YUNGUAN_WORKER__MAX_COUNTDOWN_S": "3",
        },
    )
    f = Flow(pg_container, test_clouds, testbed, stack)
    try:
        yield f
    finally:
        stack.stop()
        redis.stop()
        for p in f.keystone_project():
            cloudops.purge_project(testbed.admin, testbed.system, p.id)


def test_request_approved_through_the_api_is_provisioned(flow: Flow) -> None:
    flow.stack.worker(QUEUES)
    flow.stack.beat()
    flow.grant_department(
        {"vcpu": 8, "memory_mib": 8192, "instances": 4, "disk_gib": 50, "floating_ips": 2}
    )
    request_id = flow.request_and_approve(
        {"vcpu": 4, "memory_mib": 4096, "instances": 2, "disk_gib": 20, "floating_ips": 1}
    )
    (project,) = eventually("the Keystone project", flow.keystone_project, flow.stack)
    eventually(
        "the operation to succeed",
        lambda: [o.status for o in flow.operations()] == ["succeeded"],
        flow.stack,
    )
    nova = flow.nova(project.id)
    assert (nova.cores, nova.ram, nova.instances) == (4, 4096, 2)
    cinder = flow.bed.admin.block_storage.get_quota_set(project.id)
    assert cinder.gigabytes == 20
    neutron = flow.bed.admin.network.get_quota(project.id)
    assert neutron.floating_ips == 1
    assert "yunguan" in project.tags
    req = flow.call("admin", "GET", f"/v1/requests/{request_id}")
    assert req["state"] == "applied"
    listed = flow.call("member", "GET", "/v1/operations")
    assert [(o["kind"], o["status"], o["node"]) for o in listed] == [
        ("provision", "succeeded", flow.project)
    ]


def send(flow: Flow, task: str, args: tuple[Any, ...], queue: str) -> None:
    """Publishes one task message as the relay would (the app here only sends)."""
    settings = flow.c.settings.model_copy(update={"broker_url": flow.stack.broker_url})
    app = make_celery(settings, lambda _app: context(flow.c, RecordingDispatcher()))
    CeleryDispatcher(app).dispatch(task, args, queue=queue)


def test_duplicates_and_racing_workers_converge(flow: Flow) -> None:
    flow.grant_department({"vcpu": 8})
    flow.request_and_approve({"vcpu": 3})
    # the relay runs in the test, so the operation exists before any worker
    ctx = context(flow.c, RecordingDispatcher())
    from controlplane.worker.relay import relay_outbox

    relay_outbox(ctx)
    (op,) = flow.operations()
    flow.stack.worker(QUEUES, name="w1")
    flow.stack.worker(QUEUES, name="w2")
    for _ in range(2):  # two messages for one operation, two workers
        send(flow, TASK_RUN_OPERATION, (op.id,), queue_for("openstack"))
    eventually(
        "the operation to succeed", lambda: flow.operations()[0].status == "succeeded", flow.stack
    )
    # and the task body once more, directly, on a pending copy of the same work
    with UnitOfWork(flow.c.session_factory) as uow:
        again = ops.create(
            uow.session,
            kind=ops.OpKind.PROVISION,
            cloud_id=op.cloud_id,
            node_id=op.node_id,
            scope_path=op.scope_path,
            generation=0,
            reason="manual",
        )
        uow.commit()
        again_id = again.id
    from controlplane.worker.provisioning import run_operation

    assert run_operation(ctx, again_id).status == "succeeded"
    (project,) = flow.keystone_project()
    assert flow.nova(project.id).cores == 3


def _children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        out += [int(c) for c in (task / "children").read_text().split()]
    return out


def test_worker_killed_mid_call_is_taken_over(flow: Flow) -> None:
    worker = flow.stack.worker(QUEUES, concurrency=1)
    time.sleep(3)  # the pool child exists
    flow.grant_department({"vcpu": 8})
    ctx = context(flow.c, RecordingDispatcher())
    from controlplane.worker.relay import relay_outbox

    flow.request_and_approve({"vcpu": 2})
    relay_outbox(ctx)
    (op,) = flow.operations()
    send(flow, TASK_RUN_OPERATION, (op.id,), queue_for("openstack"))
    eventually(
        "the operation to start",
        lambda: flow.operations()[0].status == "running",
        flow.stack,
        timeout=60,
    )
    killed = 0
    for child in _children(worker.pid):
        os.kill(child, signal.SIGKILL)  # the pool process running the task
        killed += 1
    assert killed == 1
    final = eventually(
        "the operation to succeed after the takeover",
        lambda: (o := flow.operations()[0]).status == "succeeded" and o,
        flow.stack,
        timeout=120,
    )
    assert final.attempts >= 2
    assert len(flow.keystone_project()) == 1


def test_keystone_away_then_back_and_a_permanent_rejection(
    flow: Flow,
    flavor_image: tuple[str, str],
) -> None:
    flow.stack.worker(QUEUES)
    flow.stack.beat()
    flow.grant_department({"vcpu": 8, "instances": 4, "memory_mib": 8192})
    flow.request_and_approve({"vcpu": 2, "instances": 1, "memory_mib": 1024})
    eventually(
        "the first provisioning",
        lambda: [o.status for o in flow.operations()] == ["succeeded"],
        flow.stack,
    )
    # Keystone goes away: the next change retries until it is back.
    keystone = Path.home() / ".cache/yunguan/testbed/openstack/run/keystone.pid"
    pid = int(keystone.read_text().strip())
    os.killpg(pid, signal.SIGTERM)
    eventually("Keystone to stop", lambda: not Path(f"/proc/{pid}").exists(), None, timeout=30)
    try:
        flow.request_and_approve({"vcpu": 3})
        eventually(
            "a failed attempt that will be retried",
            lambda: (
                (o := flow.operations()[-1]).attempts >= 1
                and o.status == "pending"
                and o.last_error_code == "provider.unavailable"
            ),
            flow.stack,
        )
    finally:
        run_testbed("up", "--db-quotas")
    eventually(
        "the retry to succeed once Keystone is back",
        lambda: flow.operations()[-1].status == "succeeded",
        flow.stack,
        timeout=180,
    )
    (project,) = flow.keystone_project()
    assert flow.nova(project.id).cores == 3

    # A server uses the one instance; a grant of 0 instances is below usage.
    flavor, image = flavor_image
    user = cloudops.member_connection(
        flow.bed.admin, flow.bed.auth_url, f"{flow.clouds.run}-{flow.project}-u", project.id
    )
    cloudops.boot(user, f"{flow.project}-vm", flavor, image)
    flow.call("admin", "PUT", f"/v1/grants/{CLOUD}/{flow.project}/instances", json={"amount": 0})
    failed = eventually(
        "the permanent rejection",
        lambda: (o := flow.operations()[-1]).status == "failed" and o,
        flow.stack,
    )
    assert failed.attempts == 1
    assert failed.last_error_code == "provider.rejected"
    assert "instances" in (failed.last_error_message or "")


def test_drift_on_nova_is_corrected(flow: Flow) -> None:
    flow.stack.worker(QUEUES)
    flow.stack.beat()
    flow.grant_department({"vcpu": 8})
    flow.request_and_approve({"vcpu": 2})
    eventually(
        "provisioning", lambda: [o.status for o in flow.operations()] == ["succeeded"], flow.stack
    )
    (project,) = flow.keystone_project()
    flow.bed.admin.compute.update_quota_set(project.id, cores=50)  # by hand, behind our back
    ctx = context(flow.c, RecordingDispatcher())
    started = sync_quotas(ctx, CLOUD)  # one sync cycle (beat runs it every minute)
    assert len(started) == 1
    # the worker needs the trigger: send what the sync queued
    assert isinstance(ctx.dispatcher, RecordingDispatcher)
    for task, args, queue, _ in ctx.dispatcher.sent:
        send(flow, task, args, queue)
    eventually("the drift correction", lambda: flow.nova(project.id).cores == 2, flow.stack)
