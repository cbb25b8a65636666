"""`SqlQuotaStore`: the quota service's storage, bound to one unit of work.

    with UnitOfWork(factory) as uow:
        store = SqlQuotaStore(uow.session)
        service.set_grant(store, actor, "cs-data", "provincial", "vcpu", 64)
        uow.commit()

It adds, locks, updates and flushes; it never commits (the caller does).
Statements go through the session's connection as SQLAlchemy Core: the hot
admission path builds no ORM objects.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from sqlalchemy import Table, bindparam, literal, select
from sqlalchemy.orm import Session

from controlplane.db import pipeline
from controlplane.db.outbox import add_outbox
from controlplane.db.quota_tables import QuotaAutoApproval
from controlplane.db.tables import Cloud, OrgNode
from controlplane.quotastore.grants import GrantRows, pg_compiled
from controlplane.quotastore.records import Records
from controlplane.quotastore.usage import Usage
from controlplane.vocabulary import (
    Architecture,
    CloudKind,
    CloudRole,
    NotFoundError,
    OrgLevel,
)
from quotas.model import CloudRef, NodeRef

# Statements are built once: constructing them per call costs more CPU than
# running them (SQLAlchemy caches the compiled SQL, not the construction).
_C = cast(Table, Cloud.__table__)
_N = cast(Table, OrgNode.__table__)
_OWNER = _N.alias("owner")
_CLOUDS = select(
    _C.c.id,
    _C.c.code,
    _C.c.kind,
    _C.c.role,
    _C.c.architectures,
    _C.c.overcommit,
    _C.c.enabled,
    _OWNER.c.id.label("owner_id"),
    _OWNER.c.code.label("owner_code"),
    _OWNER.c.level.label("owner_level"),
    _OWNER.c.path.label("owner_path"),
).join(_OWNER, _OWNER.c.id == _C.c.owner_id)
_CLOUD_BY_CODE = _CLOUDS.where(_C.c.code == bindparam("code"))
_CLOUD_BY_ID = _CLOUDS.where(_C.c.id == bindparam("id"))


def _chain_query() -> Any:
    up = (
        select(_N.c.id, _N.c.code, _N.c.level, _N.c.path, _N.c.parent_id, literal(0).label("depth"))
        .where(_N.c.code == bindparam("code"))
        .cte("up", recursive=True)
    )
    parent = _N.alias("parent")
    up = up.union_all(
        select(
            parent.c.id,
            parent.c.code,
            parent.c.level,
            parent.c.path,
            parent.c.parent_id,
            up.c.depth + 1,
        ).where(parent.c.id == up.c.parent_id)
    )
    return select(up).order_by(up.c.depth.desc())


_CHAIN = _chain_query()


def _locate_query() -> Any:
    """The chain of a node and, on every row, the cloud: one round trip instead
    of two before each admission. Each chain row also carries its scope's
    auto-approval limits (NULL for most), which filing a request reads next."""
    chain = _CHAIN.subquery("chain")
    cloud = _CLOUDS.where(_C.c.code == bindparam("cloud_code")).subquery("cloud")
    policy = cast(Table, QuotaAutoApproval.__table__)
    return (
        select(
            chain,
            cloud.c.id.label("cloud_id"),
            cloud.c.code.label("cloud_code"),
            *[c for c in cloud.c if c.name not in {"id", "code"}],
            policy.c.limits.label("auto_approval"),
        )
        # the cloud's columns on the root row only (JSON is decoded once)
        .select_from(
            chain.outerjoin(cloud, chain.c.parent_id.is_(None)).outerjoin(
                policy, policy.c.scope_id == chain.c.id
            )
        )
        .order_by(chain.c.depth.desc())
    )


_LOCATE = _locate_query()


def _cloud(row: Any) -> CloudRef:
    return CloudRef(
        id=row.id,
        code=row.code,
        kind=CloudKind(row.kind),
        role=CloudRole(row.role),
        owner=NodeRef(row.owner_id, row.owner_code, OrgLevel(row.owner_level), row.owner_path),
        architectures=tuple(row.architectures),
        overcommit=dict(row.overcommit),
        enabled=bool(row.enabled),
    )


def _located_key(cloud_code: str, node_code: str) -> str:
    return f"locate:{cloud_code}:{node_code}"


class SqlQuotaStore(GrantRows, Records, Usage):
    """One per transaction: it remembers what `locate` read (the chain, the
    cloud, the chain's auto-approval policies) for the rest of it, so the
    route's scope check and the use case do not read them twice."""

    def __init__(self, session: Session) -> None:
        self._s = session
        self._located: dict[tuple[str, str], tuple[CloudRef, list[NodeRef]]] = {}
        self._policies: dict[int, dict[str, int] | None] = {}

    # -- topology ---------------------------------------------------------
    def _rows(self, statement: Any, **params: Any) -> Any:
        return self._s.connection().execute(statement, params).all()

    def cloud(self, code: str) -> CloudRef:
        rows = self._rows(_CLOUD_BY_CODE, code=code)
        if not rows:
            raise NotFoundError(f"no cloud {code!r}", code="cloud.not_found")
        return _cloud(rows[0])

    def cloud_by_id(self, cloud_id: int) -> CloudRef:
        return _cloud(self._rows(_CLOUD_BY_ID, id=cloud_id)[0])

    def clouds(
        self, role: CloudRole | None = None, architecture: Architecture | None = None
    ) -> list[CloudRef]:
        found = [_cloud(r) for r in self._rows(_CLOUDS.order_by(_C.c.code))]
        if role is not None:
            found = [c for c in found if c.role is role]
        if architecture is not None:  # a JSON list: filtered here, portably
            found = [c for c in found if architecture.value in c.architectures]
        return found

    def chain(self, code: str) -> list[NodeRef]:
        rows = self._rows(_CHAIN, code=code)
        if not rows:
            raise NotFoundError(f"no organisation node {code!r}", code="org.not_found")
        return [NodeRef(r.id, r.code, OrgLevel(r.level), r.path) for r in rows]

    def locate(self, cloud_code: str, node_code: str) -> tuple[CloudRef, list[NodeRef]]:
        key = (cloud_code, node_code)
        if key in self._located:
            cloud, chain = self._located[key]
            return cloud, list(chain)
        if self._on_postgresql():  # the fast path, as for the locks (see grants.py)
            rows = pipeline.carried(self._s, _located_key(cloud_code, node_code))
            if rows is None:
                sql, params = self._pg_locate(cloud_code, node_code)
                rows = pipeline.fetch(self._s, sql, params, carry=pipeline.LOOKUPS)
        else:
            rows = self._rows(_LOCATE, code=node_code, cloud_code=cloud_code)
        if not rows or rows[0].cloud_id is None:  # rows[0] is the root
            # Which one is missing: the node first, so that an unknown cloud
            # named with a project the caller cannot see still answers org.not_found.
            chain = self.chain(node_code)
            return self.cloud(cloud_code), chain
        first = rows[0]
        cloud = CloudRef(
            id=first.cloud_id,
            code=first.cloud_code,
            kind=CloudKind(first.kind),
            role=CloudRole(first.role),
            owner=NodeRef(
                first.owner_id, first.owner_code, OrgLevel(first.owner_level), first.owner_path
            ),
            architectures=tuple(first.architectures),
            overcommit=dict(first.overcommit),
            enabled=bool(first.enabled),
        )
        chain = [NodeRef(r.id, r.code, OrgLevel(r.level), r.path) for r in rows]
        for r in rows:
            self._policies[r.id] = r.auto_approval
        self._located[key] = (cloud, chain)
        return cloud, list(chain)

    def expect_locate(self, cloud_code: str, node_code: str) -> None:
        """A hint: `locate(cloud_code, node_code)` comes soon in this transaction.
        On PostgreSQL the lookup is sent with the transaction's next lookup
        (a group commit announces all of its filings' lookups first: one round
        trip for all of them instead of one each)."""
        if self._on_postgresql():
            sql, params = self._pg_locate(cloud_code, node_code)
            key = _located_key(cloud_code, node_code)
            pipeline.carry_read(self._s, key, sql, params, group=pipeline.LOOKUPS)

    def _pg_locate(self, cloud_code: str, node_code: str) -> tuple[str, dict[str, Any]]:
        sql, defaults = pg_compiled(_LOCATE, self._s.get_bind().dialect)
        return sql, {**defaults, "code": node_code, "cloud_code": cloud_code}

    # -- the outbox -------------------------------------------------------
    def emit(
        self, topic: str, aggregate_type: str, aggregate_id: str, payload: Mapping[str, Any]
    ) -> None:
        add_outbox(self._s, topic, aggregate_type, aggregate_id, payload)
