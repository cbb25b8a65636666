"""Progress of the migration, counted in SQL and rolled up by `migration.progress`.

Systems are counted per (department, classification, state) with GROUP BY,
filtered by the caller's scopes in the same statement; rooms and assets per
status; waves with their members' states and the day each finished.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from controlplane.db.ledger_tables import LedgerAsset, LedgerRoom, LedgerSystem, LedgerWave
from controlplane.db.scoping import on_path_clause, within_clause
from controlplane.db.tables import OrgNode
from controlplane.vocabulary import NotFoundError
from migration.model import FINISHED_STATES, Classification, SystemState, Wave
from migration.progress import Rates, StateCount, WaveMember, WaveProgress, rates, wave_progress


@dataclass(frozen=True)
class ProgressView:
    scope: str
    rates: Rates
    rooms: dict[str, int]
    assets: dict[str, int]
    waves: list[WaveProgress]
    today: date

    def as_dict(self) -> dict[str, Any]:
        def rate(r: Any) -> dict[str, Any]:
            return {**r.__dict__, "rate": r.rate}

        return {
            "scope": self.scope,
            "today": self.today.isoformat(),
            "total": rate(self.rates.total),
            "by_parent": [rate(r) for r in self.rates.by_parent],
            "by_department": [rate(r) for r in self.rates.by_department],
            "rooms": self.rooms,
            "assets": self.assets,
            "waves": [
                {
                    "code": w.wave.code,
                    "name": w.wave.name,
                    "scope": w.wave.scope,
                    "starts_on": w.wave.starts_on.isoformat(),
                    "ends_on": w.wave.ends_on.isoformat(),
                    "total": w.total,
                    "finished": w.finished,
                    "unfinished": w.unfinished,
                    "behind_plan": w.behind_plan,
                    "burndown": [
                        {"day": p.day.isoformat(), "ideal": p.ideal, "remaining": p.remaining}
                        for p in w.burndown
                    ],
                }
                for w in self.waves
            ],
            "behind_plan": [w.wave.code for w in self.waves if w.behind_plan],
        }


def _narrow(
    session: Session, scopes: tuple[str, ...] | None, under: str | None
) -> tuple[tuple[str, ...] | None, str]:
    """Scopes limited to the org node `under` (a prefecture, say), and the total's scope."""
    if under is None:
        if scopes is not None and len(scopes) == 1:
            code = session.scalar(select(OrgNode.code).where(OrgNode.path == scopes[0]))
            return scopes, code or "visible"
        if scopes is None:
            root = session.scalar(select(OrgNode.code).where(OrgNode.parent_id.is_(None)))
            return None, root or "province"
        return scopes, "visible"
    node = session.scalar(select(OrgNode).where(OrgNode.code == under))
    if node is None or (
        scopes is not None
        and not any(node.path.startswith(s) or s.startswith(node.path) for s in scopes)
    ):
        raise NotFoundError(f"no organisation node {under!r}", code="org.not_found")
    if scopes is None or any(node.path.startswith(s) for s in scopes):
        return (node.path,), node.code
    # the node is above the caller's scopes: keep theirs
    return tuple(s for s in scopes if s.startswith(node.path)), node.code


def progress(
    session: Session, scopes: tuple[str, ...] | None, today: date, under: str | None = None
) -> ProgressView:
    scopes, total_scope = _narrow(session, scopes, under)
    dept, parent = aliased(OrgNode), aliased(OrgNode)
    q = (
        select(
            dept.code,
            dept.name,
            parent.code,
            parent.name,
            LedgerSystem.classification,
            LedgerSystem.state,
            func.count(),
        )
        .join(dept, dept.id == LedgerSystem.department_id)
        .join(parent, parent.id == dept.parent_id)
        .group_by(
            dept.code,
            dept.name,
            parent.code,
            parent.name,
            LedgerSystem.classification,
            LedgerSystem.state,
        )
    )
    if scopes is not None:
        q = q.where(within_clause(dept.path, scopes))
    counts = [
        StateCount(d, dn, p, pn, Classification(c), SystemState(s), n)
        for d, dn, p, pn, c, s, n in session.execute(q)
    ]
    total_name = (
        session.scalar(select(OrgNode.name).where(OrgNode.code == total_scope)) or total_scope
    )
    province = session.scalar(select(OrgNode.code).where(OrgNode.parent_id.is_(None))) or ""
    view_rates = rates(counts, total_scope=total_scope, total_name=total_name, province=province)
    return ProgressView(
        scope=total_scope,
        rates=view_rates,
        rooms=_status_counts(session, LedgerRoom.status, LedgerRoom.department_id, scopes),
        assets=_asset_counts(session, scopes),
        waves=_waves(session, scopes, today),
        today=today,
    )


def _status_counts(
    session: Session, status: Any, department_id: Any, scopes: tuple[str, ...] | None
) -> dict[str, int]:
    q = select(status, func.count()).join(OrgNode, OrgNode.id == department_id).group_by(status)
    if scopes is not None:
        q = q.where(within_clause(OrgNode.path, scopes))
    found: dict[str, int] = dict(session.execute(q).all())
    return {"total": sum(found.values()), **dict(sorted(found.items()))}


def _asset_counts(session: Session, scopes: tuple[str, ...] | None) -> dict[str, int]:
    q = (
        select(LedgerAsset.status, func.count())
        .join(LedgerRoom, LedgerRoom.id == LedgerAsset.room_id)
        .join(OrgNode, OrgNode.id == LedgerRoom.department_id)
        .group_by(LedgerAsset.status)
    )
    if scopes is not None:
        q = q.where(within_clause(OrgNode.path, scopes))
    found = dict(session.execute(q).all())
    return {"total": sum(found.values()), **dict(sorted(found.items()))}


def _waves(session: Session, scopes: tuple[str, ...] | None, today: date) -> list[WaveProgress]:
    scope = aliased(OrgNode)
    q = (
        select(LedgerWave, scope.code)
        .join(scope, scope.id == LedgerWave.scope_id)
        .order_by(LedgerWave.starts_on, LedgerWave.code)
    )
    if scopes is not None:
        q = q.where(on_path_clause(scope.path, scopes))
    waves = session.execute(q).all()
    if not waves:
        return []
    dept = aliased(OrgNode)
    mq = (
        select(LedgerSystem.wave_id, LedgerSystem.state, LedgerSystem.state_changed_at)
        .join(dept, dept.id == LedgerSystem.department_id)
        .where(LedgerSystem.wave_id.in_([w.id for w, _ in waves]))
    )
    if scopes is not None:
        mq = mq.where(within_clause(dept.path, scopes))
    members: dict[int, list[WaveMember]] = {}
    for wave_id, state, changed in session.execute(mq):
        if wave_id is None:
            continue
        s = SystemState(state)
        finished = changed.date() if s in FINISHED_STATES else None
        members.setdefault(wave_id, []).append(WaveMember(s, finished))
    return [
        wave_progress(
            Wave(w.code, w.name, code, w.starts_on, w.ends_on), members.get(w.id, []), today
        )
        for w, code in waves
    ]
