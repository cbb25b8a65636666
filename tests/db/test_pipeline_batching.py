"""What the batching of controlplane.db.pipeline sends, and what it keeps:

- a SAVEPOINT and its RELEASE deferred in one queue are never sent (the
  writes between them are); a SAVEPOINT without its RELEASE is sent, and
  `rollback_to` it still undoes what followed;
- carried reads travel with the fetch of their own group only (LOCKS or
  LOOKUPS): announced lookups never take the audit head lock;
- `Write.latest_wins` drops a superseded write unless a savepoint boundary
  lies between the two;
- the transaction memo (`remember` / `recall`) ends with the transaction and
  with any rollback to a savepoint;
- `IdBlocks` (controlplane.db.ids): unique, increasing, never reused ids;
- `SqlQuotaStore.expect_locate`: announced lookups answer exactly as plain
  ones, all in the round trip of the first.

What is sent is observed by wrapping psycopg's `Cursor.execute` (and
`executemany`, and `Connection.pipeline` for the round trips); tests that
look at it run on PostgreSQL only (SQLite has no deferred writes).
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from controlplane.bootstrap import Container
from controlplane.db import pipeline
from controlplane.db.ids import IdBlocks
from controlplane.db.outbox import OutboxEvent, add_outbox
from controlplane.db.quota_tables import QuotaRequestRow
from controlplane.db.retry import run_in_transaction
from controlplane.db.uow import UnitOfWork
from controlplane.identity import audit
from controlplane.quotastore import SqlQuotaStore
from controlplane.vocabulary import NotFoundError, ResourceClass
from quotas import service
from quotas.model import AutoApprovalPolicy, CloudRef, NodeRef, RequestItem, approving_scope
from tests.db.quota_world import ADMIN, make_world

WAIT_S = 30.0
PG_ONLY = "PostgreSQL only: SQLite runs every write at once (no deferred writes to batch)"


# -- helpers -------------------------------------------------------------------


def _require_postgresql(container: Container, reason: str = PG_ONLY) -> None:
    if container.engine.dialect.name != "postgresql":
        pytest.skip(reason)


@dataclass
class Sent:
    """What psycopg was asked to run while the test recorded: (driver
    connection, SQL, parameters) per execution, and each pipeline (one
    round trip) opened."""

    statements: list[tuple[Any, str, Any]] = field(default_factory=list)
    pipelines: list[Any] = field(default_factory=list)

    def clear(self) -> None:
        self.statements.clear()
        self.pipelines.clear()

    def on(self, driver: Any) -> list[str]:
        """The SQL sent on one driver connection, in order."""
        return [sql for conn, sql, _ in self.statements if conn is driver]

    def params_of(self, driver: Any, prefix: str) -> list[Any]:
        return [p for conn, sql, p in self.statements if conn is driver and sql.startswith(prefix)]


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> Sent:
    log = Sent()
    execute = psycopg.Cursor.execute
    executemany = psycopg.Cursor.executemany
    open_pipeline = psycopg.Connection.pipeline

    def _sql(query: Any) -> str:
        if isinstance(query, bytes):
            return query.decode()
        return query if isinstance(query, str) else repr(query)

    def recording_execute(self: Any, query: Any, params: Any = None, **kw: Any) -> Any:
        log.statements.append((self.connection, _sql(query), params))
        return execute(self, query, params, **kw)

    def recording_executemany(self: Any, query: Any, params_seq: Any, **kw: Any) -> Any:
        params_seq = list(params_seq)
        for params in params_seq:
            log.statements.append((self.connection, _sql(query), params))
        return executemany(self, query, params_seq, **kw)

    def recording_pipeline(self: Any, *args: Any, **kw: Any) -> Any:
        log.pipelines.append(self)
        return open_pipeline(self, *args, **kw)

    monkeypatch.setattr(psycopg.Cursor, "execute", recording_execute)
    monkeypatch.setattr(psycopg.Cursor, "executemany", recording_executemany)
    monkeypatch.setattr(psycopg.Connection, "pipeline", recording_pipeline)
    return log


def _driver(session: Session) -> Any:
    """The session's psycopg connection (its transaction begun)."""
    session.execute(text("SELECT 1"))
    return session.connection().connection.driver_connection


