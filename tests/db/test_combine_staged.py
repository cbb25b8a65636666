"""Staged group commit (controlplane.db.combine: `run_staged`, `submit_staged`,
`Done`, the re-run of a batch one job per transaction) and what rides on it,
on both backends:

- staged jobs in one batch: every `prepare` runs before any `finish`; a
  `prepare` that raises is rolled back alone and gets its own error; one that
  returns `Done(v)` answers v without its `finish`; the others commit; a
  job's very first write is undone with it (one-stage or `prepare`);
- a `finish` that raises: the batch is re-run one job per transaction, the
  failing job leaves nothing, the others commit exactly once;
- a database error that is not a lost race (NOT NULL) in one job's `prepare`,
  sent at once or deferred: only that job fails, the others commit once;
- Idempotency-Key claims in a batch (deferred on PostgreSQL): the same key
  twice applies once and replays once; a key completed earlier replays;
- the transaction's memo of locked grant rows (controlplane.quotastore.grants)
  after a job that changed them was rolled back to its savepoint;
- auto-approved filings (`record_request` / `settle_filing`) with their audit
  entries deferred in the batch: invariants, one approval each, intact chain;
- `submit` / `submit_staged` from asyncio, on two event loops at once; a
  lone staged call is one plain transaction.

Batches are deterministic here: the calls queue, in order, while a first work
holds the combiner (`_Gate`, `_one_batch`), so they form the next batch.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from controlplane.bootstrap import Container
from controlplane.db import idempotency, pipeline
from controlplane.db.combine import Combiner, Done, combined
from controlplane.db.identity_tables import AuditEntry
from controlplane.db.outbox import OutboxEvent, add_outbox
from controlplane.db.quota_tables import QuotaRequestRow
from controlplane.db.retry import run_in_transaction
from controlplane.db.uow import UnitOfWork
from controlplane.identity import audit
from controlplane.quotastore import SqlQuotaStore
from controlplane.vocabulary import ConflictError, NotFoundError, ResourceClass
from quotas import service
from quotas.model import RequestItem, RequestState
from tests.db.quota_world import ADMIN, make_world

VCPU = ResourceClass.VCPU
WAIT_S = 30.0


# -- helpers -------------------------------------------------------------------


def _on_postgresql(container: Container) -> bool:
    return container.engine.dialect.name == "postgresql"


def _topics(container: Container) -> list[str]:
    with UnitOfWork(container.session_factory) as uow:
        return sorted(uow.session.scalars(select(OutboxEvent.topic)))


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


class _Gate:
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


def _one_batch(combiner: Combiner, calls: Sequence[Callable[[], object]]) -> list[object]:
    """Runs each blocking call (combiner.run / run_staged) in a thread of its
    own. They queue one after the other while a gate work holds the combiner,
    so they form its next batch, in this order. Each call's result or exception."""
    gate = _Gate()
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


