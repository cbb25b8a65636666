"""Helpers for the staged group-commit tests (tests/db/test_combine_*.py):
deterministic batches, the outbox topics a test left, a shared `prepare`.

Batches are deterministic here: the calls queue, in order, while a first work
holds the combiner (`Gate`, `one_batch`), so they form the next batch.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from controlplane.bootstrap import Container
from controlplane.db.combine import Combiner
from controlplane.db.outbox import OutboxEvent, add_outbox
from controlplane.db.uow import UnitOfWork

WAIT_S = 30.0


def on_postgresql(container: Container) -> bool:
    return container.engine.dialect.name == "postgresql"


def outbox_topics(container: Container) -> list[str]:
    """The topics of every outbox row committed so far, sorted."""
    with UnitOfWork(container.session_factory) as uow:
        return sorted(uow.session.scalars(select(OutboxEvent.topic)))


def prepare_outbox(name: str) -> Callable[[Session], str]:
    """A first stage that writes an outbox row `{name}-prepared` and hands
    `name` on to its `finish`."""

    def first(session: Session) -> str:
        add_outbox(session, f"{name}-prepared", "t", name, {})
        return name

    return first


def _queued(combiner: Combiner) -> int:
    # The queue is private; its length is the only sign that a caller blocked
    # in run_staged() has handed its job over.
    return combiner._queue.qsize()


def _wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.001)


def _wait_queued(combiner: Combiner, n: int) -> None:
    _wait_for(lambda: _queued(combiner) == n, f"{n} calls to queue")


class Gate:
    """A first work that holds the combiner's thread until `open()`."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()

    def hold(self, _session: Session) -> str:
        self.started.set()
        if not self.release.wait(WAIT_S):
            raise TimeoutError("the gate was never opened")
        return "gate"

    def open(self) -> None:
        self.release.set()


def one_batch(combiner: Combiner, calls: Sequence[Callable[[], object]]) -> list[object]:
    """Runs each blocking call (combiner.run / run_staged) in a thread of its
    own. They queue one after the other while a gate work holds the combiner,
    so they form its next batch, in this order. Each call's result or exception."""
    gate = Gate()
    holder = threading.Thread(target=combiner.run, args=(gate.hold,), daemon=True)
    holder.start()
    assert gate.started.wait(WAIT_S)
    results: list[object] = [None] * len(calls)

    def call(i: int) -> None:
        try:
            results[i] = calls[i]()
        except Exception as exc:
            results[i] = exc

    threads = []
    for i in range(len(calls)):
        thread = threading.Thread(target=call, args=(i,), daemon=True)
        thread.start()
        threads.append(thread)
        _wait_queued(combiner, i + 1)
    gate.open()
    for thread in [holder, *threads]:
        thread.join(WAIT_S)
        assert not thread.is_alive()
    return results