def _savepoint(name: str) -> pipeline.Write:
    # As controlplane.db.combine._Savepoint defers it; the Core form lets the
    # same test run on SQLite, where `defer` executes at once.
    return pipeline.Write(text(f"SAVEPOINT {name}"), {}, f"SAVEPOINT {name}", [()])


def _release(name: str) -> pipeline.Write:
    sql = f"RELEASE SAVEPOINT {name}"
    return pipeline.Write(text(sql), {}, sql, [()])


def _outbox(session: Session, topic: str) -> None:
    add_outbox(session, topic, "test", topic, {})  # a deferred INSERT on PostgreSQL


def _outbox_count(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(OutboxEvent)) or 0)


def _topics(container: Container) -> list[str]:
    with UnitOfWork(container.session_factory) as uow:
        return sorted(uow.session.scalars(select(OutboxEvent.topic)))


def _boundaries(statements: list[str]) -> list[str]:
    return [s for s in statements if s.startswith(("SAVEPOINT ", "RELEASE ", "ROLLBACK TO "))]


# -- 1. savepoints in the queue -----------------------------------------------------


def test_a_savepoint_released_in_the_same_queue_is_never_sent(
    container: Container, sent: Sent
) -> None:
    """SAVEPOINT, a write, RELEASE, all still queued when a read flushes them:
    the pair is dropped (nothing could roll back to it any more), the write lands."""
    _require_postgresql(container)
    with UnitOfWork(container.session_factory) as uow:
        session = uow.session
        driver = _driver(session)
        sent.clear()
        pipeline.defer(session, _savepoint("yg_t"))
        _outbox(session, "between")
        pipeline.defer(session, _release("yg_t"))
        assert _outbox_count(session) == 1  # the read carries the queue
        statements = sent.on(driver)
        assert _boundaries(statements) == [], statements
        assert any(s.startswith("INSERT INTO outbox") for s in statements)
        uow.commit()
    assert _topics(container) == ["between"]


def test_an_unreleased_savepoint_is_sent_and_rollback_to_it_undoes_what_follows(
    container: Container, sent: Sent
) -> None:
    """A SAVEPOINT flushed without its RELEASE goes to the server; rollback_to
    then sends ROLLBACK TO it, which undoes the writes sent after it and drops
    those still queued. What came before it stays."""
    _require_postgresql(container)
    with UnitOfWork(container.session_factory) as uow:
        session = uow.session
        driver = _driver(session)
        sent.clear()
        _outbox(session, "before")
        pipeline.defer(session, _savepoint("yg_t"))
        _outbox(session, "undone-sent")
        assert _outbox_count(session) == 2  # flushed: the savepoint has left
        assert _boundaries(sent.on(driver)) == ["SAVEPOINT yg_t"]
        _outbox(session, "undone-queued")
        pipeline.rollback_to(session, "yg_t")
        assert _boundaries(sent.on(driver)) == ["SAVEPOINT yg_t", "ROLLBACK TO SAVEPOINT yg_t"]
        assert _outbox_count(session) == 1
        _outbox(session, "after")
        uow.commit()
    assert _topics(container) == ["after", "before"]


def test_a_release_whose_savepoint_has_left_is_sent(container: Container, sent: Sent) -> None:
    """Only a pair in one queue is dropped: a RELEASE deferred after its
    SAVEPOINT was sent still goes, and a later ROLLBACK TO it fails as on the server."""
    _require_postgresql(container)
    with UnitOfWork(container.session_factory) as uow:
        session = uow.session
        driver = _driver(session)
        sent.clear()
        pipeline.defer(session, _savepoint("yg_t"))
        _outbox(session, "inside")
        session.execute(text("SELECT 1"))
        pipeline.defer(session, _release("yg_t"))
        _outbox(session, "after")
        assert _outbox_count(session) == 2
        assert _boundaries(sent.on(driver)) == ["SAVEPOINT yg_t", "RELEASE SAVEPOINT yg_t"]
        with pytest.raises(DBAPIError):
            pipeline.rollback_to(session, "yg_t")  # released: it exists no more


