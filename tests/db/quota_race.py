"""The race for the last headroom, shared by the thread and the process tests.

Set-up (provincial cloud, vcpu; the pool allows 40 × 4.0 − 65 = 95):

    pool 95 ── changsha 60 ── cs-data 20 ── race-a00 … a11    A: +4 each, drawn on changsha
           │              └── cs-health 0 ── race-b00 … b11   B: approvals of +4 (changsha)
           │── zhuzhou ─ zz-data ─ race-c00 … c05             C: +5 each, drawn on the pool
           └── hn-health 20 ── race-r 10                      E: 6 reservations of 3
    zhuzhou's own cloud: 3 pending requests, each approved by 2 threads at once   D

What fits, whatever the interleaving: A and B share cs-data's 20 (only A can
use it: 5 admissions) and changsha's 40 (10 more) → exactly 15; C shares the
pool's last 15 → 3; D → 3 approvals and 3 `request.state_conflict`; E → 3.
42 writers; every other attempt fails with the right code, never a lost race.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from controlplane.db.engine import make_engine, make_session_factory
from controlplane.db.retry import run_in_transaction
from controlplane.quotastore import SqlQuotaStore
from controlplane.vocabulary import ResourceClass, YunguanError
from quotas import service
from quotas.model import Actor, RequestItem
from tests.db.quota_world import World

PROJECTS = {
    "cs-data": [f"race-a{i:02d}" for i in range(12)],
    "cs-health": [f"race-b{i:02d}" for i in range(12)],
    "zz-data": [f"race-c{i:02d}" for i in range(6)],
    "hn-health": ["race-r"],
}
EXPECTED_OK = {"AB": 15, "C": 3, "D": 3, "E": 3}
ACTOR = Actor("racer")


@dataclass(frozen=True)
class Task:
    group: str  # AB, C, D or E
    kind: str  # raise, approve, reserve
    target: str  # a project code or a request id
    amount: int = 0
    draw_from: str | None = None


def prepare(w: World) -> list[Task]:
    """Grants and pending requests as drawn above; returns the racing tasks."""
    w.run(lambda s: service.set_capacity(s, ACTOR, "provincial", "vcpu", 40, reserved=65))
    for node, amount in [("changsha", 60), ("cs-data", 20), ("hn-health", 20), ("race-r", 10)]:
        w.run(lambda s, n=node, a=amount: service.set_grant(s, ACTOR, n, "provincial", "vcpu", a))
    w.run(lambda s: service.set_capacity(s, ACTOR, "zhuzhou", "vcpu", 1000))
    w.run(lambda s: service.set_grant(s, ACTOR, "zz-data", "zhuzhou", "vcpu", 100))

    def file(project: str, cloud: str, amount: int) -> str:
        result = w.run(
            lambda s: service.file_request(
                s,
                ACTOR,
                project,
                [RequestItem(ResourceClass.VCPU, amount)],
                reason="race",
                cloud_code=cloud,
            )
        )
        return str(result.request.id)

    tasks = [Task("AB", "raise", p, 4, "changsha") for p in PROJECTS["cs-data"]]
    tasks += [Task("AB", "approve", file(p, "provincial", 4)) for p in PROJECTS["cs-health"]]
    tasks += [Task("C", "raise", p, 5, "hunan") for p in PROJECTS["zz-data"]]
    twice = [file(p, "zhuzhou", 1) for p in PROJECTS["zz-data"][:3]]
    tasks += [Task("D", "approve", rid) for rid in twice + twice]
    tasks += [Task("E", "reserve", "race-r", 3)] * 6
    return tasks


Runner = Callable[[Callable[[Session], None]], None]


def perform(
    factory: sessionmaker[Session], task: Task, run: Runner | None = None
) -> tuple[str, int]:
    """One admission in its own transaction (or through `run`, e.g. a group
    commit): ("ok" or the error code, attempts)."""
    attempts = 0

    def work(session: Session) -> None:
        nonlocal attempts
        attempts += 1
        store = SqlQuotaStore(session)
        if task.kind == "raise":
            service.raise_grant(
                store,
                ACTOR,
                task.target,
                "provincial",
                {"vcpu": task.amount},
                draw_from=task.draw_from,
            )
        elif task.kind == "approve":
            service.approve_request(store, ACTOR, int(task.target))
        else:
            service.reserve(
                store,
                ACTOR,
                task.target,
                "provincial",
                {"vcpu": task.amount},
                ttl=timedelta(minutes=10),
            )

    try:
        if run is None:
            run_in_transaction(factory, work)
        else:
            run(work)
    except YunguanError as exc:
        return exc.code, attempts
    return "ok", attempts


def race_threads(
    factory: sessionmaker[Session], tasks: list[Task], run: Runner | None = None
) -> list[tuple[str, int]]:
    """All tasks at once, one thread each, released together by a barrier."""
    barrier = threading.Barrier(len(tasks))
    results: list[tuple[str, int] | None] = [None] * len(tasks)
    errors: list[BaseException] = []

    def one(i: int) -> None:
        try:
            barrier.wait()
            results[i] = perform(factory, tasks[i], run)
        except BaseException as exc:  # surfaced by the test, with its traceback
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(tasks))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return [r for r in results if r is not None]


def process_main(url: str, tasks: list[Task], barrier: Any, out: Any) -> None:
    """Entry point of one racing process (spawned): its own engine, its tasks in threads."""
    engine: Engine = make_engine(url)
    try:
        factory = make_session_factory(engine)
        inner = threading.Barrier(len(tasks), action=barrier.wait)
        results: list[tuple[str, int] | None] = [None] * len(tasks)

        def run(i: int) -> None:
            inner.wait()
            results[i] = perform(factory, tasks[i])

        threads = [threading.Thread(target=run, args=(i,)) for i in range(len(tasks))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        out.put([(tasks[i], r) for i, r in enumerate(results)])
    finally:
        engine.dispose()


def check_outcome(w: World, tasks: list[Task], results: list[tuple[str, int]]) -> None:
    ok: Counter[str] = Counter()
    for task, (outcome, attempts) in zip(tasks, results, strict=True):
        # fixed-order locks: no deadlock, no serialization failure, so no retry
        assert attempts == 1, (task, outcome, attempts)
        if outcome == "ok":
            ok[task.group] += 1
        else:
            expected = "request.state_conflict" if task.group == "D" else "quota.exceeded"
            assert outcome == expected, (task, outcome)
    assert dict(ok) == EXPECTED_OK
    for cloud in ("provincial", "zhuzhou"):
        assert w.run(lambda s, c=cloud: service.check_invariants(s, c)) == []
    _, rows = w.run(lambda s: service.grant_tree(s, "provincial", "vcpu"))
    by_node = {r.node.code: r for r in rows}
    # the last headroom is gone everywhere it was raced for
    assert by_node["hunan"].free == 0 and by_node["changsha"].free == 0
    assert by_node["cs-data"].free == 0 and by_node["race-r"].free == 1
    racers = PROJECTS["cs-data"] + PROJECTS["cs-health"]
    assert sum(by_node[p].granted for p in racers if p in by_node) == 4 * EXPECTED_OK["AB"]
    assert sum(by_node[p].granted for p in PROJECTS["zz-data"] if p in by_node) == 5 * 3
