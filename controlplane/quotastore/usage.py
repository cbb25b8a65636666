"""Observed usage (what providers report) and the reservation ledger's sums."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from controlplane.db.quota_tables import QuotaReservationRow, QuotaUsage
from controlplane.db.tables import OrgNode
from controlplane.vocabulary import OrgLevel, ResourceClass
from quotas.model import LIVE_RESERVATION_STATES, CloudRef, NodeRef


class Usage:
    _s: Session

    def _upsert(self, table: Any) -> Any:
        dialect = self._s.get_bind().dialect.name
        return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)

    def usage(self, cloud: CloudRef, resource_class: ResourceClass, node: NodeRef) -> int:
        U = QuotaUsage
        query = select(func.coalesce(func.sum(U.used), 0)).where(
            U.cloud_id == cloud.id, U.resource_class == resource_class.value
        )
        if node.level is OrgLevel.PROJECT:
            query = query.where(U.node_id == node.id)
        else:
            query = query.join(OrgNode, OrgNode.id == U.node_id).where(
                OrgNode.path.startswith(node.path, autoescape=True)
            )
        return int(self._s.execute(query).scalar_one())

    def set_usage(
        self,
        cloud: CloudRef,
        resource_class: ResourceClass,
        project: NodeRef,
        used: int,
        now: datetime,
    ) -> None:
        stmt = self._upsert(QuotaUsage.__table__).values(
            cloud_id=cloud.id,
            resource_class=resource_class.value,
            node_id=project.id,
            used=used,
            observed_at=now,
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["cloud_id", "resource_class", "node_id"],
            set_={"used": used, "observed_at": now},
        )
        self._s.execute(stmt)

    def live_reserved(self, cloud: CloudRef) -> dict[tuple[ResourceClass, int], int]:
        R = QuotaReservationRow
        rows = self._s.execute(
            select(R.project_id, R.amounts).where(
                R.cloud_id == cloud.id, R.state.in_([s.value for s in LIVE_RESERVATION_STATES])
            )
        ).all()
        out: dict[tuple[ResourceClass, int], int] = {}
        for project_id, amounts in rows:
            for cls, n in _amounts(amounts).items():
                out[(cls, project_id)] = out.get((cls, project_id), 0) + n
        return out


def _amounts(raw: Mapping[str, int]) -> dict[ResourceClass, int]:
    return {ResourceClass(k): int(v) for k, v in raw.items()}
