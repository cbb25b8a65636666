"""The pure quota arithmetic: pools, the cascade, decreases, scopes, requests."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controlplane.vocabulary import (
    CloudKind,
    CloudRole,
    ConflictError,
    InvalidInputError,
    OrgLevel,
    ResourceClass,
)
from quotas.admission import Shortfall, plan_decrease, plan_increase, violations
from quotas.inputs import check_items, check_supported, parse_items
from quotas.model import (
    AutoApprovalPolicy,
    CloudRef,
    CloudSelector,
    GrantRow,
    NodeRef,
    RequestItem,
    RequestState,
    approving_scope,
    granting_scope,
    pool_limit,
)
from quotas.requests import can_move

VCPU = ResourceClass.VCPU
HUNAN = NodeRef(1, "hunan", OrgLevel.PROVINCE, "/hunan/")
CHANGSHA = NodeRef(2, "changsha", OrgLevel.PREFECTURE, "/hunan/changsha/")
CS_DATA = NodeRef(3, "cs-data", OrgLevel.DEPARTMENT, "/hunan/changsha/cs-data/")
PORTAL = NodeRef(4, "cs-portal", OrgLevel.PROJECT, "/hunan/changsha/cs-data/cs-portal/")
HN_HEALTH = NodeRef(5, "hn-health", OrgLevel.DEPARTMENT, "/hunan/hn-health/")
HRP = NodeRef(6, "hn-hrp", OrgLevel.PROJECT, "/hunan/hn-health/hn-hrp/")
CHAIN = [HUNAN, CHANGSHA, CS_DATA, PORTAL]


def chain_rows(
    pool_total: int, granted: tuple[int, int, int], allocated: tuple[int, int, int, int]
) -> list[GrantRow]:
    """Rows pool → changsha → cs-data → portal with the given numbers."""
    pool = GrantRow(1, VCPU, HUNAN, is_pool=True, total=pool_total, allocated=allocated[0])
    rest = [
        GrantRow(i + 2, VCPU, node, granted=g, allocated=a)
        for i, (node, g, a) in enumerate(zip(CHAIN[1:], granted, allocated[1:], strict=True))
    ]
    return [pool, *rest]


# -- pools ------------------------------------------------------------------


def test_pool_limit_is_total_times_overcommit_minus_reserved_times_oversubscription() -> None:
    assert pool_limit(100, 4.0, 40, 1.0) == 360
    assert pool_limit(3, 1.1, 0, 1.0) == 3  # ⌊3.3⌋, exact decimal arithmetic
    assert pool_limit(10, 1.1, 0, 1.0) == 11  # not 11.000000000000002 → 11 either way
    assert pool_limit(100, 1.0, 0, 1.5) == 150
    assert pool_limit(10, 1.0, 50, 2.0) == 0  # reserved beyond capacity: nothing allocatable


def test_pool_row_limit_uses_capacity_not_granted() -> None:
    row = GrantRow(1, VCPU, HUNAN, is_pool=True, total=10, overcommit=2.0, granted=999)
    assert row.limit == 20 and row.free == 20


# -- the cascade ------------------------------------------------------------


def test_increase_within_the_parent_touches_two_rows() -> None:
    rows = chain_rows(1000, (500, 100, 10), (500, 100, 10, 0))
    rows[2] = GrantRow(3, VCPU, CS_DATA, granted=100, allocated=10)
    new = plan_increase(rows[2:], 5)
    assert [(r.node.code, r.granted, r.allocated) for r in new] == [
        ("cs-data", 100, 15),
        ("cs-portal", 15, 0),
    ]
    assert all(r.generation == 1 for r in new)


def test_increase_cascades_up_to_the_source_and_never_raises_it() -> None:
    # changsha has 20 free, cs-data 0 free: +30 takes 20 from changsha and 10 from the pool
    rows = chain_rows(1000, (100, 80, 80), (100, 80, 80, 0))
    new = {r.node.code: r for r in plan_increase(rows, 30)}
    assert new["cs-portal"].granted == 110
    assert (new["cs-data"].granted, new["cs-data"].allocated) == (110, 110)
    assert (new["changsha"].granted, new["changsha"].allocated) == (110, 110)
    assert new["hunan"].allocated == 110 and new["hunan"].limit == 1000


def test_shortfall_reports_requested_granted_and_free() -> None:
    rows = chain_rows(1000, (100, 80, 80), (100, 80, 80, 0))
    with pytest.raises(Shortfall) as info:
        plan_increase(rows[1:], 21)  # draw on changsha: 20 free there, none below
    assert (info.value.requested, info.value.granted, info.value.free) == (21, 80, 20)
    assert info.value.scope == "changsha"


def test_a_missing_source_row_has_no_headroom() -> None:
    missing = [GrantRow(None, VCPU, CHANGSHA), GrantRow(None, VCPU, CS_DATA)]
    with pytest.raises(Shortfall):
        plan_increase(missing, 1)


@st.composite
def chains(draw: st.DrawFn) -> tuple[list[GrantRow], int]:
    """A consistent chain: every row's children fit, with random slack at each level."""
    portal = draw(st.integers(0, 50))
    slack = [draw(st.integers(0, 50)) for _ in range(3)]  # free at cs-data, changsha, pool
    cs_data = portal + slack[0]
    changsha = cs_data + slack[1]
    total = changsha + slack[2]
    rows = chain_rows(total, (changsha, cs_data, portal), (changsha, cs_data, portal, 0))
    return rows, draw(st.integers(1, 200))


