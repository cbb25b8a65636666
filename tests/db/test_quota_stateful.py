"""Hypothesis drives random sequences of capacity changes, grants, raises,
requests, approvals, reservations, expiries and decreases through the real
service and database (both backends). After every step every invariant holds
and every derived sum equals what it sums; every refusal has an expected code
and leaves the database unchanged; and the service refuses an increase exactly
when the path it draws on lacks the room (an oracle computed from the state
before the step).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import text

from controlplane.bootstrap import Container
from controlplane.db.uow import UnitOfWork
from controlplane.vocabulary import ResourceClass, YunguanError
from quotas import service
from quotas.model import GrantRow, RequestItem
from tests.db.quota_world import ADMIN, QUOTA_TABLES, World, make_world

CLOUD = "provincial"
CLASSES = st.sampled_from([ResourceClass.VCPU, ResourceClass.MEMORY_MIB])
CHAINS = {
    "cs-data-portal": ["hunan", "changsha", "cs-data", "cs-data-portal"],
    "cs-health-his": ["hunan", "changsha", "cs-health", "cs-health-his"],
    "zz-data-portal": ["hunan", "zhuzhou", "zz-data", "zz-data-portal"],
    "hn-health-hrp": ["hunan", "hn-health", "hn-health-hrp"],
}
PARENT = {node: chain[i - 1] for chain in CHAINS.values() for i, node in enumerate(chain) if i}
PROJECTS = st.sampled_from(sorted(CHAINS))
NODES = st.sampled_from(sorted(PARENT))
AMOUNTS = st.integers(0, 200)

# refusal codes each kind of step may legitimately meet
GRANT_CODES = {"quota.exceeded", "quota.below_allocated", "quota.below_usage"}
REQUEST_CODES = GRANT_CODES | {"request.state_conflict"}


class QuotaMachine(RuleBasedStateMachine):
    world: World  # set by the test for its backend

    requests = Bundle("requests")
    reservations = Bundle("reservations")

    def __init__(self) -> None:
        super().__init__()
        with UnitOfWork(self.world.container.session_factory) as uow:
            for table in ("quota_reservations", "quota_requests", *QUOTA_TABLES):
                uow.session.execute(text(f"DELETE FROM {table}"))
            uow.commit()
        self.now = datetime.now(UTC)

    # -- helpers ---------------------------------------------------------------
    def rows(self) -> dict[tuple[ResourceClass, str], GrantRow]:
        _, rows = self.world.run(lambda s: service.grant_tree(s, CLOUD))
        return {(r.resource_class, r.node.code): r for r in rows}

    def free(self, rows: dict[tuple[ResourceClass, str], GrantRow], cls: Any, node: str) -> int:
        row = rows.get((cls, node))
        return row.free if row is not None else 0

    def attempt(self, work: Any, codes: set[str]) -> Any:
        """Run one step; a refusal must carry an expected code and change nothing."""
        before = self.world.snapshot()
        try:
            return self.world.run(work)
        except YunguanError as exc:
            assert exc.code in codes, exc
            assert self.world.snapshot() == before
            return exc

    # -- rules -------------------------------------------------------------------
    @initialize(
        vcpu=st.integers(0, 300),
        memory=st.integers(0, 3000),
        seeds=st.lists(st.integers(0, 80), min_size=len(CHAINS), max_size=len(CHAINS)),
    )
    def capacity(self, vcpu: int, memory: int, seeds: list[int]) -> None:
        self.world.run(lambda s: service.set_capacity(s, ADMIN, CLOUD, "vcpu", vcpu))
        self.world.run(lambda s: service.set_capacity(s, ADMIN, CLOUD, "memory_mib", memory))
        for project, seed in zip(sorted(CHAINS), seeds, strict=True):  # some grants to work on
            for cls in ("vcpu", "memory_mib"):
                self.attempt(
                    lambda s, p=project, c=cls, n=seed: service.raise_grant(
                        s, ADMIN, p, CLOUD, {c: max(1, n)}, draw_from="hunan"
                    ),
                    {"quota.exceeded"},
                )

    @rule(total=st.integers(0, 400))
    def change_capacity(self, total: int) -> None:
        self.attempt(
            lambda s: service.set_capacity(s, ADMIN, CLOUD, "vcpu", total),
            {"quota.capacity_below_allocated"},
        )

    @rule(node=NODES, cls=CLASSES, amount=AMOUNTS, force=st.booleans())
    def set_grant(self, node: str, cls: ResourceClass, amount: int, force: bool) -> None:
        rows = self.rows()
        current = rows[(cls, node)].granted if (cls, node) in rows else 0
        parent_free = self.free(rows, cls, PARENT[node])
        out = self.attempt(
            lambda s: service.set_grant(s, ADMIN, node, CLOUD, cls, amount, force=force),
            GRANT_CODES,
        )
        if amount > current:  # the oracle for increases: the parent's headroom, exactly
            assert isinstance(out, YunguanError) == (amount - current > parent_free), out

    @rule(project=PROJECTS, cls=CLASSES, amount=st.integers(1, 80), up=st.integers(1, 3))
    def raise_grant(self, project: str, cls: ResourceClass, amount: int, up: int) -> None:
        chain = CHAINS[project]
        source = max(0, len(chain) - 1 - up)
        rows = self.rows()
        room = sum(self.free(rows, cls, n) for n in chain[source:-1])
        out = self.attempt(
            lambda s: service.raise_grant(
                s, ADMIN, project, CLOUD, {cls: amount}, draw_from=chain[source]
            ),
            {"quota.exceeded"},
        )
        assert isinstance(out, YunguanError) == (amount > room), (out, room)

    @rule(project=PROJECTS, cls=CLASSES, used=AMOUNTS)
    def observe_usage(self, project: str, cls: ResourceClass, used: int) -> None:
        self.world.run(lambda s: service.set_observed_usage(s, project, CLOUD, cls, used))

    @rule(
        target=requests,
        project=PROJECTS,
        cls=CLASSES,
        amount=st.integers(0, 60),
        absolute=st.booleans(),
    )
    def file_request(
        self, project: str, cls: ResourceClass, amount: int, absolute: bool
    ) -> int | None:
        item = RequestItem(cls, amount if absolute else max(1, amount), absolute=absolute)
        out = self.attempt(
            lambda s: service.file_request(
                s, ADMIN, project, [item], reason="stateful", cloud_code=CLOUD
            ),
            set(),
        )
        return int(out.request.id)

    @rule(req=requests, from_pool=st.booleans())
    def approve(self, req: int, from_pool: bool) -> None:
        self.attempt(
            lambda s: service.approve_request(
                s, ADMIN, req, draw_from="hunan" if from_pool else None
            ),
            REQUEST_CODES,
        )

    @rule(req=requests, reject=st.booleans())
    def decline(self, req: int, reject: bool) -> None:
        if reject:
            work: Any = lambda s: service.reject_request(s, ADMIN, req, note="no")  # noqa: E731
        else:
            work = lambda s: service.cancel_request(s, ADMIN, req)  # noqa: E731
        self.attempt(work, {"request.state_conflict"})

    @rule(
        target=reservations,
        project=PROJECTS,
        cls=CLASSES,
        amount=st.integers(1, 30),
        ttl=st.integers(1, 30),
    )
    def reserve(self, project: str, cls: ResourceClass, amount: int, ttl: int) -> int:
        rows = self.rows()
        free = self.free(rows, cls, project)
        out = self.attempt(
            lambda s: service.reserve(
                s, ADMIN, project, CLOUD, {cls: amount}, ttl=timedelta(minutes=ttl), now=self.now
            ),
            {"quota.exceeded"},
        )
        assert isinstance(out, YunguanError) == (amount > free)
        return -1 if isinstance(out, YunguanError) else int(out.reservation.id)

    @rule(res=reservations, commit=st.booleans())
    def settle(self, res: int, commit: bool) -> None:
        if res < 0:
            return
        if commit:
            work: Any = lambda s: service.commit_reservation(s, ADMIN, res, now=self.now)  # noqa: E731
        else:
            work = lambda s: service.release_reservation(s, ADMIN, res, now=self.now)  # noqa: E731
        self.attempt(work, {"reservation.state_conflict", "reservation.expired"})

    @rule(minutes=st.integers(0, 20))
    def time_passes(self, minutes: int) -> None:
        self.now += timedelta(minutes=minutes)
        self.world.run(lambda s: service.expire_reservations(s, self.now))

    # -- after every step --------------------------------------------------------
    @invariant()
    def sound(self) -> None:
        problems = self.world.run(lambda s: service.check_invariants(s, CLOUD))
        assert problems == [], problems


def test_random_sequences_keep_every_invariant(container: Container, backend: str) -> None:
    QuotaMachine.world = make_world(container)
    run_state_machine_as_test(
        QuotaMachine,
        settings=settings(
            max_examples=25 if backend == "sqlite" else 15,
            stateful_step_count=30,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        ),
    )
