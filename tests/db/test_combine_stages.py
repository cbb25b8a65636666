"""Staged group commit (controlplane.db.combine: `run_staged`, `Done`, the
re-run of a batch one job per transaction), on both backends:

- staged jobs in one batch: every `prepare` runs before any `finish`; a
  `prepare` that raises is rolled back alone and gets its own error; one that
  returns `Done(v)` answers v without its `finish`; the others commit; a
  job's very first write is undone with it (one-stage or `prepare`);
- a `finish` that raises: the batch is re-run one job per transaction, the
  failing job leaves nothing, the others commit exactly once;
- a database error that is not a lost race (NOT NULL) in one job's `prepare`,
  sent at once or deferred: only that job fails, the others commit once.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from controlplane.bootstrap import Container
from controlplane.db import pipeline
from controlplane.db.combine import Combiner, Done, combined
from controlplane.db.outbox import add_outbox
from controlplane.vocabulary import ConflictError, NotFoundError
from tests.db.combine_batches import one_batch, outbox_topics, prepare_outbox

# -- staged jobs share a batch ----------------------------------------------------


def test_staged_jobs_in_one_batch(container: Container) -> None:
    combiner = Combiner(container.session_factory)
    order: list[str] = []
    batched: list[bool] = []

    def prepare(name: str) -> Callable[[Session], str]:
        def first(session: Session) -> str:
            order.append(f"prepare {name}")
            add_outbox(session, f"{name}-prepared", "t", name, {})
            return name

        return first

    def finish(session: Session, name: str) -> str:
        order.append(f"finish {name}")
        batched.append(combined(session))
        add_outbox(session, f"{name}-finished", "t", name, {})
        return f"{name} done"

    def refuse(session: Session) -> str:
        order.append("prepare refused")
        session.execute(text("SELECT 1"))  # a read first, as a claim or a lookup is
        add_outbox(session, "refused-prepared", "t", "r", {})
        session.execute(text("SELECT 1"))  # PostgreSQL: the deferred row has left
        raise NotFoundError("no such project", code="org.not_found")

    def replay(session: Session) -> Done[str]:
        order.append("prepare replayed")
        add_outbox(session, "replayed-prepared", "t", "x", {})
        return Done("the stored answer")

    results = one_batch(
        combiner,
        [
            lambda: combiner.run_staged(prepare("a"), finish),
            lambda: combiner.run_staged(refuse, finish),
            lambda: combiner.run_staged(replay, finish),
            lambda: combiner.run_staged(prepare("b"), finish),
        ],
    )

    assert results[0] == "a done" and results[3] == "b done"
    assert isinstance(results[1], NotFoundError) and results[1].code == "org.not_found"
    assert results[2] == "the stored answer"
    # Every first stage before any second; no second stage for the refused or replayed.
    assert order == [
        "prepare a",
        "prepare refused",
        "prepare replayed",
        "prepare b",
        "finish a",
        "finish b",
    ]
    assert batched == [True, True]
    assert outbox_topics(container) == [
        "a-finished",
        "a-prepared",
        "b-finished",
        "b-prepared",
        "replayed-prepared",
    ]


def test_a_jobs_first_write_is_rolled_back_with_it(container: Container) -> None:
    """A job that writes before anything else (an outbox row) and then raises,
    one-stage or in its `prepare`: the write is undone with the job. (On SQLite
    the savepoint is SQLAlchemy's, whose SAVEPOINT is emitted lazily: a write
    sent on a connection remembered from before it would escape the rollback.)"""
    combiner = Combiner(container.session_factory)

    def write(name: str) -> Callable[[Session], str]:
        def work(session: Session) -> str:
            add_outbox(session, name, "t", name, {})
            return name

        return work

    def write_then_refuse(session: Session) -> str:
        add_outbox(session, "refused", "t", "r", {})
        raise NotFoundError("no such thing", code="thing.not_found")

    def finish(session: Session, name: str) -> str:
        add_outbox(session, f"{name}-finished", "t", name, {})
        return name

    results = one_batch(
        combiner,
        [
            lambda: combiner.run(write("a")),
            lambda: combiner.run(write_then_refuse),
            lambda: combiner.run_staged(write_then_refuse, finish),
            lambda: combiner.run_staged(write("b"), finish),
        ],
    )

    assert results[0] == "a" and results[3] == "b"
    assert isinstance(results[1], NotFoundError) and isinstance(results[2], NotFoundError)
    assert outbox_topics(container) == ["a", "b", "b-finished"]


# -- a failing second stage ------------------------------------------------------


def test_a_failing_finish_reruns_the_batch_one_job_at_a_time(container: Container) -> None:
    combiner = Combiner(container.session_factory)
    finishes: defaultdict[str, list[bool]] = defaultdict(list)  # combined() of each run

    def finish(session: Session, name: str) -> str:
        finishes[name].append(combined(session))
        add_outbox(session, f"{name}-finished", "t", name, {})
        if name == "bad":
            session.execute(text("SELECT 1"))  # its rows have reached the database
            raise ConflictError("it changed meanwhile", code="thing.conflict")
        return name

    results = one_batch(
        combiner,
        [
            lambda: combiner.run_staged(prepare_outbox("a"), finish),
            lambda: combiner.run_staged(prepare_outbox("bad"), finish),
            lambda: combiner.run_staged(prepare_outbox("b"), finish),
        ],
    )

    assert results[0] == "a" and results[2] == "b"
    assert isinstance(results[1], ConflictError) and results[1].code == "thing.conflict"
    # Neither stage of the failing job left a row; the others' rows are there once.
    assert outbox_topics(container) == ["a-finished", "a-prepared", "b-finished", "b-prepared"]
    # Batched until "bad" failed, then each job alone in its own transaction.
    assert dict(finishes) == {"a": [True, False], "bad": [True, False], "b": [False]}


# -- a database error that is not a lost race -----------------------------------

_NULL_TOPIC = "INSERT INTO outbox (topic) VALUES (NULL)"  # violates NOT NULL


@pytest.mark.parametrize("deferred", [False, True], ids=["sent-at-once", "deferred"])
def test_a_database_error_in_one_prepare_fails_that_job_alone(
    container: Container, deferred: bool, request: pytest.FixtureRequest
) -> None:
    combiner = Combiner(container.session_factory)

    def broken(session: Session) -> str:
        add_outbox(session, "broken-prepared", "t", "x", {})
        if deferred:  # refused with whichever statement carries it (PostgreSQL)
            pipeline.defer(session, pipeline.Write(text(_NULL_TOPIC), {}, _NULL_TOPIC, [()]))
        else:
            session.execute(text(_NULL_TOPIC))
        return "broken"

    def finish(session: Session, name: str) -> str:
        add_outbox(session, f"{name}-finished", "t", name, {})
        return name

    results = one_batch(
        combiner,
        [
            lambda: combiner.run_staged(prepare_outbox("a"), finish),
            lambda: combiner.run_staged(broken, finish),
            lambda: combiner.run_staged(prepare_outbox("b"), finish),
        ],
    )

    assert results[0] == "a" and results[2] == "b", results
    assert isinstance(results[1], DBAPIError)
    assert outbox_topics(container) == ["a-finished", "a-prepared", "b-finished", "b-prepared"]
