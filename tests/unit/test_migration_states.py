"""The migration state machine, its guards and the acceptance evidence rule (pure)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from controlplane.vocabulary import ConflictError, InvalidInputError
from migration.model import ArchitectureRequirement, Classification, SystemState
from migration.states import (
    TRANSITIONS,
    Evidence,
    EvidenceItem,
    SystemFacts,
    TransitionRequest,
    acceptance_problem,
    illegal_pairs,
    plan_transition,
)

S = SystemState
NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)


def facts(state: SystemState, **kw: object) -> SystemFacts:
    base: dict[str, object] = {
        "label": "cs-data/长沙市政务服务网",
        "state": state,
        "classification": Classification.NON_CLASSIFIED,
        "requirement": ArchitectureRequirement.ANY,
        "target_cloud": "changsha",
        "wave": "cs-2026-1",
        "projects": ("cs-data-portal",),
    }
    base.update(kw)
    return SystemFacts(**base)  # type: ignore[arg-type]


def running(*archs: str | None) -> Evidence:
    items = tuple(
        EvidenceItem("server", f"id-{i}", f"vm-{i}", "cs-data-portal", a)
        for i, a in enumerate(archs)
    )
    return Evidence("changsha", NOW - timedelta(hours=1), items)


def test_the_table_names_every_state_and_the_main_line() -> None:
    assert set(TRANSITIONS) == set(SystemState)
    line = [S.INVENTORIED, S.ASSESSED, S.PLANNED, S.MIGRATING, S.CUT_OVER, S.ACCEPTED]
    for a, b in itertools.pairwise(line):
        assert b in TRANSITIONS[a]
    assert TRANSITIONS[S.ACCEPTED] == frozenset() and TRANSITIONS[S.DECOMMISSIONED] == frozenset()


@pytest.mark.parametrize(("src", "dst"), illegal_pairs(), ids=lambda s: s.value)
def test_every_illegal_transition_is_a_409_naming_both_states(
    src: SystemState, dst: SystemState
) -> None:
    with pytest.raises(ConflictError) as err:
        plan_transition(
            facts(src),
            TransitionRequest(dst, reason="r", approver="a", override=True),
            running("x86_64"),
            NOW,
        )
    assert err.value.code == "migration.illegal_transition"
    assert f"from {src.value} to {dst.value}" in err.value.message
    assert err.value.extra["from"] == src.value and err.value.extra["to"] == dst.value


@pytest.mark.parametrize(
    ("src", "dst"),
    [(a, b) for a, targets in TRANSITIONS.items() for b in sorted(targets)],
    ids=lambda s: s.value,
)
def test_every_legal_transition_passes_when_its_guards_hold(
    src: SystemState, dst: SystemState
) -> None:
    t = plan_transition(
        facts(src), TransitionRequest(dst, reason="r", approver="a"), running("x86_64"), NOW
    )
    assert (t.from_state, t.to_state) == (src, dst)


def test_guards() -> None:
    with pytest.raises(InvalidInputError) as err:
        plan_transition(facts(S.ASSESSED, wave=None), TransitionRequest(S.PLANNED), None, NOW)
    assert err.value.code == "migration.wave_required"
    t = plan_transition(
        facts(S.ASSESSED, wave=None), TransitionRequest(S.PLANNED, wave="w"), None, NOW
    )
    assert t.wave == "w"
    with pytest.raises(InvalidInputError) as err:
        plan_transition(
            facts(S.ASSESSED, target_cloud=None), TransitionRequest(S.PLANNED), None, NOW
        )
    assert err.value.code == "migration.target_required"
    with pytest.raises(ConflictError) as conflict:
        plan_transition(
            facts(S.ASSESSED, classification=Classification.CLASSIFIED),
            TransitionRequest(S.PLANNED),
            None,
            NOW,
        )
    assert conflict.value.code == "migration.classified"
    with pytest.raises(InvalidInputError) as err:
        plan_transition(facts(S.ASSESSED), TransitionRequest(S.EXEMPTED, reason="专网"), None, NOW)
    assert err.value.code == "migration.approver_required"
    with pytest.raises(InvalidInputError) as err:
        plan_transition(
            facts(S.ASSESSED), TransitionRequest(S.EXEMPTED, approver="王某"), None, NOW
        )
    assert err.value.code == "migration.reason_required"
    with pytest.raises(InvalidInputError) as err:
        plan_transition(facts(S.MIGRATING), TransitionRequest(S.ROLLED_BACK, reason=" "), None, NOW)
    assert err.value.code == "migration.reason_required"
    with pytest.raises(InvalidInputError):
        plan_transition(facts(S.EXEMPTED), TransitionRequest(S.ASSESSED), None, NOW)


STALE = running("x86_64").running


def test_acceptance_needs_running_evidence_on_the_target_cloud() -> None:
    cases = [
        (facts(S.CUT_OVER, projects=()), running("x86_64"), "no Yunguan project"),
        (facts(S.CUT_OVER, target_cloud=None), running("x86_64"), "no target cloud"),
        (facts(S.CUT_OVER), None, "no inventory sync yet"),
        (facts(S.CUT_OVER), Evidence("changsha", None), "no inventory sync yet"),
        (facts(S.CUT_OVER), Evidence("changsha", NOW - timedelta(days=3), STALE), "older than"),
        (facts(S.CUT_OVER), Evidence("changsha", NOW), "shows nothing running for cs-data-portal"),
        (
            facts(S.CUT_OVER, requirement=ArchitectureRequirement.X86_64),
            running("aarch64"),
            "shows nothing running",
        ),
    ]  # fmt: skip
    for system, evidence, why in cases:
        problem, _ = acceptance_problem(system, evidence, NOW)
        assert problem is not None and why in problem, (problem, why)
        with pytest.raises(ConflictError) as err:
            plan_transition(system, TransitionRequest(S.ACCEPTED), evidence, NOW)
        assert err.value.code == "migration.acceptance_unverified"
    t = plan_transition(
        facts(S.CUT_OVER), TransitionRequest(S.ACCEPTED), running(None, "x86_64"), NOW
    )
    assert t.evidence["running"] == 2 and t.evidence["cloud"] == "changsha"
    assert not t.override


def test_an_override_needs_a_reason_and_is_recorded_as_such() -> None:
    with pytest.raises(InvalidInputError):
        plan_transition(facts(S.CUT_OVER), TransitionRequest(S.ACCEPTED, override=True), None, NOW)
    t = plan_transition(
        facts(S.CUT_OVER),
        TransitionRequest(S.ACCEPTED, override=True, reason="同步故障"),
        None,
        NOW,
    )
    assert t.override and t.reason == "同步故障"
    assert t.evidence["unverified_because"].endswith("no inventory sync yet")
