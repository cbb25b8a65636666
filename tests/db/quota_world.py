"""Shared set-up for the quota tests: the sample topology plus test projects, and
helpers to run one use case per transaction and to snapshot the quota tables."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import yaml
from sqlalchemy import text

from controlplane.bootstrap import Container
from controlplane.db.retry import run_in_transaction
from controlplane.db.uow import UnitOfWork
from controlplane.quotastore import SqlQuotaStore
from controlplane.topology.apply import apply_topology
from controlplane.topology.document import parse_document
from quotas.model import Actor
from tests.conftest import SAMPLE

T = TypeVar("T")
ADMIN = Actor("test-admin", ("/hunan/",))
QUOTA_TABLES = (
    "quota_grants",
    "quota_requests",
    "quota_reservations",
    "quota_usage",
    "quota_auto_approval",
    "outbox",
)


def topology(projects: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """The sample document plus projects {department: [codes]}."""
    data: dict[str, Any] = copy.deepcopy(yaml.safe_load(SAMPLE.read_text(encoding="utf-8")))
    for dept, codes in (projects or {}).items():
        data["projects"] += [{"code": c, "name": c, "department": dept} for c in codes]
    return data


@dataclass
class World:
    container: Container

    def run(self, work: Callable[[SqlQuotaStore], T]) -> T:
        return run_in_transaction(
            self.container.session_factory, lambda session: work(SqlQuotaStore(session))
        )

    def snapshot(self) -> dict[str, list[tuple[Any, ...]]]:
        with UnitOfWork(self.container.session_factory) as uow:
            return {
                t: sorted(
                    tuple(str(v) for v in row)
                    for row in uow.session.execute(text(f"SELECT * FROM {t}")).all()
                )
                for t in QUOTA_TABLES
            }

    def count(self, table: str) -> int:
        with UnitOfWork(self.container.session_factory) as uow:
            return int(uow.session.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


def make_world(container: Container, projects: dict[str, list[str]] | None = None) -> World:
    doc = parse_document(topology(projects), "test.yaml")
    apply_topology(container.session_factory, doc, source="test.yaml")
    return World(container)
