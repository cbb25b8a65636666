"""A small world for worker tests: the sample topology with one cloud pointed at
a real testbed, throwaway org nodes, grants down to them, and the task bodies
run in-process."""

from __future__ import annotations

import copy
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from controlplane.bootstrap import Container
from controlplane.db.uow import UnitOfWork
from controlplane.db.worker_tables import Operation
from controlplane.quotastore.store import SqlQuotaStore
from controlplane.topology.apply import apply_topology
from controlplane.topology.document import parse_document
from controlplane.worker.context import ProviderCache, WorkerContext
from controlplane.worker.provisioning import TASK_RUN_OPERATION, run_operation
from controlplane.worker.relay import relay_outbox
from controlplane.worker.retry import RetryPolicy
from providers.registry import build_provider
from quotas import service
from quotas.model import Actor
from tests.conftest import SAMPLE

ADMIN = Actor("test-admin")


@dataclass
class RecordingDispatcher:
    """Collects what task bodies send, so a test can run them one by one."""

    sent: list[tuple[str, tuple[Any, ...], str, float]] = field(default_factory=list)

    def dispatch(
        self, task: str, args: tuple[Any, ...], *, queue: str, countdown: float = 0.0
    ) -> None:
        self.sent.append((task, args, queue, countdown))

    def take(self, task: str) -> list[tuple[Any, ...]]:
        taken = [s[1] for s in self.sent if s[0] == task]
        self.sent = [s for s in self.sent if s[0] != task]
        return taken


def _sample(cloud: str, connection: Mapping[str, Any]) -> dict[str, Any]:
    """The sample topology with `cloud` pointed at a testbed."""
    data: dict[str, Any] = copy.deepcopy(yaml.safe_load(SAMPLE.read_text(encoding="utf-8")))
    for c in data["clouds"]:
        if c["code"] == cloud:
            c["connection"] = dict(connection)
    return data


def _apply(container: Container, data: dict[str, Any]) -> None:
    apply_topology(container.session_factory, parse_document(data, "world"), source="world")


def apply_world(
    container: Container, cloud: str, connection: Mapping[str, Any], department: str = "hn-health"
) -> str:
    """Points `cloud` at a testbed, adds a random project under `department`;
    returns the project code."""
    data = _sample(cloud, connection)
    project = f"w{secrets.token_hex(4)}"
    data["projects"].append(
        {"code": project, "name": f"工作者测试 {project}", "department": department}
    )
    _apply(container, data)
    return project


@dataclass(frozen=True)
class Municipal:
    """A throwaway prefecture under the province, its departments, one project each."""

    prefecture: str
    departments: tuple[str, ...]
    projects: tuple[str, ...]  # projects[i] belongs to departments[i]


def apply_municipal_world(
    container: Container,
    cloud: str,
    connection: Mapping[str, Any],
    stem: str,
    departments: int = 1,
) -> Municipal:
    """Like `apply_world`, under a prefecture of its own (codes `<stem>-…`), for
    tests whose provider mirrors the upper levels too (Slurm's parent accounts):
    a test then never shares a prefecture or department with another run."""
    data = _sample(cloud, connection)
    world = Municipal(
        prefecture=f"{stem}-pref",
        departments=tuple(f"{stem}-d{i}" for i in range(1, departments + 1)),
        projects=tuple(f"{stem}-p{i}" for i in range(1, departments + 1)),
    )
    data["prefectures"].append({"code": world.prefecture, "name": f"测试市 {stem}"})
    for dept, project in zip(world.departments, world.projects, strict=True):
        data["departments"].append(
            {"code": dept, "name": f"测试市数据局 {dept}", "parent": world.prefecture}
        )
        data["projects"].append(
            {"code": project, "name": f"测试项目 {project}", "department": dept}
        )
    _apply(container, data)
    return world


def grant(
    container: Container,
    cloud: str,
    chain: list[str],
    amounts: Mapping[str, int],
    capacity: Mapping[str, int],
) -> None:
    """Capacity on the pool, then the same amounts on every node of `chain`."""
    with UnitOfWork(container.session_factory) as uow:
        store = SqlQuotaStore(uow.session)
        for rc, total in capacity.items():
            service.set_capacity(store, ADMIN, cloud, rc, total)
        for node in chain:
            for rc, n in amounts.items():
                service.set_grant(store, ADMIN, node, cloud, rc, n)
        uow.commit()


def context(container: Container, dispatcher: RecordingDispatcher) -> WorkerContext:
    cache = ProviderCache(lambda code, kind, conn: build_provider(code, kind, conn, timeout=15))
    return WorkerContext(
        container.session_factory, cache, dispatcher, retry=RetryPolicy(base_s=0.1, cap_s=0.5)
    )


def drain(ctx: WorkerContext) -> list[str]:
    """What the worker does with the outbox, in-process: one relay batch, then the
    task body for every operation it dispatched, in order; their statuses.

    `ctx.dispatcher` must be a RecordingDispatcher."""
    assert isinstance(ctx.dispatcher, RecordingDispatcher)
    relay_outbox(ctx)
    return [
        run_operation(ctx, op_id).status for (op_id,) in ctx.dispatcher.take(TASK_RUN_OPERATION)
    ]


def operations(container: Container) -> list[tuple[int, str, str, str, int, str | None]]:
    """(id, kind, node path, status, attempts, error) of every operation, oldest first:
    what a failed assertion on a drain should show."""
    with UnitOfWork(container.session_factory) as uow:
        rows = uow.session.query(Operation).order_by(Operation.id).all()
        return [
            (o.id, o.kind, o.scope_path, o.status, o.attempts,
             f"{o.last_error_code}: {(o.last_error_message or '')[:300]}"
             if o.last_error_code else None)
            for o in rows
        ]  # fmt: skip
