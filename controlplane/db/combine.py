"""Group commit: the short transactions of one process, run as one.

Every quota admission locks the same ancestor rows (the pool, the prefecture,
the department) and the audit head, so admissions are serialised on those
locks however many run at once; what one of them costs is the time it holds
them, and most of that is waiting: for its round trips, its COMMIT (a WAL
flush) and the GIL. A database does the same for commits ("group commit").
`Combiner.run(work)` has the contract of `run_in_transaction(factory, work)`
but queues `work`; one thread per process takes whatever has queued up and
runs it in a single transaction, each `work` inside its own SAVEPOINT:

- the first `work` takes the locks, the others find them held and only add
  their own rows; the batch pays for one lock acquisition and one COMMIT;
- a `work` that raises is rolled back to its savepoint and gets its own
  exception; the others still commit (a 404 never costs a neighbour its 201);
- a lost race (deadlock, serialization failure) or a failed COMMIT retries
  or fails the whole batch, as `run_in_transaction` does for one `work`;
- nobody's answer leaves before the COMMIT that makes it true.

`work` must not commit: `combined(session)` tells it it runs in a batch.
Under no load a batch is one `work`: same cost as `run_in_transaction` plus a
thread handoff. bench/quota_http.py measures the gain under load.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from controlplane.db import pipeline
from controlplane.db.retry import DEFAULT_ATTEMPTS, is_lost_race
from controlplane.db.uow import UnitOfWork

T = TypeVar("T")
log = logging.getLogger("yunguan.db")
_COMBINED = "yunguan.combined"


def combined(session: Session) -> bool:
    """True inside a batch: the combiner commits, `work` must not."""
    return bool(session.info.get(_COMBINED))


class _Job(Generic[T]):
    __slots__ = ("_done", "_error", "_value", "work")

    def __init__(self, work: Callable[[Session], T]) -> None:
        self.work = work
        self._done = threading.Event()
        self._value: T | None = None
        self._error: BaseException | None = None

    def finish(self, value: T | None, error: BaseException | None) -> None:
        self._value, self._error = value, error
        self._done.set()

    def result(self) -> T:
        self._done.wait()
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]


class Combiner:
    def __init__(
        self,
        session_factory: sessionmaker[Session],
        *,
        max_batch: int = 64,
        attempts: int = DEFAULT_ATTEMPTS,
    ) -> None:
        self._factory = session_factory
        self._max = max_batch
        self._attempts = attempts
        self._queue: queue.SimpleQueue[_Job[Any]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start = threading.Lock()

    def run(self, work: Callable[[Session], T]) -> T:
        job: _Job[T] = _Job(work)
        self._queue.put(job)
        self._ensure_thread()
        return job.result()

    def _ensure_thread(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        with self._start:
            if self._thread is None or not self._thread.is_alive():
                # A daemon: it holds no state between batches, and a batch in
                # flight at exit is rolled back by the database.
                self._thread = threading.Thread(
                    target=self._loop, name="yunguan-combiner", daemon=True
                )
                self._thread.start()

    def _loop(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < self._max:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                self._run_batch(batch)
            except BaseException as exc:  # never leave a caller waiting
                for job in batch:
                    job.finish(None, exc)

    def _run_batch(self, batch: list[_Job[Any]]) -> None:
        for attempt in range(1, self._attempts + 1):
            try:
                outcomes = self._once(batch)
            except DBAPIError as exc:
                if attempt < self._attempts and is_lost_race(exc):
                    log.info(
                        "batch of %d lost a race (%s); retry %d", len(batch), exc.orig, attempt
                    )
                    time.sleep(random.uniform(0, 0.002 * 2**attempt))  # noqa: S311 - not crypto
                    continue
                raise
            for job, value, error in outcomes:
                job.finish(value, error)
            return

    def _once(self, batch: list[_Job[Any]]) -> list[tuple[_Job[Any], Any, BaseException | None]]:
        if len(batch) == 1:  # nothing to share: exactly run_in_transaction's one attempt
            with UnitOfWork(self._factory) as uow:
                try:
                    value = batch[0].work(uow.session)
                except DBAPIError as exc:
                    if is_lost_race(exc):
                        raise
                    return [(batch[0], None, exc)]
                except Exception as exc:
                    return [(batch[0], None, exc)]
                uow.commit()
            return [(batch[0], value, None)]
        outcomes: list[tuple[_Job[Any], Any, BaseException | None]] = []
        with UnitOfWork(self._factory) as uow:
            session = uow.session
            session.info[_COMBINED] = True
            for i, job in enumerate(batch):
                savepoint = _Savepoint(session, f"yg_job_{i}")
                try:
                    value = job.work(session)
                    savepoint.release()
                except DBAPIError as exc:
                    if is_lost_race(exc):
                        raise  # the whole batch rolls back and is retried
                    savepoint.rollback()
                    outcomes.append((job, None, exc))
                except Exception as exc:  # the caller's own error, delivered to it
                    savepoint.rollback()
                    outcomes.append((job, None, exc))
                else:
                    outcomes.append((job, value, None))
            uow.commit()
        return outcomes


class _Savepoint:
    """One job's savepoint. On PostgreSQL, SAVEPOINT and RELEASE are deferred
    writes (controlplane.db.pipeline): they travel with the job's statements
    instead of costing two round trips per job; elsewhere SQLAlchemy's nested
    transaction."""

    def __init__(self, session: Session, name: str) -> None:
        self._session = session
        self._name = name
        self._raw = pipeline.deferrable(session)
        self._nested = None
        if self._raw:
            pipeline.defer(session, pipeline.Write(None, {}, f"SAVEPOINT {name}", [()]))
        else:
            self._nested = session.begin_nested()

    def release(self) -> None:
        if self._nested is not None:
            self._nested.commit()
            return
        write = pipeline.Write(None, {}, f"RELEASE SAVEPOINT {self._name}", [()])
        pipeline.defer(self._session, write)

    def rollback(self) -> None:
        if self._nested is not None:
            self._nested.rollback()
            return
        pipeline.rollback_to(self._session, self._name)
        self._session.expire_all()  # ORM state read in the undone part is stale
