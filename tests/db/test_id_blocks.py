"""`IdBlocks` (controlplane.db.ids): unique, increasing, never reused ids,
handed out on PostgreSQL only (SQLite assigns them itself)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from controlplane.bootstrap import Container
from controlplane.db import pipeline
from controlplane.db.ids import IdBlocks
from controlplane.db.quota_tables import QuotaRequestRow
from controlplane.db.retry import run_in_transaction
from controlplane.db.uow import UnitOfWork
from controlplane.quotastore import SqlQuotaStore
from controlplane.vocabulary import ResourceClass
from quotas import service
from quotas.model import RequestItem
from tests.db.pipeline_probe import require_postgresql
from tests.db.quota_world import ADMIN, make_world

WAIT_S = 30.0


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
    require_postgresql(container, "IdBlocks hands out ids on PostgreSQL only")
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
    require_postgresql(container, "IdBlocks hands out ids on PostgreSQL only")
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
    require_postgresql(container, "IdBlocks hands out ids on PostgreSQL only")
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
    require_postgresql(container, "IdBlocks hands out ids on PostgreSQL only")
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
