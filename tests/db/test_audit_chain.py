"""The audit chain on real databases: concurrent appends stay one chain; any
edit, deletion or reordering is found, with the entry's seq."""

from __future__ import annotations

import threading

from sqlalchemy import text

from controlplane.bootstrap import Container
from controlplane.db.uow import UnitOfWork
from controlplane.identity import audit
from controlplane.identity.audit import AuditContext


def _append(c: Container, n: int, tag: str) -> None:
    for i in range(n):
        with UnitOfWork(c.session_factory) as uow:
            audit.record(
                uow.session,
                AuditContext(None, f"req-{tag}-{i}", "test"),
                "test.write",
                "thing",
                f"{tag}-{i}",
                scope_path="/hunan/",
                after={"i": i, "tag": tag},
            )
            uow.commit()


def test_concurrent_appends_form_one_gapless_chain(container: Container) -> None:
    threads = [threading.Thread(target=_append, args=(container, 10, f"t{k}")) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with UnitOfWork(container.session_factory) as uow:
        result = audit.verify(uow.session)
    assert result.ok, result
    assert result.entries == 80


def _tamper(c: Container, sql: str) -> audit.VerifyResult:
    _append(c, 5, "x")
    with c.engine.begin() as conn:
        conn.execute(text(sql))
    with UnitOfWork(c.session_factory) as uow:
        return audit.verify(uow.session)


def test_edited_row_is_found(container: Container) -> None:
    result = _tamper(container, "UPDATE audit_log SET actor = 'mallory' WHERE seq = 3")
    assert (result.broken_at, result.reason) == (3, "content does not match its hash")


def test_rehashed_row_breaks_the_next_link(container: Container) -> None:
    _append(container, 5, "x")
    with UnitOfWork(container.session_factory) as uow:
        entry = uow.session.get(audit.AuditEntry, 2)
        assert entry is not None
        entry.object_id = "forged"
        entry.hash = audit.entry_hash(entry)  # a careful forger recomputes this row's hash
        uow.commit()
    with UnitOfWork(container.session_factory) as uow:
        result = audit.verify(uow.session)
    assert (result.broken_at, result.reason) == (3, "previous-hash link does not match")


def test_deleted_row_is_found(container: Container) -> None:
    result = _tamper(container, "DELETE FROM audit_log WHERE seq = 4")
    assert (result.broken_at, result.reason) == (4, "entry 4 is missing")


def test_truncated_tail_is_found(container: Container) -> None:
    result = _tamper(container, "DELETE FROM audit_log WHERE seq = 5")
    assert result.broken_at == 5
    assert result.reason == "head says 5 entries, found 4"
