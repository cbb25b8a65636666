"""Group commit (controlplane.db.combine) on both backends: concurrent works
share a transaction, a failing one gets its own error and leaves nothing
while its neighbours commit, and quota admissions through it never
oversubscribe."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from controlplane.bootstrap import Container
from controlplane.db.combine import Combiner, combined
from controlplane.db.outbox import OutboxEvent, add_outbox
from controlplane.db.uow import UnitOfWork
from controlplane.vocabulary import NotFoundError
from tests.db.quota_race import PROJECTS, check_outcome, prepare, race_threads
from tests.db.quota_world import make_world


def _topics(container: Container) -> list[str]:
    with UnitOfWork(container.session_factory) as uow:
        return sorted(uow.session.scalars(select(OutboxEvent.topic)))


def _gated(combiner: Combiner, works: list[Callable[[Session], Any]]) -> list[Any]:
    """Runs `works` from threads so that they queue while a first, slow work
    holds the combiner: they then form one batch."""
    release = threading.Event()
    results: list[Any] = [None] * len(works)

    def slow(session: Session) -> str:
        release.wait(10)
        add_outbox(session, "gate", "t", "0", {})
        return "gate"

    def call(i: int) -> None:
        try:
            results[i] = combiner.run(works[i])
        except Exception as exc:
            results[i] = exc

    gate = threading.Thread(target=combiner.run, args=(slow,))
    gate.start()
    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(works))]
    for t in threads:
        t.start()
    release.set()
    for t in [gate, *threads]:
        t.join(30)
    return results


def test_a_failing_work_is_rolled_back_alone(container: Container) -> None:
    combiner = Combiner(container.session_factory)
    seen_combined: list[bool] = []

    def good(name: str) -> Callable[[Session], str]:
        def work(session: Session) -> str:
            seen_combined.append(combined(session))
            add_outbox(session, name, "t", "1", {"n": 1})
            return name

        return work

    def bad(session: Session) -> str:
        add_outbox(session, "bad", "t", "1", {})
        session.execute(text("SELECT 1"))  # the write has left (PostgreSQL: flushed)
        raise NotFoundError("no such thing", code="thing.not_found")

    def bad_before_any_statement(session: Session) -> str:
        add_outbox(session, "never", "t", "1", {})
        raise NotFoundError("refused early", code="thing.not_found")

    def db_error(session: Session) -> str:
        add_outbox(session, "broken", "t", "1", {})
        session.execute(text("INSERT INTO outbox (id, topic) VALUES (NULL, NULL)"))
        return "unreachable"

    works = [good("a"), bad, good("b"), bad_before_any_statement, db_error, good("c")]
    results = _gated(combiner, works)
    assert results[0] == "a" and results[2] == "b" and results[5] == "c"
    assert isinstance(results[1], NotFoundError) and isinstance(results[3], NotFoundError)
    assert isinstance(results[4], Exception) and not isinstance(results[4], NotFoundError)
    assert _topics(container) == ["a", "b", "c", "gate"]
    assert True in seen_combined  # at least part of it ran as one batch


def test_the_headroom_race_through_one_combiner(container: Container) -> None:
    """The 42-writer race of test_quota_concurrency, every writer a thread
    handing its admission to one combiner (so they run in shared batches):
    exactly what fits succeeds, every invariant and derived sum holds."""
    world = make_world(container, PROJECTS)
    tasks = prepare(world)
    combiner = Combiner(container.session_factory)
    results = race_threads(container.session_factory, tasks, run=combiner.run)
    check_outcome(world, tasks, results)
