"""The quota use cases against real databases (PostgreSQL and SQLite).

Every refusal is a clear domain error with a stable code and the numbers in
`extra`, and leaves the database exactly as it was.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

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
from quotas.model import CloudSelector, RequestItem, RequestState
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
