"""The quota use cases against real databases (PostgreSQL and SQLite).

Every refusal is a clear domain error with a stable code and the numbers in
`extra`, and leaves the database exactly as it was.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from controlplane.bootstrap import Container
from controlplane.db import idempotency
from controlplane.db.retry import run_in_transaction
from controlplane.db.uow import UnitOfWork
from controlplane.quotastore import SqlQuotaStore
from controlplane.vocabulary import (
    Architecture,
    CloudRole,
    ConflictError,
    InvalidInputError,
    NotFoundError,
    ResourceClass,
    YunguanError,
)
from quotas import service
from quotas.model import CloudSelector, RequestItem, RequestState, ReservationState
from quotas.ports import QuotaStore
from tests.db.quota_world import ADMIN, World, make_world

VCPU = ResourceClass.VCPU
MEM = ResourceClass.MEMORY_MIB


@pytest.fixture
def world(container: Container) -> Iterator[World]:
    w = make_world(container)
    # provincial: vcpu overcommit 4.0 → 1000 cores allow 4000 vcpu to be granted
    w.run(lambda s: service.set_capacity(s, ADMIN, "provincial", "vcpu", 1000))
    w.run(lambda s: service.set_capacity(s, ADMIN, "provincial", "memory_mib", 100_000))
    yield w


def refused(
    w: World, work: Callable[[QuotaStore], Any], error: type[YunguanError], code: str
) -> YunguanError:
    """`work` fails with `code` and the quota tables (and outbox) are unchanged."""
    before = w.snapshot()
    with pytest.raises(error) as info:
        w.run(work)
    assert info.value.code == code, info.value
    assert w.snapshot() == before
    return info.value


def grant(w: World, node: str, amount: int, cls: str = "vcpu", cloud: str = "provincial") -> Any:
    return w.run(lambda s: service.set_grant(s, ADMIN, node, cloud, cls, amount))


def sound(w: World, cloud: str = "provincial") -> None:
    assert w.run(lambda s: service.check_invariants(s, cloud)) == []


# -- pools --------------------------------------------------------------------


def test_pool_limit_and_listing(world: World) -> None:
    result = world.run(
        lambda s: service.set_capacity(s, ADMIN, "provincial", "vcpu", 1000, reserved=100)
    )
    pool = result.rows[0]
    assert (pool.limit, pool.free, pool.capacity_source) == (3900, 3900, "declared")
    assert result.changes[0].action == "quota.capacity.set"
    pools = {(c.code, r.resource_class.value): r for c, r in world.run(service.pools)}
    assert pools[("provincial", "vcpu")].limit == 3900
    assert pools[("provincial", "gpu")].id is None  # supported but undeclared: zero
    assert ("nscc-changsha", "hpc_core_hours") in pools and ("nscc-changsha", "vcpu") not in pools


def test_capacity_below_what_is_granted_needs_force(world: World) -> None:
    grant(world, "changsha", 2000)
    err = refused(
        world,
        lambda s: service.set_capacity(s, ADMIN, "provincial", "vcpu", 400),
        ConflictError,
        "quota.capacity_below_allocated",
    )
    assert err.extra == {"limit": 1600, "allocated": 2000}
    forced = world.run(
        lambda s: service.set_capacity(s, ADMIN, "provincial", "vcpu", 400, force=True)
    )
    assert forced.forced and forced.rows[0].free == -400


def test_oversubscription_factor_is_explicit_policy(world: World) -> None:
    world.run(
        lambda s: service.set_capacity(
            s, ADMIN, "provincial", "memory_mib", 1000, oversubscription=1.5
        )
    )
    grant(world, "changsha", 1500, "memory_mib")
    refused(
        world,
        lambda s: service.set_grant(s, ADMIN, "zhuzhou", "provincial", "memory_mib", 1),
        ConflictError,
        "quota.exceeded",
    )
    refused(
        world,
        lambda s: service.set_capacity(
            s, ADMIN, "provincial", "memory_mib", 1, oversubscription=0.5
        ),
        InvalidInputError,
        "quota.invalid_amount",
    )


# -- grants -------------------------------------------------------------------


def test_every_level_is_bounded_by_its_parent(world: World) -> None:
    grant(world, "changsha", 400)
    grant(world, "hn-health", 3600)  # a provincial department: top-level, under the pool
    err = refused(
        world,
        lambda s: service.set_grant(s, ADMIN, "zhuzhou", "provincial", "vcpu", 1),
        ConflictError,
        "quota.exceeded",
    )
    assert err.extra["requested"] == {"vcpu": 1} and err.extra["free"] == {"vcpu": 0}
    assert err.extra["granted"] == {"vcpu": 0} and err.extra["scope"] == "hunan"
    grant(world, "cs-data", 300)
    err = refused(
        world,
        lambda s: service.set_grant(s, ADMIN, "cs-health", "provincial", "vcpu", 101),
        ConflictError,
        "quota.exceeded",
    )
    assert err.extra["free"] == {"vcpu": 100} and "free 100" in err.message
    grant(world, "cs-health", 100)
    grant(world, "cs-data-portal", 300)
    tree = {
        r.node.code: r for r in world.run(lambda s: service.grant_tree(s, "provincial", "vcpu"))[1]
    }
    assert tree["hunan"].allocated == 4000 and tree["hunan"].free == 0
    assert (tree["changsha"].allocated, tree["cs-data"].allocated) == (400, 300)
    sound(world)


def test_decrease_down_to_children_and_to_observed_usage(world: World) -> None:
    grant(world, "changsha", 400)
    grant(world, "cs-data", 300)
    grant(world, "cs-data-portal", 50)
    err = refused(
        world,
        lambda s: service.set_grant(s, ADMIN, "cs-data", "provincial", "vcpu", 49),
        ConflictError,
        "quota.below_allocated",
    )
    assert err.extra["allocated"] == 50
    world.run(lambda s: service.set_observed_usage(s, "cs-data-portal", "provincial", "vcpu", 40))
    err = refused(
        world,
        lambda s: service.set_grant(s, ADMIN, "cs-data-portal", "provincial", "vcpu", 30),
        ConflictError,
        "quota.below_usage",
    )
    assert err.extra["usage"] == 40
    # a department above the project sees the subtree's usage too
    grant(world, "cs-data", 50)
    forced = world.run(
        lambda s: service.set_grant(
            s, ADMIN, "cs-data-portal", "provincial", "vcpu", 30, force=True
        )
    )
    assert forced.forced and forced.rows[0].granted == 30
    assert forced.changes[0].after is not None
    assert forced.changes[0].after["forced_below_usage"] is True
    grant(world, "cs-data-portal", 40)  # back at usage: no force needed
    sound(world)


def test_generation_is_the_etag(world: World) -> None:
    first = grant(world, "changsha", 100)
    gen = first.rows[0].generation
    second = world.run(
        lambda s: service.set_grant(
            s, ADMIN, "changsha", "provincial", "vcpu", 200, expected_generation=gen
        )
    )
    assert second.rows[0].generation == gen + 1
    err = refused(
        world,
        lambda s: service.set_grant(
            s, ADMIN, "changsha", "provincial", "vcpu", 300, expected_generation=gen
        ),
        ConflictError,
        "quota.generation_mismatch",
    )
    assert err.extra == {"expected": gen, "generation": gen + 1}
    # a child's change moves the parent's ETag too: its numbers changed
    grant(world, "cs-data", 10)
    tree = {r.node.code: r for r in world.run(lambda s: service.grant_tree(s, "provincial"))[1]}
    assert tree["changsha"].generation == gen + 2


@pytest.mark.parametrize(
    ("args", "error", "code"),
    [
        (("cs-data", "zhuzhou", "vcpu", 1), InvalidInputError, "quota.out_of_scope"),
        (("hunan", "provincial", "vcpu", 1), InvalidInputError, "quota.pool_root"),
        (("cs-data", "wuhan", "vcpu", 1), NotFoundError, "cloud.not_found"),
        (("cs-nowhere", "provincial", "vcpu", 1), NotFoundError, "org.not_found"),
        (("cs-data", "provincial", "hpc_cpu", 1), InvalidInputError, "quota.unsupported_class"),
        (("cs-data", "provincial", "cores", 1), InvalidInputError, "quota.unknown_class"),
        (("cs-data", "provincial", "vcpu", -5), InvalidInputError, "quota.invalid_amount"),
        (("cs-data", "nscc-changsha", "vcpu", 1), InvalidInputError, "quota.unsupported_class"),
    ],
    ids=[
        "other prefecture's cloud",
        "the pool's owner",
        "unknown cloud",
        "unknown node",
        "unsupported class",
        "unknown class",
        "negative",
        "slurm has no vcpu",
    ],
)
def test_bad_grants_are_clear_and_write_nothing(
    world: World, args: tuple[str, str, str, int], error: type[YunguanError], code: str
) -> None:
    grant(world, "changsha", 100)
    refused(world, lambda s: service.set_grant(s, ADMIN, *args), error, code)


def test_raise_grant_cascades_up_to_the_scope_drawn_on(world: World) -> None:
    grant(world, "changsha", 100)
    grant(world, "cs-data", 100)
    raised = world.run(
        lambda s: service.raise_grant(
            s, ADMIN, "cs-data-portal", "provincial", {"vcpu": 150}, draw_from="hunan"
        )
    )
    assert raised.rows[0].granted == 150
    tree = {
        r.node.code: r for r in world.run(lambda s: service.grant_tree(s, "provincial", "vcpu"))[1]
    }
    assert (tree["cs-data"].granted, tree["changsha"].granted, tree["hunan"].allocated) == (
        150,
        150,
        150,
    )
    refused(
        world,
        lambda s: service.raise_grant(
            s, ADMIN, "cs-data-portal", "provincial", {"vcpu": 1}, draw_from="zhuzhou"
        ),
        InvalidInputError,
        "quota.invalid_scope",
    )
    sound(world)


# -- requests -----------------------------------------------------------------


def file(w: World, project: str = "cs-data-portal", amount: int = 10, **kw: Any) -> Any:
    items = kw.pop("items", [RequestItem(VCPU, amount)])
    kw.setdefault("cloud_code", "provincial")
    return w.run(lambda s: service.file_request(s, ADMIN, project, items, reason="need it", **kw))


def test_request_lifecycle(world: World) -> None:
    grant(world, "changsha", 100)
    filed = file(world)
    req = filed.request
    assert req.state is RequestState.PENDING and not filed.auto_approved
    assert world.run(lambda s: service.request_approving_scope(s, req.id)).code == "changsha"
    approved = world.run(lambda s: service.approve_request(s, ADMIN, req.id))
    assert approved.request.state is RequestState.APPROVED
    assert approved.grants[0].granted == 10
    assert approved.changes[0].before is not None
    assert approved.changes[0].before["state"] == "pending"
    # cs-data had no grant: the approval drew on changsha's envelope
    tree = {r.node.code: r for r in world.run(lambda s: service.grant_tree(s, "provincial"))[1]}
    assert tree["cs-data"].granted == 10 and tree["changsha"].free == 90
    err = refused(
        world,
        lambda s: service.approve_request(s, ADMIN, req.id),
        ConflictError,
        "request.state_conflict",
    )
    assert err.extra == {"id": req.id, "state": "approved", "wanted": "approved"}
    refused(
        world,
        lambda s: service.cancel_request(s, ADMIN, req.id),
        ConflictError,
        "request.state_conflict",
    )
    done = world.run(lambda s: service.mark_applied(s, ADMIN, req.id))
    assert done.request.state is RequestState.APPLIED
    other = file(world).request
    assert (
        world.run(lambda s: service.reject_request(s, ADMIN, other.id, note="no")).request.state
        is RequestState.REJECTED
    )
    third = file(world).request
    refused(
        world,
        lambda s: service.cancel_request(s, ADMIN, third.id, expected_generation=99),
        ConflictError,
        "request.generation_mismatch",
    )
    assert (
        world.run(lambda s: service.cancel_request(s, ADMIN, third.id)).request.state
        is RequestState.CANCELLED
    )
    listed = world.run(
        lambda s: service.list_requests(s, service.RequestFilter(within=("/hunan/changsha/",)))
    )
    assert [r.id for r in listed] == [third.id, other.id, req.id]
    assert (
        world.run(
            lambda s: service.list_requests(s, service.RequestFilter(within=("/hunan/zhuzhou/",)))
        )
        == []
    )
    refused(
        world, lambda s: service.approve_request(s, ADMIN, 9999), NotFoundError, "request.not_found"
    )
    sound(world)


def test_approval_rechecks_headroom_and_says_how_much(world: World) -> None:
    grant(world, "changsha", 100)
    first, second = file(world, amount=60).request, file(world, "cs-health-his", 60).request
    world.run(lambda s: service.approve_request(s, ADMIN, first.id))
    err = refused(
        world,
        lambda s: service.approve_request(s, ADMIN, second.id),
        ConflictError,
        "quota.exceeded",
    )
    assert err.extra["requested"] == {"vcpu": 60}
    assert err.extra["granted"] == {"vcpu": 0}
    assert err.extra["free"] == {"vcpu": 40}
    assert world.run(lambda s: service.get_request(s, second.id)).state is RequestState.PENDING
    # the province may approve it from the pool instead (raising changsha's envelope)
    world.run(lambda s: service.approve_request(s, ADMIN, second.id, draw_from="hunan"))
    sound(world)


def test_requests_for_any_cloud_of_a_role(world: World) -> None:
    world.run(lambda s: service.set_capacity(s, ADMIN, "changsha", "vcpu", 100))
    selector = CloudSelector(CloudRole.PREFECTURE, Architecture.X86_64)
    req = file(world, cloud_code=None, selector=selector).request
    assert req.cloud is None and req.selector == selector
    refused(
        world,
        lambda s: service.approve_request(s, ADMIN, req.id),
        InvalidInputError,
        "request.cloud_required",
    )
    refused(
        world,
        lambda s: service.approve_request(s, ADMIN, req.id, cloud_code="zhuzhou"),
        InvalidInputError,
        "quota.out_of_scope",
    )
    refused(
        world,
        lambda s: service.approve_request(s, ADMIN, req.id, cloud_code="provincial"),
        InvalidInputError,
        "request.cloud_mismatch",
    )
    done = world.run(lambda s: service.approve_request(s, ADMIN, req.id, cloud_code="changsha"))
    assert done.request.cloud is not None and done.request.cloud.code == "changsha"
    sound(world, "changsha")
    err = refused(
        world,
        lambda s: service.file_request(
            s,
            ADMIN,
            "cs-data-portal",
            [RequestItem(VCPU, 1)],
            reason="x",
            selector=CloudSelector(CloudRole.SUPERCOMPUTING),
        ),
        InvalidInputError,
        "quota.unsupported_class",
    )
    assert "nscc-changsha" in err.message


def test_auto_approval_within_the_departments_own_headroom(world: World) -> None:
    grant(world, "changsha", 100)
    grant(world, "cs-data", 20)
    world.run(lambda s: service.set_auto_approval(s, ADMIN, "changsha", {"vcpu": 8}))
    auto = file(world, amount=8)
    assert auto.auto_approved and auto.request.state is RequestState.APPROVED
    assert auto.request.decided_by == "auto:changsha"
    assert [c.action for c in auto.changes] == ["quota.request.file", "quota.request.approve"]
    assert file(world, amount=9).request.state is RequestState.PENDING  # over the policy
    assert file(world, amount=8).request.state is RequestState.APPROVED  # 16 of 20
    assert file(world, amount=8).request.state is RequestState.PENDING  # only 4 left: no cascade
    absolute = file(world, items=[RequestItem(VCPU, 17, absolute=True)])
    assert absolute.request.state is RequestState.PENDING
    assert file(world, "hn-health-hrp", 1).request.state is RequestState.PENDING  # no policy
    refused(
        world,
        lambda s: service.set_auto_approval(s, ADMIN, "cs-data", {"vcpu": 1}),
        InvalidInputError,
        "quota.invalid_scope",
    )
    sound(world)


def test_absolute_items_raise_and_lower(world: World) -> None:
    grant(world, "changsha", 100)
    up = file(world, items=[RequestItem(VCPU, 30, absolute=True), RequestItem(MEM, 512)])
    world.run(lambda s: service.approve_request(s, ADMIN, up.request.id, draw_from="hunan"))
    down = file(world, items=[RequestItem(VCPU, 5, absolute=True)])
    result = world.run(lambda s: service.approve_request(s, ADMIN, down.request.id))
    assert result.grants[0].granted == 5
    tree = {
        (r.node.code, r.resource_class): r
        for r in world.run(lambda s: service.grant_tree(s, "provincial"))[1]
    }
    assert tree[("cs-data", VCPU)].allocated == 5 and tree[("cs-data-portal", MEM)].granted == 512
    sound(world)


@pytest.mark.parametrize(
    ("kwargs", "error", "code"),
    [
        ({"project": "wuhan-portal"}, NotFoundError, "org.not_found"),
        ({"project": "cs-data"}, InvalidInputError, "quota.not_a_project"),
        ({"cloud_code": "wuhan"}, NotFoundError, "cloud.not_found"),
        ({"cloud_code": "zhuzhou"}, InvalidInputError, "quota.out_of_scope"),
        ({"items": [RequestItem(VCPU, -1)]}, InvalidInputError, "quota.invalid_amount"),
        (
            {"items": [RequestItem(ResourceClass.PODS, 1)]},
            InvalidInputError,
            "quota.unsupported_class",
        ),
        ({"reason": "  "}, InvalidInputError, "request.invalid"),
        ({"needed_by": date(2000, 1, 1)}, InvalidInputError, "request.invalid"),
        ({"cloud_code": None}, InvalidInputError, "request.invalid"),
    ],
    ids=[
        "unknown project",
        "not a project",
        "unknown cloud",
        "foreign cloud",
        "negative",
        "unsupported",
        "no reason",
        "past date",
        "no cloud",
    ],
)
def test_bad_requests_are_clear_and_write_nothing(
    world: World, kwargs: dict[str, Any], error: type[YunguanError], code: str
) -> None:
    args: dict[str, Any] = {
        "project": "cs-data-portal",
        "items": [RequestItem(VCPU, 1)],
        "reason": "need it",
        "cloud_code": "provincial",
    } | kwargs
    project, items = args.pop("project"), args.pop("items")
    refused(world, lambda s: service.file_request(s, ADMIN, project, items, **args), error, code)


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
