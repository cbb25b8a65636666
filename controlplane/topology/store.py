"""Reads and writes the topology tables inside the caller's unit of work (never commits)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, literal, select, update
from sqlalchemy.orm import Session, aliased

from controlplane.db.scoping import on_path_clause
from controlplane.db.tables import Cloud, OrgNode
from controlplane.topology.diff import OrgRecord
from controlplane.vocabulary import NotFoundError, OrgLevel


class TopologyStore:
    def __init__(self, session: Session) -> None:
        self._s = session

    # -- reads -------------------------------------------------------------
    def org_records(self) -> dict[str, OrgRecord]:
        parent = aliased(OrgNode)
        rows = self._s.execute(
            select(OrgNode.code, OrgNode.name, OrgNode.level, parent.code).outerjoin(
                parent, OrgNode.parent_id == parent.id
            )
        ).all()
        return {c: OrgRecord(c, n, OrgLevel(lv), p) for c, n, lv, p in rows}

    def cloud_records(self) -> dict[str, dict[str, Any]]:
        return {c.code: _cloud_record(c) for c in self.clouds()}

    def clouds(
        self,
        *,
        kind: str | None = None,
        role: str | None = None,
        owner: str | None = None,
        enabled: bool | None = None,
        visible_to: tuple[str, ...] | None = None,
    ) -> Sequence[Cloud]:
        query = select(Cloud).join(Cloud.owner).order_by(Cloud.code)
        if kind is not None:
            query = query.where(Cloud.kind == kind)
        if role is not None:
            query = query.where(Cloud.role == role)
        if owner is not None:
            query = query.where(OrgNode.code == owner)
        if enabled is not None:
            query = query.where(Cloud.enabled == enabled)
        if visible_to is not None:
            query = query.where(on_path_clause(OrgNode.path, visible_to))
        return self._s.scalars(query).all()

    def cloud(self, code: str, *, visible_to: tuple[str, ...] | None = None) -> Cloud:
        query = select(Cloud).join(Cloud.owner).where(Cloud.code == code)
        if visible_to is not None:
            query = query.where(on_path_clause(OrgNode.path, visible_to))
        found = self._s.scalar(query)
        if found is None:
            raise NotFoundError(f"no cloud {code!r}", code="cloud.not_found")
        return found

    def org_nodes(self, *, visible_to: tuple[str, ...] | None = None) -> Sequence[OrgNode]:
        query = select(OrgNode).order_by(OrgNode.path)
        if visible_to is not None:
            query = query.where(on_path_clause(OrgNode.path, visible_to))
        return self._s.scalars(query).all()

    def org_node(self, code: str) -> OrgNode | None:
        return self._s.scalar(select(OrgNode).where(OrgNode.code == code))

    def children(self, node_id: int) -> Sequence[OrgNode]:
        return self._s.scalars(
            select(OrgNode).where(OrgNode.parent_id == node_id).order_by(OrgNode.code)
        ).all()

    def is_empty(self) -> bool:
        return self._s.scalar(select(OrgNode.id).limit(1)) is None

    # -- writes ------------------------------------------------------------
    def _node_id(self, code: str) -> int:
        node_id = self._s.scalar(select(OrgNode.id).where(OrgNode.code == code))
        if node_id is None:
            raise NotFoundError(f"no organisation node {code!r}", code="org.not_found")
        return node_id

    def upsert_org(self, rec: OrgRecord) -> None:
        parent = None
        if rec.parent:
            parent = self._s.scalar(select(OrgNode).where(OrgNode.code == rec.parent))
            if parent is None:
                raise NotFoundError(f"no organisation node {rec.parent!r}", code="org.not_found")
        path = f"{parent.path if parent else '/'}{rec.code}/"
        node = self._s.scalar(select(OrgNode).where(OrgNode.code == rec.code))
        if node is None:
            node = OrgNode(code=rec.code, level=rec.level.value, path=path)
            self._s.add(node)
        elif node.path != path:
            # A move: every descendant's path changes with it, in one statement.
            old = node.path
            self._s.execute(
                update(OrgNode)
                .where(OrgNode.path.startswith(old), OrgNode.id != node.id)
                .values(path=literal(path) + func.substr(OrgNode.path, len(old) + 1))
                .execution_options(synchronize_session=False)
            )
            node.path = path
        node.name = rec.name
        node.parent_id = parent.id if parent else None
        self._s.flush()

    def delete_org(self, code: str) -> None:
        node = self._s.scalar(select(OrgNode).where(OrgNode.code == code))
        if node is not None:
            self._s.delete(node)
            self._s.flush()

    def upsert_cloud(self, rec: dict[str, Any]) -> None:
        # Resolve the owner before touching the row: the lookup would autoflush
        # a half-built Cloud otherwise.
        owner_id = self._node_id(rec["owner"])
        cloud = self._s.scalar(select(Cloud).where(Cloud.code == rec["code"]))
        if cloud is None:
            cloud = Cloud(code=rec["code"])
            self._s.add(cloud)
        cloud.owner_id = owner_id
        for key, value in rec.items():
            if key not in {"code", "owner"}:
                setattr(cloud, key, value)
        self._s.flush()

    def delete_cloud(self, code: str) -> None:
        cloud = self._s.scalar(select(Cloud).where(Cloud.code == code))
        if cloud is not None:
            self._s.delete(cloud)
            self._s.flush()


def _cloud_record(c: Cloud) -> dict[str, Any]:
    return {
        "code": c.code,
        "name": c.name,
        "kind": c.kind,
        "role": c.role,
        "owner": c.owner.code,
        "architectures": list(c.architectures),
        "region": c.region,
        "connection": dict(c.connection),
        "overcommit": dict(c.overcommit),
        "accelerators": list(c.accelerators),
        "enabled": c.enabled,
    }
