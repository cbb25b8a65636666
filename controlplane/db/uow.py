"""The unit of work: one transaction per use case, owned by the caller.

    with UnitOfWork(session_factory) as uow:
        repo = CloudStore(uow.session)
        ...                       # repositories add/flush, never commit
        uow.commit()              # nothing is written unless the caller says so

Leaving the block without `commit()` (an exception, a dry run) rolls back.
"""

from __future__ import annotations

from types import TracebackType

from sqlalchemy.orm import Session, sessionmaker

from controlplane.db import pipeline


class UnitOfWork:
    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self._factory = session_factory
        self._session: Session | None = None

    @property
    def session(self) -> Session:
        if self._session is None:
            raise RuntimeError("UnitOfWork used outside its `with` block")
        return self._session

    def __enter__(self) -> UnitOfWork:
        self._session = self._factory()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        session = self.session
        try:
            session.rollback()  # a no-op after commit(); undoes everything otherwise
        finally:
            session.close()
            self._session = None

    def commit(self) -> None:
        # PostgreSQL: deferred writes go with the COMMIT (one round trip).
        pipeline.commit_pending(self.session)
        self.session.commit()

    def rollback(self) -> None:
        self.session.rollback()
