"""Moving a business system through the migration state machine.

    with UnitOfWork(factory) as uow:
        transition(uow.session, system_id, TransitionRequest(to=SystemState.ACCEPTED), ctx)
        uow.commit()

The system row is locked (`FOR UPDATE`) so two transitions of one system
serialise; the request is checked by `migration.states.plan_transition`
against the table, the guards and — for `accepted` — the evidence read from
the latest inventory sync of the target cloud. The transition is stored in
`ledger_transitions` and audited, evidence or override reason included.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from controlplane.db.base import utcnow
from controlplane.db.ledger_tables import LedgerSystem, LedgerTransition, LedgerWave
from controlplane.db.tables import Cloud, OrgNode
from controlplane.identity import audit
from controlplane.identity.audit import AuditContext
from controlplane.ledgerstore.inventory import evidence
from controlplane.ledgerstore.objects import get_system
from controlplane.ledgerstore.records import Scopes
from controlplane.vocabulary import InvalidInputError, NotFoundError
from migration.model import ArchitectureRequirement, Classification, SystemState
from migration.states import SystemFacts, Transition, TransitionRequest, plan_transition


def find_system(session: Session, ref: str) -> int:
    """A system by id, or by `department/name` (what the CLI takes)."""
    if ref.isdigit():
        return int(ref)
    dept, sep, name = ref.partition("/")
    found = session.scalar(
        select(LedgerSystem.id)
        .join(OrgNode, OrgNode.id == LedgerSystem.department_id)
        .where(OrgNode.code == dept, LedgerSystem.name == name)
    )
    if not sep or found is None:
        raise NotFoundError(
            f"no system {ref!r} (give its id or department/name)", code="migration.system_not_found"
        )
    return found


def transition(
    session: Session,
    system_id: int,
    request: TransitionRequest,
    ctx: AuditContext,
    *,
    scopes: Scopes = None,
    now: datetime | None = None,
) -> Transition:
    now = now or utcnow()
    # Lock first, then read: what the guards see is what the update overwrites.
    system = session.scalar(
        select(LedgerSystem).where(LedgerSystem.id == system_id).with_for_update()
    )
    _, record = get_system(session, system_id, scopes)
    assert system is not None
    dept_path = session.scalar(select(OrgNode.path).where(OrgNode.id == system.department_id))
    wave_id = None
    if request.wave is not None:
        wave_id = _wave_for(session, request.wave, dept_path or "")
    facts = SystemFacts(
        label=f"{record['department']}/{record['name']}",
        state=SystemState(system.state),
        classification=Classification(system.classification),
        requirement=ArchitectureRequirement(system.architecture),
        target_cloud=record["target_cloud"],
        wave=record["wave"],
        projects=record["projects"],
    )
    proof = None
    if request.to is SystemState.ACCEPTED and system.target_cloud_id is not None:
        project_ids: Sequence[int] = session.scalars(
            select(OrgNode.id).where(OrgNode.code.in_(record["projects"]))
        ).all()
        cloud_code = session.scalar(select(Cloud.code).where(Cloud.id == system.target_cloud_id))
        proof = evidence(session, system.target_cloud_id, cloud_code or "", project_ids)
    t = plan_transition(facts, request, proof, now)
    system.state = t.to_state.value
    system.state_changed_at = now
    if wave_id is not None and t.to_state is SystemState.PLANNED:
        system.wave_id = wave_id
    if t.to_state is SystemState.EXEMPTED:
        system.exemption_reason, system.exemption_approver = t.reason, t.approver
    elif t.from_state is SystemState.EXEMPTED:
        system.exemption_reason = system.exemption_approver = None
    session.add(
        LedgerTransition(
            system_id=system.id,
            from_state=t.from_state.value,
            to_state=t.to_state.value,
            at=now,
            actor=ctx.actor,
            reason=t.reason,
            approver=t.approver,
            override=t.override,
            evidence=t.evidence,
        )
    )
    session.flush()
    audit.record(
        session,
        ctx,
        "migration.system.transition",
        "migration_system",
        facts.label[:128],
        scope_path=dept_path or "/",
        before={"state": t.from_state.value},
        after=t.record(),
    )
    return t


def _wave_for(session: Session, code: str, dept_path: str) -> int:
    row = session.execute(
        select(LedgerWave.id, OrgNode.path)
        .join(OrgNode, OrgNode.id == LedgerWave.scope_id)
        .where(LedgerWave.code == code)
    ).first()
    if row is None:
        raise InvalidInputError(f"unknown wave {code!r}", code="migration.wave_not_found")
    if not dept_path.startswith(row[1]):
        raise InvalidInputError(
            f"wave {code!r} does not cover this system's department", code="migration.wave_scope"
        )
    return row[0]


def history(session: Session, system_id: int) -> Sequence[LedgerTransition]:
    return session.scalars(
        select(LedgerTransition)
        .where(LedgerTransition.system_id == system_id)
        .order_by(LedgerTransition.id)
    ).all()
