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

Staged jobs (`submit_staged(prepare, finish)`) split a call in two: a batch
runs every job's `prepare` first, then every `finish`. What a call can do
before it needs the shared locks (claim its Idempotency-Key, record the
request) then happens before the first `finish` takes them, so the batch holds
the locks only for the `finish` parts, not for every call's whole work. A
`prepare` that raises is rolled back alone; one that returns `Done(value)`
answers without a `finish` (a replayed Idempotency-Key). A `finish` that
raises cannot be rolled back alone — its `prepare`'s savepoint was released
before the other jobs' — so the batch is rolled back and its jobs re-run one
transaction each, as is a batch where the database refused a statement for
another reason than a lost race: deferred writes travel with later jobs'
statements, so such an error cannot be pinned on one job.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from controlplane.db import pipeline
from controlplane.db.retry import DEFAULT_ATTEMPTS, is_lost_race
from controlplane.db.uow import UnitOfWork

T = TypeVar("T")
S = TypeVar("S")
log = logging.getLogger("yunguan.db")
_COMBINED = "yunguan.combined"


def combined(session: Session) -> bool:
    """True inside a batch: the combiner commits, `work` must not."""
    return bool(session.info.get(_COMBINED))


@dataclass(frozen=True)
class Done(Generic[T]):
    """Returned by a staged job's `prepare`: the answer, no `finish` needed."""

    value: T


class _Redo(Exception):
    """The batch cannot deliver its outcomes: roll it back, run each job alone."""


class Rerun(Exception):
    """Raised by a job that finds an earlier job of its own batch in its way
    (the same Idempotency-Key, claimed but not answered yet): the batch is
    rolled back and each job run in its own transaction, in order."""


class _Job(Generic[T]):
    """One queued call: a thread waits on `result()`, or a coroutine awaits
    `future` (resolved on its own event loop; see `_deliver`). `prepare` is
    None for a one-stage job, whose `finish` ignores its second argument."""

    __slots__ = ("_done", "_error", "_value", "finish", "future", "hint", "loop", "prepare")

    def __init__(
        self,
        prepare: Callable[[Session], Any] | None,
        finish: Callable[[Session, Any], T],
        loop: asyncio.AbstractEventLoop | None = None,
        future: asyncio.Future[T] | None = None,
        hint: Callable[[Session], None] | None = None,
    ) -> None:
        self.prepare, self.finish, self.hint = prepare, finish, hint
        self.loop, self.future = loop, future
        # Only a waiting thread needs an Event (a coroutine awaits `future`).
        self._done = threading.Event() if loop is None else None
        self._value: T | None = None
        self._error: BaseException | None = None

    def settle(self, value: T | None, error: BaseException | None) -> None:
        self._value, self._error = value, error
        if self._done is not None:
            self._done.set()

    def result(self) -> T:
        if self._done is None:
            raise RuntimeError("a coroutine's job: await its future")
        self._done.wait()
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]


Outcome = tuple[_Job[Any], Any, BaseException | None]


def _resolve(outcomes: list[Outcome]) -> None:
    """On the awaiting loop: hand each coroutine its answer (a caller that gave
    up — a cancelled request — is skipped; its work is committed all the same,
    and a retry with its Idempotency-Key replays the answer)."""
    for job, value, error in outcomes:
        future = job.future
        if future is None or future.done():
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)