def test_a_savepoint_rolled_back_to_before_it_left_costs_nothing(
    container: Container, sent: Sent
) -> None:
    """rollback_to a SAVEPOINT still queued: neither it nor a ROLLBACK TO is
    sent, the writes queued after it are dropped, those before it still go."""
    _require_postgresql(container)
    with UnitOfWork(container.session_factory) as uow:
        session = uow.session
        driver = _driver(session)
        sent.clear()
        _outbox(session, "before")
        pipeline.defer(session, _savepoint("yg_t"))
        _outbox(session, "undone")
        pipeline.rollback_to(session, "yg_t")
        assert _outbox_count(session) == 1
        assert _boundaries(sent.on(driver)) == []
        uow.commit()
    assert _topics(container) == ["before"]


# -- 2. carry groups ------------------------------------------------------------------

_LOOKUP_SQL = "SELECT 'lookup' AS what"
_LOCK_SQL = "SELECT 'lock' AS what"


def test_carried_reads_go_with_a_fetch_of_their_own_group_only(
    container: Container, sent: Sent
) -> None:
    """A LOOKUPS read is not sent with a LOCKS fetch, nor a LOCKS read with a
    LOOKUPS fetch; each is sent once, with the first fetch of its group, and
    `carried` hands its rows over once."""
    _require_postgresql(container)
    with UnitOfWork(container.session_factory) as uow:
        session = uow.session
        driver = _driver(session)
        assert pipeline.carry_read(session, "t-lookup", _LOOKUP_SQL, None, group=pipeline.LOOKUPS)
        assert pipeline.carry_read(session, "t-lock", _LOCK_SQL, None, group=pipeline.LOCKS)
        sent.clear()

        rows = pipeline.fetch(session, "SELECT 1 AS one", None, carry=pipeline.LOCKS)
        assert [r.one for r in rows] == [1]
        assert sent.on(driver) == ["SELECT 1 AS one", _LOCK_SQL]
        assert [r.what for r in pipeline.carried(session, "t-lock") or []] == ["lock"]
        assert pipeline.carried(session, "t-lock") is None  # handed over once

        sent.clear()
        rows = pipeline.fetch(session, "SELECT 2 AS two", None, carry=pipeline.LOOKUPS)
        assert [r.two for r in rows] == [2]
        assert sent.on(driver) == ["SELECT 2 AS two", _LOOKUP_SQL]
        assert [r.what for r in pipeline.carried(session, "t-lookup") or []] == ["lookup"]

        sent.clear()
        pipeline.fetch(session, "SELECT 3 AS three", None, carry=pipeline.LOCKS)
        pipeline.fetch(session, "SELECT 4 AS four", None, carry=pipeline.LOOKUPS)
        assert sent.on(driver) == ["SELECT 3 AS three", "SELECT 4 AS four"]


def test_carried_is_none_before_the_fetch_and_then_the_read_is_never_sent(
    container: Container, sent: Sent
) -> None:
    """`carried` before the matching fetch answers None and withdraws the read
    (the caller reads for itself): the fetch then does not send it."""
    _require_postgresql(container)
    with UnitOfWork(container.session_factory) as uow:
        session = uow.session
        driver = _driver(session)
        pipeline.carry_read(session, "t-lock", _LOCK_SQL, None, group=pipeline.LOCKS)
        assert pipeline.carried(session, "t-lock") is None
        sent.clear()
        pipeline.fetch(session, "SELECT 1 AS one", None, carry=pipeline.LOCKS)
        assert sent.on(driver) == ["SELECT 1 AS one"]
        assert pipeline.carried(session, "t-lock") is None


