"""Concurrent admissions on real PostgreSQL (READ COMMITTED) and SQLite: 42
threads, then the same race from 6 processes. Afterwards every invariant holds,
exactly the admissions that fit succeeded, and none needed a retry.

Not a timing test: it asserts outcomes only.
"""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from controlplane.bootstrap import Container
from controlplane.db.engine import make_engine, make_session_factory
from tests.db.quota_race import PROJECTS, Task, check_outcome, prepare, process_main, race_threads
from tests.db.quota_world import World, make_world

PROCESSES = 6


@pytest.fixture
def world(container: Container) -> World:
    return make_world(container, PROJECTS)


@pytest.fixture
def racing_factory(container: Container, backend: str) -> Iterator[sessionmaker[Session]]:
    """Enough connections for every thread at once (SQLite writers queue on its lock)."""
    url = container.settings.effective_database_url
    engine = create_engine(url, poolclass=NullPool) if backend == "postgresql" else make_engine(url)
    yield make_session_factory(engine)
    engine.dispose()


def test_threads_race_for_the_last_headroom(
    world: World, racing_factory: sessionmaker[Session]
) -> None:
    tasks = prepare(world)
    assert len(tasks) >= 32
    results = race_threads(racing_factory, tasks)
    check_outcome(world, tasks, results)


def test_processes_race_for_the_last_headroom(world: World, container: Container) -> None:
    tasks = prepare(world)
    ctx = mp.get_context("spawn")  # never fork a process that holds pooled connections
    barrier, out = ctx.Barrier(PROCESSES), ctx.Queue()
    shares = [tasks[i::PROCESSES] for i in range(PROCESSES)]
    url = container.settings.effective_database_url
    procs = [ctx.Process(target=process_main, args=(url, share, barrier, out)) for share in shares]
    for p in procs:
        p.start()
    collected: list[tuple[Task, tuple[str, int]]] = []
    for _ in procs:
        collected += out.get(timeout=240)
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    check_outcome(world, [t for t, _ in collected], [r for _, r in collected])
