"""One transaction per use case, retried when it loses a race.

    result = run_in_transaction(container.session_factory, lambda session: work(session))

`work` runs inside a fresh UnitOfWork and is committed when it returns. A lost
race — PostgreSQL's serialization failure (40001), deadlock (40P01) or lock
timeout (55P03), SQLite's "database is locked" — rolls everything back and runs
`work` again, a bounded number of times, so callers see ConflictError only for
real conflicts. With the quota rows locked in one fixed order these races
should not occur at all; the retry is the safety net, not the mechanism.
`work` must therefore be safe to repeat: it may only touch the database.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from controlplane.db.uow import UnitOfWork

T = TypeVar("T")
log = logging.getLogger("yunguan.db")

RETRYABLE_SQLSTATES = frozenset({"40001", "40P01", "55P03"})
DEFAULT_ATTEMPTS = 5


def is_lost_race(exc: BaseException) -> bool:
    if not isinstance(exc, DBAPIError):
        return False
    if getattr(exc.orig, "sqlstate", None) in RETRYABLE_SQLSTATES:
        return True
    return "database is locked" in str(exc.orig)


def run_in_transaction(
    session_factory: sessionmaker[Session],
    work: Callable[[Session], T],
    *,
    attempts: int = DEFAULT_ATTEMPTS,
) -> T:
    for attempt in range(1, attempts + 1):
        with UnitOfWork(session_factory) as uow:
            try:
                result = work(uow.session)
                uow.commit()
                return result
            except DBAPIError as exc:
                if attempt == attempts or not is_lost_race(exc):
                    raise
                log.info("transaction lost a race (%s); retry %d", exc.orig, attempt)
        # Jittered backoff so the retried writers do not collide again in step.
        time.sleep(random.uniform(0, 0.002 * 2**attempt))  # noqa: S311 - not crypto
    raise AssertionError("unreachable")
