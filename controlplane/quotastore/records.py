"""Requests, reservations and auto-approval policies: rows in, domain objects out."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import datetime
from typing import Any, cast

from psycopg.types.json import Json
from sqlalchemy import Table, bindparam, delete, or_, select, update
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session

from controlplane.db import pipeline
from controlplane.db.ids import IdBlocks
from controlplane.db.quota_tables import QuotaAutoApproval, QuotaRequestRow, QuotaReservationRow
from controlplane.db.tables import Cloud, OrgNode
from controlplane.quotastore.grants import pg_compiled
from controlplane.vocabulary import Architecture, CloudRole, NotFoundError, OrgLevel, ResourceClass
from quotas.model import (
    AutoApprovalPolicy,
    CloudRef,
    CloudSelector,
    NodeRef,
    QuotaRequest,
    RequestItem,
    RequestState,
    Reservation,
    ReservationState,
)
from quotas.ports import NewRequest, RequestFilter

Q = QuotaRequestRow.__table__.c
R = QuotaReservationRow.__table__.c
QT = cast(Table, QuotaRequestRow.__table__)
RT = cast(Table, QuotaReservationRow.__table__)


# Built once: filing and approving run these in every admission.
_ADD_REQUEST = QT.insert().returning(Q.id)
_SAVE_REQUEST = (
    update(QT)
    .where(Q.id == bindparam("b_id"))
    .values(
        state=bindparam("b_state"),
        cloud_id=bindparam("b_cloud_id"),
        decided_by=bindparam("b_decided_by"),
        decided_at=bindparam("b_decided_at"),
        note=bindparam("b_note"),
        generation=bindparam("b_generation"),
        updated_at=bindparam("b_updated_at"),
    )
)
_AUTO_APPROVAL = select(QuotaAutoApproval.limits).where(
    QuotaAutoApproval.scope_id == bindparam("b_scope")
)


@functools.cache
def _pg_insert_request(dialect: Dialect, columns: tuple[str, ...]) -> str:
    """The request row's INSERT with its id given (add_request's deferred path)."""
    return str(QT.insert().compile(dialect=dialect, column_keys=list(columns)))


_REQUEST_IDS = IdBlocks("quota_requests")


def _node(row: Any) -> NodeRef:
    return NodeRef(row.node_id, row.node_code, OrgLevel(row.node_level), row.node_path)


_NODE_COLS = (
    OrgNode.id.label("node_id"),
    OrgNode.code.label("node_code"),
    OrgNode.level.label("node_level"),
    OrgNode.path.label("node_path"),
)


def _items(raw: list[dict[str, Any]]) -> tuple[RequestItem, ...]:
    out = []
    for entry in raw:
        absolute = "absolute" in entry
        amount = entry["absolute"] if absolute else entry["delta"]
        out.append(RequestItem(ResourceClass(entry["resource_class"]), int(amount), absolute))
    return tuple(out)


class Records:
    _s: Session
    _policies: dict[int, dict[str, int] | None]  # read along by locate()

    def cloud_by_id(self, cloud_id: int) -> CloudRef:
        raise NotImplementedError  # provided by SqlQuotaStore

    # -- requests ---------------------------------------------------------
    def add_request(self, new: NewRequest, now: datetime) -> QuotaRequest:
        values: dict[str, Any] = {
            "project_id": new.project.id,
            "cloud_id": new.cloud.id if new.cloud else None,
            "cloud_role": new.selector.role.value if new.selector else None,
            "cloud_architecture": (
                new.selector.architecture.value
                if new.selector and new.selector.architecture
                else None
            ),
            "items": [i.as_dict() for i in new.items],
            "reason": new.reason,
            "needed_by": new.needed_by,
            "state": RequestState.PENDING.value,
            "requested_by": new.requested_by,
            "generation": 1,
            "created_at": now,
            "updated_at": now,
        }
        taken = _REQUEST_IDS.take(self._s)
        if taken is not None:
            # PostgreSQL: the id is known, so the INSERT is deferred and goes
            # with the transaction's next statement (controlplane.db.ids).
            rid = taken
            pg = {**values, "id": rid, "items": Json(values["items"])}
            sql = _pg_insert_request(self._s.get_bind().dialect, tuple(pg))
            pipeline.defer(self._s, pipeline.Write(None, {}, sql, [pg]))
        else:  # SQLite, or an engine without deferred writes
            rid = self._s.connection().execute(_ADD_REQUEST, values).scalar_one()
        return QuotaRequest(
            id=rid,
            project=new.project,
            cloud=new.cloud,
            selector=new.selector,
            items=new.items,
            reason=new.reason,
            needed_by=new.needed_by,
            state=RequestState.PENDING,
            requested_by=new.requested_by,
            created_at=now,
            updated_at=now,
        )

    def _request_query(self) -> Any:
        return select(QT, *_NODE_COLS).join(OrgNode, OrgNode.id == Q.project_id)

    def _to_request(self, q: Any, clouds: dict[int, CloudRef]) -> QuotaRequest:
        cloud = None
        if q.cloud_id is not None:
            if q.cloud_id not in clouds:
                clouds[q.cloud_id] = self.cloud_by_id(q.cloud_id)
            cloud = clouds[q.cloud_id]
        selector = (
            CloudSelector(
                CloudRole(q.cloud_role),
                Architecture(q.cloud_architecture) if q.cloud_architecture else None,
            )
            if q.cloud_role
            else None
        )
        return QuotaRequest(
            id=q.id,
            project=_node(q),
            cloud=cloud,
            selector=selector,
            items=_items(q.items),
            reason=q.reason,
            needed_by=q.needed_by,
            state=RequestState(q.state),
            requested_by=q.requested_by,
            created_at=q.created_at,
            updated_at=q.updated_at,
            decided_by=q.decided_by,
            decided_at=q.decided_at,
            note=q.note,
            generation=q.generation,
        )

    def request(self, request_id: int, *, lock: bool = False) -> QuotaRequest:
        query = self._request_query().where(Q.id == request_id)
        if lock:
            query = query.with_for_update(of=QT)
        row = self._s.execute(query).first()
        if row is None:
            raise NotFoundError(f"no quota request {request_id}", code="request.not_found")
        return self._to_request(row, {})

    def save_request(self, request: QuotaRequest) -> None:
        params = {
            "b_id": request.id,
            "b_state": request.state.value,
            "b_cloud_id": request.cloud.id if request.cloud else None,
            "b_decided_by": request.decided_by,
            "b_decided_at": request.decided_at,
            "b_note": request.note,
            "b_generation": request.generation,
            "b_updated_at": request.updated_at,
        }
        # Deferred on PostgreSQL (controlplane.db.pipeline): an approval saves
        # the request while it holds the grant locks.
        sql = pg_compiled(_SAVE_REQUEST, self._s.get_bind().dialect)[0]
        pipeline.defer(self._s, pipeline.Write(_SAVE_REQUEST, params, sql, [params]))

    def requests(self, flt: RequestFilter) -> list[QuotaRequest]:
        query = self._request_query().order_by(Q.id.desc()).limit(flt.limit).offset(flt.offset)
        if flt.state is not None:
            query = query.where(Q.state == flt.state.value)
        if flt.project is not None:
            query = query.where(OrgNode.code == flt.project)
        if flt.cloud is not None:
            query = query.where(
                Q.cloud_id == select(Cloud.id).where(Cloud.code == flt.cloud).scalar_subquery()
            )
        if flt.within is not None:
            query = query.where(or_(False, *[OrgNode.path.startswith(p) for p in flt.within]))
        clouds: dict[int, CloudRef] = {}
        return [self._to_request(r, clouds) for r in self._s.execute(query).all()]

    # -- auto-approval policies -------------------------------------------
    def auto_approval(self, scope: NodeRef) -> AutoApprovalPolicy | None:
        if scope.id in self._policies:
            limits = self._policies[scope.id]
        else:
            limits = self._s.connection().execute(_AUTO_APPROVAL, {"b_scope": scope.id}).scalar()
        if limits is None:
            return None
        return AutoApprovalPolicy(scope, {ResourceClass(k): int(v) for k, v in limits.items()})

    def set_auto_approval(
        self, scope: NodeRef, limits: Mapping[ResourceClass, int] | None, actor: str, now: datetime
    ) -> None:
        A = QuotaAutoApproval
        self._policies.pop(scope.id, None)
        self._s.execute(delete(A).where(A.scope_id == scope.id))
        if limits is not None:
            self._s.execute(
                cast(Table, A.__table__)
                .insert()
                .values(
                    scope_id=scope.id,
                    limits={k.value: v for k, v in limits.items()},
                    updated_by=actor,
                    updated_at=now,
                )
            )

    # -- reservations -----------------------------------------------------
    def add_reservation(
        self,
        project: NodeRef,
        cloud: CloudRef,
        amounts: Mapping[ResourceClass, int],
        expires_at: datetime,
        created_by: str,
        now: datetime,
    ) -> Reservation:
        rid = self._s.execute(
            RT.insert()
            .values(
                project_id=project.id,
                cloud_id=cloud.id,
                amounts={k.value: v for k, v in amounts.items()},
                state=ReservationState.HELD.value,
                expires_at=expires_at,
                created_by=created_by,
                created_at=now,
                updated_at=now,
            )
            .returning(R.id)
        ).scalar_one()
        return Reservation(
            rid, project, cloud, dict(amounts), ReservationState.HELD, expires_at, created_by, now
        )

    def _to_reservation(self, r: Any, clouds: dict[int, CloudRef]) -> Reservation:
        if r.cloud_id not in clouds:
            clouds[r.cloud_id] = self.cloud_by_id(r.cloud_id)
        return Reservation(
            id=r.id,
            project=_node(r),
            cloud=clouds[r.cloud_id],
            amounts={ResourceClass(k): int(v) for k, v in r.amounts.items()},
            state=ReservationState(r.state),
            expires_at=r.expires_at,
            created_by=r.created_by,
            created_at=r.created_at,
        )

    def _reservation_query(self) -> Any:
        return select(RT, *_NODE_COLS).join(OrgNode, OrgNode.id == R.project_id)

    def reservation(self, reservation_id: int, *, lock: bool = False) -> Reservation:
        query = self._reservation_query().where(R.id == reservation_id)
        if lock:
            query = query.with_for_update(of=RT)
        row = self._s.execute(query).first()
        if row is None:
            raise NotFoundError(f"no reservation {reservation_id}", code="reservation.not_found")
        return self._to_reservation(row, {})

    def lock_expired_reservations(self, now: datetime, limit: int) -> list[Reservation]:
        query = (
            self._reservation_query()
            .where(R.state == ReservationState.HELD.value, R.expires_at <= now)
            .order_by(R.id)
            .limit(limit)
            .with_for_update(of=RT, skip_locked=True)
        )
        clouds: dict[int, CloudRef] = {}
        return [self._to_reservation(r, clouds) for r in self._s.execute(query).all()]

    def set_reservation_state(
        self, reservation_id: int, state: ReservationState, now: datetime
    ) -> None:
        self._s.execute(
            update(RT).where(R.id == reservation_id).values(state=state.value, updated_at=now)
        )

    def reservations(
        self,
        *,
        project: str | None = None,
        state: ReservationState | None = None,
        within: tuple[str, ...] | None = None,
    ) -> list[Reservation]:
        query = self._reservation_query().order_by(R.id.desc())
        if project is not None:
            query = query.where(OrgNode.code == project)
        if state is not None:
            query = query.where(R.state == state.value)
        if within is not None:
            query = query.where(or_(False, *[OrgNode.path.startswith(p) for p in within]))
        clouds: dict[int, CloudRef] = {}
        return [self._to_reservation(r, clouds) for r in self._s.execute(query).all()]