@pytest.mark.parametrize("end", ["commit", "rollback"])
def test_a_read_never_sent_ends_with_its_transaction(
    container: Container, sent: Sent, end: str
) -> None:
    _require_postgresql(container)
    with UnitOfWork(container.session_factory) as uow:
        session = uow.session
        pipeline.carry_read(session, "t-lock", _LOCK_SQL, None, group=pipeline.LOCKS)
        session.commit() if end == "commit" else session.rollback()
        driver = _driver(session)
        sent.clear()
        pipeline.fetch(session, "SELECT 1 AS one", None, carry=pipeline.LOCKS)
        assert sent.on(driver) == ["SELECT 1 AS one"]
        assert pipeline.carried(session, "t-lock") is None


def _audit_head_free(container: Container) -> bool:
    """From another connection: can the audit head be locked right now?"""
    with container.engine.connect() as other:
        try:
            other.execute(
                text("SELECT last_seq FROM audit_head WHERE id = 1 FOR UPDATE NOWAIT")
            ).all()
        except DBAPIError as exc:
            if isinstance(exc.orig, psycopg.errors.LockNotAvailable):
                return False
            raise
        finally:
            other.rollback()
    return True


def test_announced_lookups_do_not_take_the_audit_head_lock(container: Container) -> None:
    """`lock_head_next` registers the head lock with the LOCKS group: the
    lookups a batch announced (expect_locate, then locate) are sent without
    it, so the head stays free for everybody else; the next LOCKS fetch takes it."""
    _require_postgresql(container)
    make_world(container)
    with UnitOfWork(container.session_factory) as uow:
        session = uow.session
        audit.lock_head_next(session)
        store = SqlQuotaStore(session)
        store.expect_locate("changsha", "cs-data-portal")
        store.expect_locate("provincial", "hn-health-hrp")
        store.locate("changsha", "cs-data-portal")
        store.locate("provincial", "hn-health-hrp")
        assert _audit_head_free(container)
        # The control: the group it belongs to does take it, in the same transaction.
        pipeline.fetch(session, "SELECT 1 AS one", None, carry=pipeline.LOCKS)
        assert not _audit_head_free(container)
    assert _audit_head_free(container)


# -- 3. latest_wins -------------------------------------------------------------------

_SET_SEQ = "UPDATE audit_head SET last_seq = "


def _set_head_seq(seq: int) -> pipeline.Write:
    return pipeline.Write(
        text(_SET_SEQ + ":seq WHERE id = 1"),
        {"seq": seq},
        _SET_SEQ + "%s WHERE id = 1",
        [(seq,)],
        latest_wins="t-head",
    )


_QUEUES = {
    "nothing-between": ([_set_head_seq(1), _set_head_seq(2)], [(2,)]),
    "savepoint-between": (
        [_set_head_seq(1), _savepoint("yg_t"), _set_head_seq(2), _release("yg_t")],
        [(1,), (2,)],
    ),
    "release-between": (
        [_savepoint("yg_t"), _set_head_seq(1), _release("yg_t"), _set_head_seq(2)],
        [(1,), (2,)],
    ),
}


@pytest.mark.parametrize("queue", list(_QUEUES))
def test_latest_wins_keeps_the_last_write_unless_a_savepoint_boundary_is_between(
    container: Container, sent: Sent, queue: str
) -> None:
    """Two writes of one `latest_wins` key: only the later is sent when nothing
    lies between them in the queue, both when a SAVEPOINT or a RELEASE does
    (the part after it may be rolled back alone). The row ends with the last
    value either way, on both backends."""
    writes, kept = _QUEUES[queue]
    on_postgresql = container.engine.dialect.name == "postgresql"
    with UnitOfWork(container.session_factory) as uow:
        session = uow.session
        driver = _driver(session) if on_postgresql else None
        sent.clear()
        for write in writes:
            pipeline.defer(session, write)
        seq = session.scalar(text("SELECT last_seq FROM audit_head WHERE id = 1"))
        assert seq == 2
        if driver is not None:
            assert sent.params_of(driver, _SET_SEQ) == kept
            assert _boundaries(sent.on(driver)) == []  # each pair was in one queue
        uow.commit()
    with UnitOfWork(container.session_factory) as uow:
        assert uow.session.scalar(text("SELECT last_seq FROM audit_head WHERE id = 1")) == 2