# -- 1. staged jobs share a batch -------------------------------------------------


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

    results = _one_batch(
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
    assert _topics(container) == [
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

    results = _one_batch(
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
    assert _topics(container) == ["a", "b", "b-finished"]


# -- 2. a failing second stage ---------------------------------------------------


def test_a_failing_finish_reruns_the_batch_one_job_at_a_time(container: Container) -> None:
    combiner = Combiner(container.session_factory)
    finishes: defaultdict[str, list[bool]] = defaultdict(list)  # combined() of each run

    def prepare(name: str) -> Callable[[Session], str]:
        def first(session: Session) -> str:
            add_outbox(session, f"{name}-prepared", "t", name, {})
            return name

        return first

    def finish(session: Session, name: str) -> str:
        finishes[name].append(combined(session))
        add_outbox(session, f"{name}-finished", "t", name, {})
        if name == "bad":
            session.execute(text("SELECT 1"))  # its rows have reached the database
            raise ConflictError("it changed meanwhile", code="thing.conflict")
        return name

    results = _one_batch(
        combiner,
        [
            lambda: combiner.run_staged(prepare("a"), finish),
            lambda: combiner.run_staged(prepare("bad"), finish),
            lambda: combiner.run_staged(prepare("b"), finish),
        ],
    )

    assert results[0] == "a" and results[2] == "b"
    assert isinstance(results[1], ConflictError) and results[1].code == "thing.conflict"
    # Neither stage of the failing job left a row; the others' rows are there once.
    assert _topics(container) == ["a-finished", "a-prepared", "b-finished", "b-prepared"]
    # Batched until "bad" failed, then each job alone in its own transaction.
    assert dict(finishes) == {"a": [True, False], "bad": [True, False], "b": [False]}


# -- 3. a database error that is not a lost race --------------------------------

_NULL_TOPIC = "INSERT INTO outbox (topic) VALUES (NULL)"  # violates NOT NULL


@pytest.mark.parametrize("deferred", [False, True], ids=["sent-at-once", "deferred"])
def test_a_database_error_in_one_prepare_fails_that_job_alone(
    container: Container, deferred: bool, request: pytest.FixtureRequest
) -> None:
    combiner = Combiner(container.session_factory)

    def prepare(name: str) -> Callable[[Session], str]:
        def first(session: Session) -> str:
            add_outbox(session, f"{name}-prepared", "t", name, {})
            return name

        return first

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

    results = _one_batch(
        combiner,
        [
            lambda: combiner.run_staged(prepare("a"), finish),
            lambda: combiner.run_staged(broken, finish),
            lambda: combiner.run_staged(prepare("b"), finish),
        ],
    )

    assert results[0] == "a" and results[2] == "b", results
    assert isinstance(results[1], DBAPIError)
    assert _topics(container) == ["a-finished", "a-prepared", "b-finished", "b-prepared"]


# -- 4. Idempotency-Key claims in a batch ---------------------------------------

ACTOR = "idem-caller"
DIGEST = idempotency.request_hash("POST", "/things", {"n": 1})

Answer = tuple[str, Any]  # ("applied" or "replayed", the answer's body)


class _Keyed:
    """A staged call in the shape of api.routes.quota_common.mutate_staged: the
    claim in `prepare`, the effect (an outbox row) and the stored answer in
    `finish`. Records what each claim returned."""

    def __init__(self, key: str, name: str, digest: str = DIGEST) -> None:
        self.key, self.name, self.digest = key, name, digest
        self.claims: list[idempotency.StoredResponse | None] = []

    def prepare(self, session: Session) -> Done[Answer] | None:
        stored = idempotency.claim(session, ACTOR, self.key, self.digest)
        self.claims.append(stored)
        if stored is not None:
            return Done(("replayed", stored.response))
        return None

    def finish(self, session: Session, _state: None) -> Answer:
        body = {"by": self.name}
        add_outbox(session, "applied", "call", self.name, body)
        pipeline.defer(session, idempotency.completion(ACTOR, self.key, 201, body))
        return ("applied", body)


def test_the_same_key_twice_in_one_batch_applies_once(
    container: Container, request: pytest.FixtureRequest
) -> None:
    combiner = Combiner(container.session_factory)
    first, second = _Keyed("k-1", "first"), _Keyed("k-1", "second")

    results = _one_batch(
        combiner,
        [
            lambda: combiner.run_staged(first.prepare, first.finish),
            lambda: combiner.run_staged(second.prepare, second.finish),
        ],
    )

    assert results == [("applied", {"by": "first"}), ("replayed", {"by": "first"})], results
    assert _topics(container) == ["applied"]
    stored = idempotency.StoredResponse(201, {"by": "first"})
    if _on_postgresql(container):
        # Deferred in the batch (no answer), then the re-run's claim found the stored one.
        assert second.claims == [None, stored]
    else:
        # SQLite saw the first call's claim in the batch and asked for the re-run.
        assert second.claims == [stored]
    assert first.claims == [None, None]


def test_a_key_completed_earlier_replays_in_a_batch(container: Container) -> None:
    combiner = Combiner(container.session_factory)
    earlier = _Keyed("k-old", "earlier")
    assert combiner.run_staged(earlier.prepare, earlier.finish) == ("applied", {"by": "earlier"})

    again, fresh = _Keyed("k-old", "again"), _Keyed("k-new", "fresh")
    other_body = _Keyed("k-old", "reused", idempotency.request_hash("POST", "/things", {"n": 2}))
    results = _one_batch(
        combiner,
        [
            lambda: combiner.run_staged(fresh.prepare, fresh.finish),
            lambda: combiner.run_staged(again.prepare, again.finish),
            lambda: combiner.run_staged(other_body.prepare, other_body.finish),
        ],
    )

    assert results[0] == ("applied", {"by": "fresh"})
    assert results[1] == ("replayed", {"by": "earlier"})
    assert isinstance(results[2], ConflictError) and results[2].code == "idempotency.key_reused"
    assert again.claims[-1] == idempotency.StoredResponse(201, {"by": "earlier"})
    assert _topics(container) == ["applied", "applied"]  # "earlier" and "fresh", once each
    with UnitOfWork(container.session_factory) as uow:
        keys = uow.session.execute(
            select(idempotency.IdempotencyKey.key, idempotency.IdempotencyKey.status_code)
        ).all()
    assert sorted((k, s) for k, s in keys) == [("k-new", 201), ("k-old", 201)]


# -- 5. the memo of locked grant rows -------------------------------------------


class _ChangedMind(Exception):
    pass


@pytest.mark.parametrize("warm", [False, True], ids=["first-locker-rolls-back", "memo-warm"])
def test_a_rolled_back_job_leaves_nothing_in_the_lock_memo(
    container: Container, warm: bool
) -> None:
    """Job A locks grant rows, writes them and raises (rolled back to its
    savepoint); job B of the same batch then locks the same rows and must see
    the committed values. With `warm`, a job before A has locked them already,
    so A reads and changes them only in the memo (its savepoint never left)."""
    world = make_world(container)
    world.run(lambda s: service.set_capacity(s, ADMIN, "provincial", "vcpu", 1000))
    world.run(lambda s: service.set_grant(s, ADMIN, "changsha", "provincial", VCPU, 100))
    world.run(lambda s: service.set_grant(s, ADMIN, "cs-data", "provincial", VCPU, 40))
    world.run(lambda s: service.set_grant(s, ADMIN, "cs-data-portal", "provincial", VCPU, 5))
    cloud, chain = world.run(lambda s: s.locate("provincial", "cs-data-portal"))
    segments = [(VCPU, chain[-2:])]  # cs-data and cs-data-portal
    combiner = Combiner(container.session_factory)

    def seen(store: SqlQuotaStore) -> list[tuple[str, int, int, int]]:
        rows = store.lock_grants(cloud, segments)[0]
        return [(r.node.code, r.granted, r.allocated, r.consumed) for r in rows]

    def neighbour(session: Session) -> None:
        service.raise_grant(
            SqlQuotaStore(session), ADMIN, "cs-data-portal", "provincial", {VCPU: 5}
        )

    def job_a(session: Session) -> None:
        store = SqlQuotaStore(session)
        rows = store.lock_grants(cloud, segments)[0]
        changed = [
            replace(r, granted=r.granted + 1000, allocated=r.allocated + 1000, generation=99)
            for r in rows
        ]
        store.save_grants(changed, datetime.now(UTC))
        raise _ChangedMind("not after all")

    def job_b(session: Session) -> list[tuple[str, int, int, int]]:
        store = SqlQuotaStore(session)
        before = seen(store)
        service.raise_grant(store, ADMIN, "cs-data-portal", "provincial", {VCPU: 3})
        return before

    works: list[Callable[[Session], object]] = [job_a, job_b]
    if warm:
        works.insert(0, neighbour)
    results = _one_batch(combiner, [functools.partial(combiner.run, w) for w in works])

    assert isinstance(results[-2], _ChangedMind)
    base = 10 if warm else 5  # cs-data-portal's grant (= cs-data's allocated) before B
    assert results[-1] == [("cs-data", 40, base, 0), ("cs-data-portal", base, 0, 0)]
    final = world.run(seen)
    assert final == [("cs-data", 40, base + 3, 0), ("cs-data-portal", base + 3, 0, 0)]
    assert world.run(lambda s: service.check_invariants(s, "provincial")) == []


# -- 6. auto-approved filings with their audit entries ---------------------------


def test_auto_approved_filings_in_one_batch(container: Container) -> None:
    """Twelve filings of +4 vcpu under a policy of 8, with 40 of headroom in the
    department: the first ten (in batch order) are approved at filing, the
    last two stay pending; each approval happens once and is audited once."""
    world = make_world(container)
    world.run(lambda s: service.set_capacity(s, ADMIN, "provincial", "vcpu", 1000))
    world.run(lambda s: service.set_grant(s, ADMIN, "changsha", "provincial", VCPU, 100))
    world.run(lambda s: service.set_grant(s, ADMIN, "cs-data", "provincial", VCPU, 40))
    world.run(lambda s: service.set_auto_approval(s, ADMIN, "changsha", {"vcpu": 8}))
    combiner = Combiner(container.session_factory)
    ctx = audit.AuditContext(None, source="test")
    batched: list[bool] = []

    def record(session: Session) -> tuple[SqlQuotaStore, service.Filed]:
        audit.lock_head_next(session)  # as mutate_staged does
        store = SqlQuotaStore(session)
        filed = service.record_request(
            store,
            ADMIN,
            "cs-data-portal",
            [RequestItem(VCPU, 4)],
            reason="batch",
            cloud_code="provincial",
        )
        return store, filed

    def settle(
        session: Session, state: tuple[SqlQuotaStore, service.Filed]
    ) -> tuple[int, RequestState]:
        store, filed = state
        result = service.settle_filing(store, filed)
        entries = [
            audit.Entry(c.action, c.object_type, c.object_id, c.scope_path, c.before, c.after)
            for c in result.changes
        ]
        inside = combined(session)
        batched.append(inside)
        audit.record_many(session, ctx, entries, commit=not inside, defer=inside)
        return result.request.id, result.request.state

    n = 12
    results = _one_batch(combiner, [lambda: combiner.run_staged(record, settle)] * n)

    assert batched == [True] * n
    states = [r[1] if isinstance(r, tuple) else r for r in results]
    assert states == [RequestState.APPROVED] * 10 + [RequestState.PENDING] * 2
    ids = [r[0] for r in results if isinstance(r, tuple)]
    assert len(set(ids)) == n
    with UnitOfWork(container.session_factory) as uow:
        session = uow.session
        rows = session.execute(select(QuotaRequestRow.state, QuotaRequestRow.generation)).all()
        assert Counter((state, gen) for state, gen in rows) == {
            ("approved", 2): 10,
            ("pending", 1): 2,
        }
        actions = Counter(
            (a, o) for a, o in session.execute(select(AuditEntry.action, AuditEntry.object_id))
        )
        assert all(count == 1 for count in actions.values())
        assert Counter(a for a, _ in actions) == {
            "quota.request.file": 12,
            "quota.request.approve": 10,
        }
        verified = audit.verify(session)
        assert verified.ok and verified.entries == 22, verified
        changed = session.scalar(
            select(func.count()).where(OutboxEvent.topic == "quota.request.changed")
        )
        assert changed == n
    assert world.run(lambda s: service.check_invariants(s, "provincial")) == []
    _, tree = world.run(lambda s: service.grant_tree(s, "provincial", "vcpu"))
    by_node = {r.node.code: r for r in tree}
    assert by_node["cs-data-portal"].granted == 40
    assert by_node["cs-data"].allocated == 40 and by_node["cs-data"].free == 0


# -- 7. submissions from asyncio -------------------------------------------------


def test_submissions_from_asyncio(container: Container) -> None:
    """Coroutines on two event loops await staged and one-stage submissions that
    share a batch (re-run one job at a time: one finish fails); each loop gets
    its own values and exceptions. Debug mode: resolving a future from another
    thread than its loop's would raise."""
    combiner = Combiner(container.session_factory)
    batched: list[bool] = []

    def work(name: str) -> Callable[[Session], str]:
        def one(session: Session) -> str:
            batched.append(combined(session))
            add_outbox(session, name, "t", name, {})
            return name

        return one

    def refuse(_session: Session) -> str:
        raise NotFoundError("no such thing", code="thing.not_found")

    def prepare(name: str) -> Callable[[Session], str]:
        def first(session: Session) -> str:
            add_outbox(session, f"{name}-prepared", "t", name, {})
            return name

        return first

    def finish(session: Session, name: str) -> str:
        add_outbox(session, f"{name}-finished", "t", name, {})
        if name == "doomed":
            raise ConflictError("no", code="thing.conflict")
        return f"{name} done"

    def replay(_session: Session) -> Done[str]:
        return Done("replayed")

    other_results: list[Any] = []
    other_queued = threading.Event()

    async def other_loop() -> None:
        futures = [combiner.submit(work("c")), combiner.submit(refuse)]
        other_queued.set()
        gathered = asyncio.gather(*futures, return_exceptions=True)
        other_results.extend(await asyncio.wait_for(gathered, WAIT_S))

    async def main() -> list[Any]:
        gate = _Gate()
        held = combiner.submit(gate.hold)
        assert await asyncio.to_thread(gate.started.wait, WAIT_S)
        futures = [
            held,
            combiner.submit(work("a")),
            combiner.submit(refuse),
            combiner.submit_staged(prepare("staged"), finish),
            combiner.submit_staged(replay, finish),
            combiner.submit_staged(prepare("doomed"), finish),
        ]
        other = threading.Thread(target=lambda: asyncio.run(other_loop(), debug=True), daemon=True)
        other.start()
        assert await asyncio.to_thread(other_queued.wait, WAIT_S)
        futures.append(combiner.submit(work("b")))
        gate.open()
        results = await asyncio.wait_for(asyncio.gather(*futures, return_exceptions=True), WAIT_S)
        await asyncio.to_thread(other.join, WAIT_S)
        assert not other.is_alive()
        return results

    results = asyncio.run(main(), debug=True)

    assert results[0] == "gate" and results[1] == "a"
    assert isinstance(results[2], NotFoundError)
    assert results[3] == "staged done" and results[4] == "replayed"
    assert isinstance(results[5], ConflictError) and results[5].code == "thing.conflict"
    assert results[6] == "b"
    assert other_results[0] == "c" and isinstance(other_results[1], NotFoundError)
    assert True in batched  # the first attempt was one batch
    assert _topics(container) == ["a", "b", "c", "staged-finished", "staged-prepared"]


def test_a_lone_submission_is_plain_run_in_transaction(container: Container) -> None:
    """Under no load a staged call is one transaction, like run_in_transaction."""
    combiner = Combiner(container.session_factory)
    seen: list[bool] = []

    def first(session: Session) -> int:
        seen.append(combined(session))
        return 41

    def second(session: Session, value: int) -> int:
        seen.append(combined(session))
        add_outbox(session, "alone", "t", "1", {})
        return value + 1

    assert combiner.run_staged(first, second) == 42
    assert seen == [False, False]
    assert run_in_transaction(container.session_factory, _count_outbox) == 1


def _count_outbox(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(OutboxEvent)) or 0)
