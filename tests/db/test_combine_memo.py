"""Quota work in a staged batch (controlplane.db.combine), on both backends:

- the transaction's memo of locked grant rows (controlplane.quotastore.grants)
  after a job that changed them was rolled back to its savepoint;
- auto-approved filings (`record_request` / `settle_filing`) with their audit
  entries deferred in the batch: invariants, one approval each, intact chain.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from controlplane.bootstrap import Container
from controlplane.db.combine import Combiner, combined
from controlplane.db.identity_tables import AuditEntry
from controlplane.db.outbox import OutboxEvent
from controlplane.db.quota_tables import QuotaRequestRow
from controlplane.db.uow import UnitOfWork
from controlplane.identity import audit
from controlplane.quotastore import SqlQuotaStore
from controlplane.vocabulary import ResourceClass
from quotas import service
from quotas.model import RequestItem, RequestState
from tests.db.combine_batches import one_batch
from tests.db.quota_world import ADMIN, make_world

VCPU = ResourceClass.VCPU


# -- the memo of locked grant rows ----------------------------------------------


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
    results = one_batch(combiner, [functools.partial(combiner.run, w) for w in works])

    assert isinstance(results[-2], _ChangedMind)
    base = 10 if warm else 5  # cs-data-portal's grant (= cs-data's allocated) before B
    assert results[-1] == [("cs-data", 40, base, 0), ("cs-data-portal", base, 0, 0)]
    final = world.run(seen)
    assert final == [("cs-data", 40, base + 3, 0), ("cs-data-portal", base + 3, 0, 0)]
    assert world.run(lambda s: service.check_invariants(s, "provincial")) == []


# -- auto-approved filings with their audit entries ------------------------------


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
        batched.append(combined(session))
        audit.record_many(session, ctx, entries)
        return result.request.id, result.request.state

    n = 12
    results = one_batch(combiner, [lambda: combiner.run_staged(record, settle)] * n)

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