# -- 4. the transaction memo -------------------------------------------------------


@pytest.mark.parametrize("end", ["commit", "rollback"])
def test_a_remembered_value_ends_with_its_transaction(container: Container, end: str) -> None:
    _require_postgresql(container, "remember() keeps nothing on SQLite (nothing is deferred)")
    with UnitOfWork(container.session_factory) as uow:
        session = uow.session
        session.execute(text("SELECT 1"))
        pipeline.remember(session, "t-memo", {"seq": 7})
        assert pipeline.recall(session, "t-memo") == {"seq": 7}
        session.commit() if end == "commit" else session.rollback()
        session.execute(text("SELECT 1"))  # the session's next transaction
        assert pipeline.recall(session, "t-memo") is None


@pytest.mark.parametrize(
    "savepoint", ["queued", "sent", "sqlalchemy-nested"], ids=lambda s: f"savepoint-{s}"
)
def test_a_rollback_to_any_savepoint_forgets_the_memo(container: Container, savepoint: str) -> None:
    """What was remembered before the savepoint and inside it: both gone after
    rolling back to it (the value may have been written in the part undone),
    whether the SAVEPOINT had left yet or not, or was SQLAlchemy's own."""
    _require_postgresql(container, "remember() keeps nothing on SQLite (nothing is deferred)")
    with UnitOfWork(container.session_factory) as uow:
        session = uow.session
        session.execute(text("SELECT 1"))
        pipeline.remember(session, "t-before", 1)
        nested = None
        if savepoint == "sqlalchemy-nested":
            nested = session.begin_nested()
            session.execute(text("SELECT 1"))
        else:
            pipeline.defer(session, _savepoint("yg_t"))
            if savepoint == "sent":
                session.execute(text("SELECT 1"))
        pipeline.remember(session, "t-inside", 2)
        assert pipeline.recall(session, "t-before") == 1
        assert pipeline.recall(session, "t-inside") == 2
        if nested is not None:
            nested.rollback()
        else:
            pipeline.rollback_to(session, "yg_t")
        assert pipeline.recall(session, "t-before") is None
        assert pipeline.recall(session, "t-inside") is None
        session.execute(text("SELECT 1"))  # the transaction is still usable


# -- 5. IdBlocks --------------------------------------------------------------------


def _take(container: Container, blocks: IdBlocks, n: int, *, commit: bool = True) -> list[int]:
    """n ids taken in one transaction."""
    with UnitOfWork(container.session_factory) as uow:
        ids = [blocks.take(uow.session) for _ in range(n)]
        if commit:
            uow.commit()
    assert all(i is not None for i in ids)
    return [i for i in ids if i is not None]


def test_idblocks_take_nothing_on_sqlite(container: Container) -> None:
    """SQLite inserts are not deferred: the database assigns the id (None here)."""
    with UnitOfWork(container.session_factory) as uow:
        taken = IdBlocks("quota_requests").take(uow.session)
    if container.engine.dialect.name == "sqlite":
        assert taken is None
    else:
        assert isinstance(taken, int) and taken > 0


def test_ids_from_many_threads_are_unique(container: Container) -> None:
    """Eight threads, each with its own sessions, take ids from one IdBlocks
    (small blocks: many refills race): no id is handed out twice."""
    _require_postgresql(container, "IdBlocks hands out ids on PostgreSQL only")
    blocks = IdBlocks("quota_requests", size=5)
    threads, rounds, per_round = 8, 4, 9
    start = threading.Barrier(threads)

    def work(_i: int) -> list[int]:
        start.wait(WAIT_S)
        # Every other transaction rolls back: its ids are spent all the same.
        return [
            i for r in range(rounds) for i in _take(container, blocks, per_round, commit=r % 2 == 1)
        ]

    with ThreadPoolExecutor(threads) as pool:
        taken = [i for ids in pool.map(work, range(threads)) for i in ids]
    assert len(taken) == threads * rounds * per_round
    assert len(set(taken)) == len(taken)