@given(chains(), st.integers(0, 2))
def test_increase_fits_exactly_when_the_path_has_room(
    case: tuple[list[GrantRow], int], source: int
) -> None:
    rows, amount = case
    segment = rows[source:]
    room = sum(r.free for r in segment[:-1])
    try:
        new = plan_increase(segment, amount)
    except Shortfall as exc:
        assert amount > room and exc.free == room
        return
    assert amount <= room
    after = {r.node.id: r for r in rows} | {r.node.id: r for r in new}
    ordered = [after[r.node.id] for r in rows]
    assert ordered[-1].granted == rows[-1].granted + amount
    assert after[segment[0].node.id].limit == segment[0].limit  # the source is never raised
    assert violations(ordered, {2: 1, 3: 2, 4: 3}) == []


# -- decreases --------------------------------------------------------------


def test_decrease_is_bounded_by_children_and_reservations() -> None:
    parent = GrantRow(3, VCPU, CS_DATA, granted=100, allocated=50)
    node = GrantRow(4, VCPU, PORTAL, granted=50, consumed=20)
    p, n, forced = plan_decrease(parent, node, 30, usage=0, force=False)
    assert (p.allocated, n.granted, forced) == (20, 20, False)
    with pytest.raises(ConflictError) as info:
        plan_decrease(parent, node, 31, usage=0, force=True)
    assert info.value.code == "quota.below_allocated"
    assert info.value.extra["consumed"] == 20


def test_decrease_below_observed_usage_needs_force_and_says_so() -> None:
    parent = GrantRow(3, VCPU, CS_DATA, granted=100, allocated=50)
    node = GrantRow(4, VCPU, PORTAL, granted=50)
    with pytest.raises(ConflictError) as info:
        plan_decrease(parent, node, 20, usage=40, force=False)
    assert info.value.code == "quota.below_usage" and info.value.extra["usage"] == 40
    _, n, forced = plan_decrease(parent, node, 20, usage=40, force=True)
    assert n.granted == 30 and forced


# -- invariants report --------------------------------------------------------


def test_violations_name_every_broken_invariant_and_drifted_sum() -> None:
    rows = chain_rows(100, (60, 50, 70), (60, 60, 70, 0))  # cs-data holds 50, portal 70
    problems = violations(rows, {2: 1, 3: 2, 4: 3}, {(VCPU, 4): 5})
    assert any("cs-data" in p and "allocated 70" in p for p in problems)
    assert any("changsha" in p and "allocated 60 ≠ Σ children 50" in p for p in problems)
    assert any("consumed 0 ≠ ledger 5" in p for p in problems)


# -- scopes -----------------------------------------------------------------


def test_approving_scope_is_the_departments_parent() -> None:
    assert approving_scope(CHAIN) == CHANGSHA
    assert approving_scope([HUNAN, HN_HEALTH, HRP]) == HUNAN
    with pytest.raises(InvalidInputError):
        approving_scope([HUNAN, CHANGSHA, CS_DATA])
    assert granting_scope([HUNAN, CHANGSHA]) == HUNAN  # prefecture envelopes: the province
    assert granting_scope(CHAIN) == CS_DATA


def test_unsupported_class_is_a_clear_error() -> None:
    hpc = CloudRef(9, "nscc", CloudKind.SLURM, CloudRole.SUPERCOMPUTING, HUNAN, ("x86_64",), {})
    with pytest.raises(InvalidInputError) as info:
        check_supported(hpc, [VCPU, ResourceClass.HPC_CPU])
    assert info.value.code == "quota.unsupported_class"
    assert info.value.extra["unsupported"] == ["vcpu"]
    assert "hpc_cpu" in info.value.extra["supported"]
    selector = CloudSelector(CloudRole.SUPERCOMPUTING)
    assert selector.matches(hpc)


# -- requests ---------------------------------------------------------------


def test_request_state_machine() -> None:
    s = RequestState
    allowed = {(a, b) for a in s for b in s if can_move(a, b)}
    assert allowed == {
        (s.PENDING, s.APPROVED),
        (s.PENDING, s.REJECTED),
        (s.PENDING, s.CANCELLED),
        (s.APPROVED, s.APPLIED),
        (s.APPROVED, s.FAILED),
    }


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ([{"resource_class": "vcpu", "delta": -4}], "quota.invalid_amount"),
        ([{"resource_class": "vcpu", "delta": 0}], "quota.invalid_amount"),
        ([{"resource_class": "cpus", "delta": 4}], "quota.unknown_class"),
        ([{"resource_class": "vcpu", "delta": 4, "absolute": 8}], "request.invalid"),
        (
            [{"resource_class": "vcpu", "delta": 1}, {"resource_class": "vcpu", "delta": 2}],
            "request.invalid",
        ),
        ([], "request.invalid"),
    ],
    ids=["negative", "zero delta", "unknown class", "both kinds", "twice", "empty"],
)
def test_bad_request_items(raw: list[dict[str, object]], code: str) -> None:
    with pytest.raises(InvalidInputError) as info:
        check_items(parse_items(raw))  # type: ignore[arg-type]
    assert info.value.code == code


def test_items_parse_deltas_and_absolutes() -> None:
    items = check_items(
        parse_items(
            [{"resource_class": "vcpu", "delta": 8}, {"resource_class": "disk_gib", "absolute": 0}]
        )
    )
    assert items == (
        RequestItem(ResourceClass.DISK_GIB, 0, absolute=True),
        RequestItem(VCPU, 8),
    )


def test_auto_approval_policy_covers_small_deltas_only() -> None:
    policy = AutoApprovalPolicy(CHANGSHA, {VCPU: 8})
    assert policy.covers([RequestItem(VCPU, 8)])
    assert not policy.covers([RequestItem(VCPU, 9)])
    assert not policy.covers([RequestItem(VCPU, 4, absolute=True)])
    assert not policy.covers([RequestItem(VCPU, 4), RequestItem(ResourceClass.GPU, 1)])