def _deliver(outcomes: list[Outcome]) -> None:
    """Wake the callers: threads one by one, and each event loop once for all
    of its coroutines (one self-pipe write per loop, not per request)."""
    by_loop: dict[asyncio.AbstractEventLoop, list[Outcome]] = {}
    for outcome in outcomes:
        job = outcome[0]
        if job.loop is None:
            job.settle(outcome[1], outcome[2])
        else:
            by_loop.setdefault(job.loop, []).append(outcome)
    for loop, mine in by_loop.items():
        # A closed loop (RuntimeError) has nobody waiting any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_resolve, mine)


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
        """Run `work` in the next batch; blocks this thread until it is committed."""
        return self.run_staged(None, _one_stage(work))

    def run_staged(
        self, prepare: Callable[[Session], S | Done[T]] | None, finish: Callable[[Session, S], T]
    ) -> T:
        job: _Job[T] = _Job(prepare, finish)
        self._queue.put(job)
        self._ensure_thread()
        return job.result()

    def submit(self, work: Callable[[Session], T]) -> asyncio.Future[T]:
        """The same for a coroutine: await the result on the running event loop,
        which stays free meanwhile (no worker thread is held per request)."""
        return self.submit_staged(None, _one_stage(work))

    def submit_staged(
        self,
        prepare: Callable[[Session], S | Done[T]] | None,
        finish: Callable[[Session, S], T],
        *,
        hint: Callable[[Session], None] | None = None,
    ) -> asyncio.Future[T]:
        """`hint`, in a batch of several, runs before any job's `prepare`: it
        may announce reads (controlplane.db.pipeline.carry_read) so that the
        batch sends them together, and must not run statements itself."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put(_Job(prepare, finish, loop, future, hint))
        self._ensure_thread()
        return future

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
                _deliver([(job, None, exc) for job in batch])

    def _run_batch(self, batch: list[_Job[Any]]) -> None:
        for attempt in range(1, self._attempts + 1):
            try:
                outcomes = self._once(batch)
            except _Redo as redo:
                log.info("batch of %d re-run one job at a time (%s)", len(batch), redo)
                for job in batch:
                    try:
                        self._run_batch([job])
                    except BaseException as exc:  # its own failure, nobody else's
                        _deliver([(job, None, exc)])
                return
            except DBAPIError as exc:
                if attempt < self._attempts and is_lost_race(exc):
                    log.info(
                        "batch of %d lost a race (%s); retry %d", len(batch), exc.orig, attempt
                    )
                    time.sleep(random.uniform(0, 0.002 * 2**attempt))  # noqa: S311 - not crypto
                    continue
                raise
            _deliver(outcomes)
            return

    def _once(self, batch: list[_Job[Any]]) -> list[Outcome]:
        if len(batch) == 1:  # nothing to share: exactly run_in_transaction's one attempt
            return [self._alone(batch[0])]
        outcomes: list[Outcome] = []
        ready: list[tuple[_Job[Any], Any]] = []
        with UnitOfWork(self._factory) as uow:
            session = uow.session
            session.info[_COMBINED] = True
            for job in batch:
                if job.hint is not None:
                    job.hint(session)
            # Every job's first stage, before any job takes the shared locks.
            for i, job in enumerate(batch):
                if job.prepare is None:
                    ready.append((job, None))
                    continue
                ok, value = _step(session, f"yg_prep_{i}", job.prepare, ())
                if not ok:
                    outcomes.append((job, None, value))
                elif isinstance(value, Done):
                    outcomes.append((job, value.value, None))
                else:
                    ready.append((job, value))
            for i, (job, state) in enumerate(ready):
                if job.prepare is not None:
                    # No savepoint: a failing second stage re-runs the batch anyway.
                    outcomes.append((job, _second_stage(session, job, state), None))
                    continue
                ok, value = _step(session, f"yg_job_{i}", job.finish, (state,))
                outcomes.append((job, value, None) if ok else (job, None, value))
            with _pinned_on_the_batch():
                uow.commit()  # with the writes still deferred, in one round trip
        return outcomes

    def _alone(self, job: _Job[Any]) -> Outcome:
        with UnitOfWork(self._factory) as uow:
            try:
                state = job.prepare(uow.session) if job.prepare is not None else None
                value = _answer(job, uow.session, state)
                # Inside: on PostgreSQL the COMMIT also sends the last deferred
                # writes, and their errors are this job's.
                uow.commit()
            except DBAPIError as exc:
                if is_lost_race(exc):
                    raise
                return (job, None, exc)
            except Exception as exc:
                return (job, None, exc)
        return (job, value, None)


def _answer(job: _Job[T], session: Session, state: Any) -> T:
    if isinstance(state, Done):
        return state.value  # type: ignore[no-any-return]
    return job.finish(session, state)


@contextlib.contextmanager
def _pinned_on_the_batch() -> Iterator[None]:
    """A statement the database refused for another reason than a lost race,
    in a batch: deferred writes of earlier jobs travel with later jobs'
    statements, so the error cannot be pinned on one job — re-run them alone.
    (A lost race goes up as it is: the whole batch is retried.)"""
    try:
        yield
    except DBAPIError as exc:
        if is_lost_race(exc):
            raise
        raise _Redo(f"the database refused a statement: {exc.orig}") from exc


def _second_stage(session: Session, job: _Job[T], state: Any) -> T:
    try:
        with _pinned_on_the_batch():
            return job.finish(session, state)
    except _Redo:
        raise
    except Exception as exc:
        raise _Redo(f"a second stage failed: {type(exc).__name__}") from exc


def _one_stage(work: Callable[[Session], T]) -> Callable[[Session, Any], T]:
    def finish(session: Session, _state: Any) -> T:
        return work(session)

    return finish


def _step(
    session: Session, name: str, fn: Callable[..., Any], args: tuple[Any, ...]
) -> tuple[bool, Any]:
    """`fn(session, *args)` in its own savepoint: (True, its value), or (False,
    the error it raised, after rolling back to the savepoint)."""
    savepoint = _Savepoint(session, name)
    try:
        with _pinned_on_the_batch():
            value = fn(session, *args)
            savepoint.release()
    except _Redo:
        raise
    except Rerun as exc:
        raise _Redo(str(exc)) from exc
    except Exception as exc:  # the caller's own error, delivered to it
        savepoint.rollback()
        return False, exc
    return True, value


class _Savepoint:
    """One job's savepoint. On PostgreSQL, SAVEPOINT and RELEASE are deferred
    writes (controlplane.db.pipeline): they travel with the job's statements
    instead of costing two round trips per job; elsewhere SQLAlchemy's nested
    transaction."""

    def __init__(self, session: Session, name: str) -> None:
        self._session = session
        self._name = name
        self._nested = None
        if pipeline.deferrable(session):
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
