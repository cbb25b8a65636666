"""The migration state machine of one business system, and its guards.

    inventoried ──▶ assessed ──▶ planned ──▶ migrating ──▶ cut-over ──▶ accepted
        │              │  ▲         │  (wave)     │             │
        │              │  │         │             └──▶ rolled-back ◀─┘
        ├──────────────┴──┼─────────┴──▶ exempted (reason + approver)
        └─────────────────┴────────────▶ decommissioned

`TRANSITIONS` is the whole table; anything else is a 409
`migration.illegal_transition` naming both states. Guards on top of the table:
a wave and a target cloud to plan; no classified (涉密) system onto the cloud;
a reason and an approver to exempt; a reason to roll back or revoke an
exemption; and acceptance only on evidence: running resources of a linked
project in the latest inventory sync of the target cloud, or an admin's
override with a reason. The ledger store applies a `Transition` and audits it;
the API checks who may override.

Pure: no web framework, ORM, Celery or SDK (import-linter enforces it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from controlplane.vocabulary import ConflictError, InvalidInputError
from migration.model import ArchitectureRequirement, Classification, SystemState

S = SystemState

TRANSITIONS: dict[SystemState, frozenset[SystemState]] = {
    S.INVENTORIED: frozenset({S.ASSESSED, S.EXEMPTED, S.DECOMMISSIONED}),
    S.ASSESSED: frozenset({S.PLANNED, S.EXEMPTED, S.DECOMMISSIONED}),
    S.PLANNED: frozenset({S.MIGRATING, S.ASSESSED, S.EXEMPTED, S.DECOMMISSIONED}),
    S.MIGRATING: frozenset({S.CUT_OVER, S.ROLLED_BACK}),
    S.CUT_OVER: frozenset({S.ACCEPTED, S.ROLLED_BACK}),
    S.ROLLED_BACK: frozenset({S.PLANNED, S.ASSESSED, S.EXEMPTED, S.DECOMMISSIONED}),
    S.EXEMPTED: frozenset({S.ASSESSED}),  # the exemption is revoked
    S.ACCEPTED: frozenset(),
    S.DECOMMISSIONED: frozenset(),
}

# States a classified (涉密) system may never reach: it does not go onto this cloud.
_ON_CLOUD = frozenset({S.PLANNED, S.MIGRATING, S.CUT_OVER, S.ACCEPTED})
_NEEDS_REASON = frozenset({S.ROLLED_BACK, S.EXEMPTED})
# Inventory older than this proves nothing about today.
EVIDENCE_MAX_AGE = timedelta(days=2)


def legal_targets(state: SystemState) -> frozenset[SystemState]:
    return TRANSITIONS[state]


def illegal_pairs() -> list[tuple[SystemState, SystemState]]:
    """Every (from, to) the table refuses, self-loops included."""
    return [(a, b) for a in SystemState for b in SystemState if b not in TRANSITIONS[a]]


@dataclass(frozen=True)
class EvidenceItem:
    kind: str
    external_id: str
    name: str
    project: str
    architecture: str | None


@dataclass(frozen=True)
class Evidence:
    """What the latest inventory sync of the target cloud says of the linked projects."""

    cloud: str
    synced_at: datetime | None  # None: the cloud was never synced
    running: tuple[EvidenceItem, ...] = ()


@dataclass(frozen=True)
class SystemFacts:
    """What the guards need to know of the system being moved."""

    label: str  # "cs-data/长沙市政务服务网", for messages
    state: SystemState
    classification: Classification
    requirement: ArchitectureRequirement
    target_cloud: str | None
    wave: str | None
    projects: tuple[str, ...]


@dataclass(frozen=True)
class TransitionRequest:
    to: SystemState
    reason: str | None = None
    approver: str | None = None
    wave: str | None = None  # set the wave while planning
    override: bool = False  # accept without evidence; the caller checks the right to


@dataclass(frozen=True)
class Transition:
    """A checked transition, ready to store and audit."""

    from_state: SystemState
    to_state: SystemState
    reason: str | None
    approver: str | None
    wave: str | None
    override: bool
    evidence: dict[str, Any] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        return {
            "from": self.from_state.value,
            "to": self.to_state.value,
            "reason": self.reason,
            "approver": self.approver,
            "wave": self.wave,
            "override": self.override,
            "evidence": self.evidence,
        }


def _blank(text: str | None) -> bool:
    return text is None or not text.strip()


def check_legal(label: str, state: SystemState, to: SystemState) -> None:
    allowed = TRANSITIONS[state]
    if to not in allowed:
        names = ", ".join(sorted(s.value for s in allowed)) or "none: it is final"
        raise ConflictError(
            f"{label}: cannot go from {state.value} to {to.value} (allowed: {names})",
            code="migration.illegal_transition",
            extra={
                "from": state.value,
                "to": to.value,
                "allowed": sorted(a.value for a in allowed),
            },
        )


def acceptance_problem(
    system: SystemFacts, evidence: Evidence | None, now: datetime
) -> tuple[str | None, tuple[EvidenceItem, ...]]:
    """Why the inventory does not prove the system runs on its target cloud
    (None when it does), and the items that count as proof."""
    if system.target_cloud is None:
        return "it has no target cloud", ()
    if not system.projects:
        return "no Yunguan project is linked to it", ()
    if evidence is None or evidence.synced_at is None:
        return f"cloud {system.target_cloud!r} has no inventory sync yet", ()
    if now - evidence.synced_at > EVIDENCE_MAX_AGE:
        return (
            f"the latest inventory of cloud {evidence.cloud!r} is from "
            f"{evidence.synced_at:%Y-%m-%d %H:%M} UTC, older than {EVIDENCE_MAX_AGE.days} days",
            (),
        )
    items = evidence.running
    if system.requirement is ArchitectureRequirement.X86_64:
        items = tuple(i for i in items if i.architecture in (None, "x86_64"))
    if not items:
        projects = ", ".join(system.projects)
        return (
            f"the inventory of cloud {evidence.cloud!r} synced at "
            f"{evidence.synced_at:%Y-%m-%d %H:%M} UTC shows nothing running for {projects}",
            (),
        )
    return None, items


def _evidence_record(evidence: Evidence, items: tuple[EvidenceItem, ...]) -> dict[str, Any]:
    return {
        "cloud": evidence.cloud,
        "synced_at": evidence.synced_at.isoformat() if evidence.synced_at else None,
        "running": len(items),
        "items": [
            {"kind": i.kind, "id": i.external_id, "name": i.name, "project": i.project}
            for i in items[:20]
        ],
    }


def plan_transition(  # noqa: PLR0912 - one branch per guard reads best as a list
    system: SystemFacts,
    request: TransitionRequest,
    evidence: Evidence | None,
    now: datetime,
) -> Transition:
    """Checks `request` against the table and the guards; raises or returns the transition."""
    to = request.to
    check_legal(system.label, system.state, to)
    reason = None if _blank(request.reason) else (request.reason or "").strip()
    approver = None if _blank(request.approver) else (request.approver or "").strip()
    wave = request.wave or system.wave
    if system.classification is Classification.CLASSIFIED and to in _ON_CLOUD:
        raise ConflictError(
            f"{system.label} is classified (涉密): it does not move onto the cloud",
            code="migration.classified",
        )
    if to in _NEEDS_REASON and reason is None:
        raise InvalidInputError(
            f"{system.label}: going to {to.value} needs a reason", code="migration.reason_required"
        )
    if to is S.EXEMPTED and approver is None:
        raise InvalidInputError(
            f"{system.label}: an exemption needs the approver who signed it",
            code="migration.approver_required",
        )
    if system.state is S.EXEMPTED and reason is None:
        raise InvalidInputError(
            f"{system.label}: revoking an exemption needs a reason",
            code="migration.reason_required",
        )
    if to is S.PLANNED:
        if wave is None:
            raise InvalidInputError(
                f"{system.label}: planning puts a system in a wave; name one",
                code="migration.wave_required",
            )
        if system.target_cloud is None:
            raise InvalidInputError(
                f"{system.label}: set a target cloud before planning",
                code="migration.target_required",
            )
    record: dict[str, Any] = {}
    if to is S.ACCEPTED:
        problem, items = acceptance_problem(system, evidence, now)
        if request.override:
            if reason is None:
                raise InvalidInputError(
                    f"{system.label}: an acceptance override needs a reason",
                    code="migration.reason_required",
                )
            record = {"override": True, "unverified_because": problem}
            if evidence is not None and problem is None:
                record.update(_evidence_record(evidence, items))
        elif problem is not None:
            raise ConflictError(
                f"{system.label} cannot be accepted: {problem}",
                code="migration.acceptance_unverified",
                extra={"why": problem},
            )
        else:
            assert evidence is not None
            record = _evidence_record(evidence, items)
    return Transition(
        from_state=system.state,
        to_state=to,
        reason=reason,
        approver=approver,
        wave=wave if to is S.PLANNED else None,
        override=request.override and to is S.ACCEPTED,
        evidence=record,
    )
