"""Quota reservations, the outbox, idempotency and retries against real databases.

Every refusal is a clear domain error with a stable code and the numbers in
`extra`, and leaves the database exactly as it was.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from controlplane.db import idempotency
from controlplane.db.retry import run_in_transaction
from controlplane.db.uow import UnitOfWork
from controlplane.quotastore import SqlQuotaStore
from controlplane.vocabulary import (
    ConflictError,
    InvalidInputError,
)
from quotas import service
from quotas.model import RequestItem, ReservationState
from tests.db.quota_cases import (  # noqa: F401 - world is a fixture
    MEM,
    VCPU,
    file,
    grant,
    refused,
    sound,
    world,
)
from tests.db.quota_world import ADMIN, World

# -- reservations -------------------------------------------------------------


def test_reservations_hold_commit_release_and_expire(world: World) -> None:
    grant(world, "changsha", 100)
    grant(world, "cs-data", 100)
    grant(world, "cs-data-portal", 10)
    now = datetime.now(UTC)
    held = world.run(
        lambda s: service.reserve(
            s, ADMIN, "cs-data-portal", "provincial", {"vcpu": 6}, ttl=timedelta(minutes=5), now=now
        )
    )
    assert held.grants[0].consumed == 6
    err = refused(
        world,
        lambda s: service.reserve(
            s, ADMIN, "cs-data-portal", "provincial", {"vcpu": 5}, ttl=timedelta(minutes=5)
        ),
        ConflictError,
        "quota.exceeded",
    )
    assert err.extra["free"] == {"vcpu": 4}
    refused(
        world,
        lambda s: service.set_grant(s, ADMIN, "cs-data-portal", "provincial", "vcpu", 5),
        ConflictError,
        "quota.below_allocated",
    )
    rid = held.reservation.id
    world.run(lambda s: service.commit_reservation(s, ADMIN, rid, now=now))
    refused(
        world,
        lambda s: service.commit_reservation(s, ADMIN, rid),
        ConflictError,
        "reservation.state_conflict",
    )
    short = world.run(
        lambda s: service.reserve(
            s,
            ADMIN,
            "cs-data-portal",
            "provincial",
            {"vcpu": 4},
            ttl=timedelta(seconds=30),
            now=now,
        )
    )
    later = now + timedelta(minutes=1)
    refused(
        world,
        lambda s: service.commit_reservation(s, ADMIN, short.reservation.id, now=later),
        ConflictError,
        "reservation.expired",
    )
    assert world.run(lambda s: service.expire_reservations(s, later)) == 1
    assert world.run(lambda s: service.expire_reservations(s, later)) == 0
    states = {r.id: r.state for r in world.run(service.list_reservations)}
    assert states == {
        rid: ReservationState.COMMITTED,
        short.reservation.id: ReservationState.EXPIRED,
    }
    released = world.run(lambda s: service.release_reservation(s, ADMIN, rid))
    assert released.grants[0].consumed == 0
    refused(
        world,
        lambda s: service.release_reservation(s, ADMIN, rid),
        ConflictError,
        "reservation.state_conflict",
    )
    refused(
        world,
        lambda s: service.reserve(
            s, ADMIN, "cs-data-portal", "provincial", {"vcpu": 1}, ttl=timedelta(0)
        ),
        InvalidInputError,
        "reservation.invalid",
    )
    refused(
        world,
        lambda s: service.reserve(
            s, ADMIN, "cs-health-his", "provincial", {"vcpu": 1}, ttl=timedelta(minutes=1)
        ),
        ConflictError,
        "quota.exceeded",
    )  # no grant at all
    sound(world)


# -- outbox, idempotency, retries ---------------------------------------------


def test_every_change_writes_one_outbox_row(world: World) -> None:
    start = world.count("outbox")
    grant(world, "changsha", 100)
    req = file(world).request
    world.run(lambda s: service.approve_request(s, ADMIN, req.id))
    assert world.count("outbox") == start + 3
    with UnitOfWork(world.container.session_factory) as uow:
        rows = uow.session.execute(
            text("SELECT topic, aggregate_type, aggregate_id, published_at FROM outbox ORDER BY id")
        ).all()
    assert [r[0] for r in rows[-3:]] == [
        "quota.grant.changed",
        "quota.request.changed",
        "quota.request.changed",
    ]
    assert rows[-1][2] == str(req.id) and rows[-1][3] is None


def test_idempotency_keys_replay_and_refuse_reuse(world: World) -> None:
    factory = world.container.session_factory
    digest = idempotency.request_hash("POST", "/v1/requests", {"a": 1})
    with UnitOfWork(factory) as uow:
        assert idempotency.claim(uow.session, "alice", "k-1", digest) is None
        idempotency.complete(uow.session, "alice", "k-1", 201, {"id": 7})
        uow.commit()
    with UnitOfWork(factory) as uow:
        stored = idempotency.claim(uow.session, "alice", "k-1", digest)
        assert stored == idempotency.StoredResponse(201, {"id": 7})
        with pytest.raises(ConflictError) as info:
            idempotency.claim(
                uow.session, "alice", "k-1", idempotency.request_hash("POST", "/v1/requests", {})
            )
        assert info.value.code == "idempotency.key_reused"
        assert idempotency.claim(uow.session, "bob", "k-1", digest) is None  # keys are per actor
        with pytest.raises(InvalidInputError):
            idempotency.claim(uow.session, "alice", "", digest)
    with UnitOfWork(factory) as uow:  # a claim rolled back with its transaction is free again
        assert idempotency.claim(uow.session, "carol", "k-2", digest) is None
    with UnitOfWork(factory) as uow:
        assert idempotency.claim(uow.session, "carol", "k-2", digest) is None
        assert idempotency.purge(uow.session, datetime.now(UTC) + timedelta(days=1)) >= 1


class _LostRace(Exception):
    sqlstate = "40001"


def test_lost_races_are_retried_and_real_errors_are_not(world: World) -> None:
    calls = []

    def flaky(session: Any) -> str:
        calls.append(1)
        if len(calls) < 3:
            raise DBAPIError("UPDATE …", {}, _LostRace("could not serialize access"))
        return (
            service.set_grant(SqlQuotaStore(session), ADMIN, "changsha", "provincial", "vcpu", 5)
            .rows[0]
            .node.code
        )

    assert run_in_transaction(world.container.session_factory, flaky) == "changsha"
    assert len(calls) == 3
    calls.clear()

    def broken(session: Any) -> None:
        calls.append(1)
        raise DBAPIError("UPDATE …", {}, ValueError("constraint"))

    with pytest.raises(DBAPIError):
        run_in_transaction(world.container.session_factory, broken)
    assert len(calls) == 1


def test_concurrent_retries_with_one_idempotency_key_apply_once(world: World) -> None:
    """Eight copies of one POST at once: one applies, seven replay its answer."""
    grant(world, "changsha", 100)
    digest = idempotency.request_hash("POST", "/v1/requests", {"vcpu": 1})
    barrier = threading.Barrier(8)
    answers: list[Any] = []

    def post() -> None:
        barrier.wait()
        with UnitOfWork(world.container.session_factory) as uow:
            stored = idempotency.claim(uow.session, "alice", "retry-1", digest)
            if stored is not None:
                answers.append(stored.response)
                return
            req = service.file_request(
                SqlQuotaStore(uow.session),
                ADMIN,
                "cs-data-portal",
                [RequestItem(VCPU, 1)],
                reason="once",
                cloud_code="provincial",
            ).request
            idempotency.complete(uow.session, "alice", "retry-1", 201, {"id": req.id})
            uow.commit()
            answers.append({"id": req.id})

    threads = [threading.Thread(target=post) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(answers) == 8 and len({a["id"] for a in answers}) == 1
    assert world.count("quota_requests") == 1