def test_ids_increase_within_one_process(container: Container) -> None:
    """Taken one after another, across transactions and block refills, ids
    only grow."""
    _require_postgresql(container, "IdBlocks hands out ids on PostgreSQL only")
    blocks = IdBlocks("quota_requests", size=4)
    taken = [i for _ in range(5) for i in _take(container, blocks, 3)]
    assert taken == sorted(taken) and len(set(taken)) == len(taken)


def test_ids_still_increase_after_two_threads_refilled_at_once(
    container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two threads find the free list empty and both fetch a block; the one
    with the higher block files it first. The ids handed out afterwards, one
    after another in one thread, must still only grow (the module's promise:
    "ids stay unique and increase within one process")."""
    _require_postgresql(container, "IdBlocks hands out ids on PostgreSQL only")
    size = 4
    blocks = IdBlocks("quota_requests", size=size)
    fetch = pipeline.fetch
    fetched: list[int] = []  # the size of each block fetched
    racing = threading.Event()
    both_fetched = threading.Barrier(2)
    first_ids: dict[str, int] = {}
    returned = {name: threading.Event() for name in ("t1", "t2")}

    def observed_fetch(session: Session, sql: str, params: Any, **kw: Any) -> list[Any]:
        rows = fetch(session, sql, params, **kw)
        fetched.append(len(rows))
        if racing.is_set():  # the lower block waits until the higher one is filed
            me = threading.current_thread().name
            first_ids[me] = rows[0].id
            both_fetched.wait(WAIT_S)
            other = next(name for name in first_ids if name != me)
            if first_ids[me] < first_ids[other]:
                assert returned[other].wait(WAIT_S)
        return rows

    monkeypatch.setattr(pipeline, "fetch", observed_fetch)
    # Warm up until blocks are full-sized, then use up the last block fetched:
    # the free list is empty and the next two takes both refill.
    for _ in range(64):
        _take(container, blocks, 1)
        if fetched and fetched[-1] == size:
            break
    assert fetched[-1] == size, fetched
    _take(container, blocks, size - 1)
    refills = len(fetched)

    def first_take(name: str) -> None:
        _take(container, blocks, 1)
        returned[name].set()

    racing.set()
    racers = [threading.Thread(target=first_take, args=(n,), name=n) for n in ("t1", "t2")]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join(WAIT_S)
        assert not racer.is_alive()
    racing.clear()
    assert fetched[refills:] == [size, size]  # both refilled

    later = _take(container, blocks, 2 * (size - 1))  # what the two blocks left
    assert later == sorted(later), later


def test_an_id_taken_in_a_rolled_back_transaction_is_not_reused(container: Container) -> None:
    """Sequences are not transactional: an id handed out (IdBlocks, or a filed
    request's row) in a transaction that rolls back never comes back."""
    _require_postgresql(container, "IdBlocks hands out ids on PostgreSQL only")
    blocks = IdBlocks("quota_requests", size=3)
    lost = _take(container, blocks, 2, commit=False)
    later = [i for _ in range(4) for i in _take(container, blocks, 2)]
    assert not set(lost) & set(later)
    assert min(later) > max(lost)

    make_world(container)

    def file(session: Session) -> int:
        filed = service.record_request(
            SqlQuotaStore(session),
            ADMIN,
            "cs-data-portal",
            [RequestItem(ResourceClass.VCPU, 1)],
            reason="ids",
            cloud_code="changsha",
        )
        return filed.request.id

    with UnitOfWork(container.session_factory) as uow:
        undone = file(uow.session)
        uow.rollback()
    kept = run_in_transaction(container.session_factory, file)
    assert kept != undone and kept > undone
    with UnitOfWork(container.session_factory) as uow:
        assert list(uow.session.scalars(select(QuotaRequestRow.id))) == [kept]


# -- 6. announced lookups ------------------------------------------------------------

PAIRS = [
    ("changsha", "cs-data-portal"),
    ("changsha", "cs-health-his"),
    ("provincial", "hn-health-hrp"),
    ("provincial", "cs-data-portal"),
]
Located = tuple[CloudRef, list[NodeRef], AutoApprovalPolicy | None]


def _located(store: SqlQuotaStore, cloud: str, node: str) -> Located:
    found, chain = store.locate(cloud, node)
    # The policies come with the lookup (read along by locate).
    return found, chain, store.auto_approval(approving_scope(chain))


def _plain_lookups(container: Container) -> dict[tuple[str, str], Located]:
    """Each pair looked up alone, in a fresh transaction without hints."""
    out = {}
    for pair in PAIRS:
        with UnitOfWork(container.session_factory) as uow:
            out[pair] = _located(SqlQuotaStore(uow.session), *pair)
    return out


@pytest.fixture
def located_world(container: Container) -> Container:
    """The sample topology, with an auto-approval policy for the lookups to read along."""
    world = make_world(container)
    world.run(lambda s: service.set_auto_approval(s, ADMIN, "changsha", {"vcpu": 8}))
    return container


def test_announced_lookups_answer_as_plain_ones_in_one_round_trip(
    located_world: Container, sent: Sent
) -> None:
    """A batch announces its lookups (expect_locate): each locate then returns
    what it returns alone, and only the first one costs a round trip, which
    carries all of them."""
    container = located_world
    _require_postgresql(container)
    expected = _plain_lookups(container)
    with UnitOfWork(container.session_factory) as uow:
        store = SqlQuotaStore(uow.session)
        for pair in PAIRS:
            store.expect_locate(*pair)
        sent.clear()
        got = {PAIRS[0]: _located(store, *PAIRS[0])}
        assert len(sent.pipelines) == 1
        lookups = [sql for _, sql, _ in sent.statements if sql.startswith("WITH RECURSIVE")]
        assert len(lookups) == len(PAIRS)
        statements = len(sent.statements)
        got.update({pair: _located(store, *pair) for pair in PAIRS[1:]})
        assert len(sent.statements) == statements and len(sent.pipelines) == 1
    assert got == expected


@pytest.mark.parametrize("unknown_first", [True, False], ids=["unknown-first", "unknown-last"])
@pytest.mark.parametrize(
    ("cloud", "node", "code"),
    [
        ("changsha", "no-such-project", "org.not_found"),
        ("no-such-cloud", "cs-data-portal", "cloud.not_found"),
    ],
    ids=["unknown-project", "unknown-cloud"],
)
def test_an_announced_unknown_lookup_still_raises(
    located_world: Container, unknown_first: bool, cloud: str, node: str, code: str
) -> None:
    """An announced lookup of an unknown project (or cloud) raises the same
    NotFoundError on locate as without the announcement, whether its rows came
    carried or it was the first lookup; the others still answer."""
    container = located_world
    expected = _plain_lookups(container)[PAIRS[0]]
    with UnitOfWork(container.session_factory) as uow:
        store = SqlQuotaStore(uow.session)
        store.expect_locate(cloud, node)
        store.expect_locate(*PAIRS[0])
        if not unknown_first:
            assert _located(store, *PAIRS[0]) == expected
        with pytest.raises(NotFoundError) as raised:
            store.locate(cloud, node)
        assert raised.value.code == code
        assert _located(store, *PAIRS[0]) == expected


def test_lookups_unannounced_are_not_carried(located_world: Container, sent: Sent) -> None:
    """Without hints every locate is its own statement (the baseline the
    round-trip count above is compared with)."""
    container = located_world
    _require_postgresql(container)
    with UnitOfWork(container.session_factory) as uow:
        store = SqlQuotaStore(uow.session)
        _driver(uow.session)
        sent.clear()
        for i, pair in enumerate(PAIRS, start=1):
            _located(store, *pair)
            lookups = [sql for _, sql, _ in sent.statements if sql.startswith("WITH RECURSIVE")]
            assert len(lookups) == i  # sent by this locate, alone
