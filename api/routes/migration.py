"""`/v1/migration/...`: the migration ledger (上云台账) — business systems and their
state machine here; rooms, assets and waves in `migration_places`; progress,
import and export in `migration_io`. Every mutation is audited by the store.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query, status

from api.deps import UoW
from api.routes import migration_io, migration_places
from api.routes.migration_access import (
    Reader,
    Writer,
    may_override,
    node_for_read,
    node_for_write,
    read_scopes,
)
from api.routes.migration_router import router
from api.routes.migration_schemas import (
    SystemDetail,
    SystemIn,
    SystemOut,
    SystemPage,
    SystemPatch,
    TransitionIn,
    TransitionOut,
)
from controlplane.db.ledger_tables import LedgerSystem
from controlplane.ledgerstore.listing import list_systems
from controlplane.ledgerstore.objects import delete_object, get_system, jsonable, write_object
from controlplane.ledgerstore.systems import find_system, history, transition
from controlplane.vocabulary import ForbiddenError
from migration.catalog import Record
from migration.columns import SheetKind
from migration.model import SystemState
from migration.report import Action
from migration.states import TransitionRequest


def system_out(system: LedgerSystem, record: Record) -> SystemOut:
    return SystemOut(id=system.id, state_changed_at=system.state_changed_at, **jsonable(record))


@router.get("/systems", response_model=SystemPage)
def list_ledger_systems(
    uow: UoW,
    access: Reader,
    prefecture: Annotated[str | None, Query(description="a prefecture or department code")] = None,
    state: Annotated[SystemState | None, Query()] = None,
    wave: Annotated[str | None, Query(max_length=63)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> SystemPage:
    under = node_for_read(uow.session, prefecture, access).path if prefecture else None
    rows, total = list_systems(
        uow.session,
        access.scopes,
        under=under,
        state=state.value if state else None,
        wave=wave,
        limit=limit,
        offset=offset,
    )
    return SystemPage(items=[system_out(s, r) for s, r in rows], total=total)


@router.post("/systems", response_model=SystemOut, status_code=status.HTTP_201_CREATED)
def create_system(body: SystemIn, uow: UoW, access: Writer) -> SystemOut:
    node_for_write(uow.session, body.department, access, ("department",))
    values = body.model_dump(exclude_unset=True, mode="json")
    record = write_object(
        uow.session,
        SheetKind.SYSTEMS,
        values,
        ctx=access.audit,
        expect=Action.CREATE,
        read_scopes=read_scopes(access),
        write_scopes=access.scopes,
    )
    system_id = find_system(uow.session, f"{record['department']}/{record['name']}")
    out = system_out(*get_system(uow.session, system_id, None))
    uow.commit()
    return out


@router.get("/systems/{system_id}", response_model=SystemDetail)
def get_ledger_system(system_id: int, uow: UoW, access: Reader) -> SystemDetail:
    system, record = get_system(uow.session, system_id, access.scopes)
    steps = [
        TransitionOut(
            from_state=SystemState(t.from_state),
            to_state=SystemState(t.to_state),
            reason=t.reason,
            approver=t.approver,
            wave=None,
            override=t.override,
            evidence=t.evidence,
            at=t.at,
            actor=t.actor,
        )
        for t in history(uow.session, system_id)
    ]
    return SystemDetail(**system_out(system, record).model_dump(), history=steps)


def _system_for_write(uow: Any, system_id: int, access: Any) -> tuple[LedgerSystem, Record, str]:
    system, record = get_system(uow.session, system_id, read_scopes(access))
    path = system.department.path
    access.check_within(path, f"system {system_id}")
    return system, record, path


@router.patch("/systems/{system_id}", response_model=SystemOut)
def update_system(system_id: int, body: SystemPatch, uow: UoW, access: Writer) -> SystemOut:
    _, record, _ = _system_for_write(uow, system_id, access)
    values = {
        "department": record["department"],
        "name": record["name"],
        **body.model_dump(exclude_unset=True, mode="json"),
    }
    write_object(
        uow.session,
        SheetKind.SYSTEMS,
        values,
        ctx=access.audit,
        expect=Action.UPDATE,
        read_scopes=read_scopes(access),
        write_scopes=access.scopes,
    )
    uow.session.expire_all()
    out = system_out(*get_system(uow.session, system_id, None))
    uow.commit()
    return out


@router.delete("/systems/{system_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_system(system_id: int, uow: UoW, access: Writer) -> None:
    system, record, path = _system_for_write(uow, system_id, access)
    delete_object(uow.session, SheetKind.SYSTEMS, system, record, path, access.audit)
    uow.commit()


@router.post(
    "/systems/{system_id}/transitions",
    response_model=TransitionOut,
    status_code=status.HTTP_201_CREATED,
)
def transition_system(
    system_id: int, body: TransitionIn, uow: UoW, access: Writer
) -> TransitionOut:
    """Moves the system to `to`: 409 `migration.illegal_transition` when the table
    forbids it, 409 `migration.acceptance_unverified` when the inventory shows
    nothing running (prefecture and province admins may `override` with a reason)."""
    _, _, path = _system_for_write(uow, system_id, access)
    if body.override and not may_override(access, path):
        raise ForbiddenError(
            f"{access.principal.login} may not accept without evidence: "
            "only prefecture and province admins may override",
            code="migration.override_forbidden",
        )
    request = TransitionRequest(
        to=body.to,
        reason=body.reason,
        approver=body.approver,
        wave=body.wave,
        override=body.override,
    )
    t = transition(uow.session, system_id, request, access.audit)
    out = TransitionOut(
        from_state=t.from_state,
        to_state=t.to_state,
        reason=t.reason,
        approver=t.approver,
        wave=t.wave,
        override=t.override,
        evidence=t.evidence,
        actor=access.principal.login,
    )
    uow.commit()
    return out


# The rooms/assets/waves and progress/import/export routes live in their own modules.
__all__ = ["migration_io", "migration_places", "router"]
