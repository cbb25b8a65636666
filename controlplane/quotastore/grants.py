"""The grant rows: locking, creating and writing them; usage; read snapshots.

WHY ADMISSION CANNOT OVERSUBSCRIBE, AND WHY IT CANNOT DEADLOCK
---------------------------------------------------------------
An admission (grant change, approval, reservation, capacity change) reads the
rows it checks with SELECT … FOR UPDATE and writes them back before commit,
in one transaction. Under READ COMMITTED a row lock makes the read current:
PostgreSQL re-reads a row that another transaction changed while we waited
for its lock, so every check sees the latest committed values of exactly the
rows it then writes, and nobody else can write them until we commit. The
derived sums (`allocated` = Σ children's grants, `consumed` = Σ live
reservations) live on the *parent* row and change only under the parent's
lock, which every writer of a child also holds; so "Σ children ≤ grant" is
a check of one locked row, not a SUM over rows that others may be inserting
(Waldur's bug). On SQLite the engine begins every transaction with BEGIN
IMMEDIATE, so writers run one at a time and the same code is trivially safe.

Deadlock freedom: every transaction takes its grant-row locks in one global
order — (cloud id, level rank, row id), where the rank is province 0,
prefecture 1, department 2, project 3 — in a single statement whose ORDER BY
PostgreSQL applies *before* its LockRows step, so rows are locked in that
order. Along any chain the rank grows root → leaf, so this is "pool first,
then prefecture, department, project"; two transactions meeting on shared
ancestors queue on the first shared row instead of holding one each. (A single
`UPDATE … WHERE id IN (…)` would lock in physical order and deadlock — 3.6 TPS
in the issue's measurement.) Other locks keep to the same discipline: request
and reservation rows before grant rows, the audit head (identity) last.
A missing row is created at zero while its parent is locked — and every
creator of that row must hold that same parent lock — so creation cannot race.
The one theoretical gap (several classes in one transaction, one of whose
chains gains a row between our snapshot and our lock) at worst yields a
deadlock error, which PostgreSQL detects and `run_in_transaction` retries.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    Integer,
    Table,
    bindparam,
    case,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session

from controlplane.db import pipeline
from controlplane.db.base import utcnow
from controlplane.db.quota_tables import QuotaGrant
from controlplane.db.tables import OrgNode
from controlplane.vocabulary import OrgLevel, ResourceClass
from quotas.model import (
    CloudRef,
    GrantRow,
    NodeRef,
)
from quotas.ports import Segment

G = cast(Table, QuotaGrant.__table__)
_COLS = (
    G.c.id,
    G.c.resource_class,
    G.c.node_id,
    G.c.is_pool,
    G.c.granted,
    G.c.allocated,
    G.c.consumed,
    G.c.generation,
    G.c.total,
    G.c.capacity_reserved,
    G.c.oversubscription,
    G.c.capacity_source,
)
Key = tuple[str, int]  # (resource class, node id)

# Built once (construction costs more CPU than execution; see store.py).
_LOCK = (
    select(*_COLS)
    .where(
        G.c.cloud_id == bindparam("cloud_id"),
        tuple_(G.c.resource_class, G.c.node_id).in_(bindparam("keys", expanding=True)),
    )
    .order_by(G.c.cloud_id, G.c.level_rank, G.c.id)
    .with_for_update()
)
_SAVE_POOL = (
    update(G)
    .where(G.c.id == bindparam("b_id"))
    .values(
        total=bindparam("b_total"),
        capacity_reserved=bindparam("b_reserved"),
        oversubscription=bindparam("b_oversub"),
        capacity_source=bindparam("b_source"),
        generation=bindparam("b_generation"),
        updated_at=bindparam("b_now"),
    )
)


@functools.cache
def _save_counts(n: int) -> Any:
    """UPDATE of n locked rows in one statement: SET col = CASE id WHEN … END.

    One statement (not one per row: each costs its own parse, bind and
    execution on the server) keeps the serialised section short. It takes no new lock:
    every row was locked by `lock_grants`. Built once per n.
    """
    ids = [bindparam(f"id{i}", type_=Integer) for i in range(n)]

    def column(name: str) -> Any:
        return case(
            *[(G.c.id == ids[i], bindparam(f"{name}{i}", type_=BigInteger)) for i in range(n)]
        )

    return (
        update(G)
        .where(G.c.id.in_(ids))
        .values(
            granted=column("g"),
            allocated=column("a"),
            consumed=column("c"),
            generation=column("v"),
            updated_at=bindparam("now"),
        )
    )


def _grant(row: Any, node: NodeRef, cloud: CloudRef) -> GrantRow:
    cls = ResourceClass(row.resource_class)
    return GrantRow(
        id=row.id,
        resource_class=cls,
        node=node,
        is_pool=bool(row.is_pool),
        granted=row.granted,
        allocated=row.allocated,
        consumed=row.consumed,
        generation=row.generation,
        total=row.total,
        capacity_reserved=row.capacity_reserved,
        oversubscription=row.oversubscription,
        overcommit=cloud.ratio(cls),
        capacity_source=row.capacity_source,
    )


# The PostgreSQL fast path. The statements of an admission (locate and the
# outbox row before the locks, then lock and write) run on the session's own
# psycopg connection — the same transaction — without SQLAlchemy's
# per-statement machinery: with 32 writers queued on the hot rows, every
# microsecond they stay locked is paid 32 times, and every microsecond of CPU
# competes with the lock holder. In bench/quota_admission.py this took the
# ratio to raw SQL from ~0.44 (Core statements) to ~0.5 (bench/RESULTS.md).
# The SQL is the Core statements' (compiled from them where it can be);
# SQLite runs the Core statements.
@functools.cache
def _pg_lock(n: int) -> str:
    # `= ANY` gives the unique index its lookup keys; the pairs filter keeps it
    # exact. No join (an IN over unnest() would be one): the EvalPlanQual
    # recheck of a waiter re-reading rows changed by the holder it waited for
    # costs several times more through a join.
    pairs = ", ".join(f"(%(c{i})s, %(n{i})s)" for i in range(n))
    return (  # placeholders only: every value is bound
        "SELECT id, resource_class, node_id, is_pool, granted, allocated, consumed, generation, "  # noqa: S608
        "total, capacity_reserved, oversubscription, capacity_source FROM quota_grants "
        "WHERE cloud_id = %(cloud_id)s AND resource_class = ANY(%(classes)s) "
        f"AND node_id = ANY(%(nodes)s) AND (resource_class, node_id) IN ({pairs}) "
        "ORDER BY cloud_id, level_rank, id FOR UPDATE"
    )


@functools.cache
def _pg_save(n: int, dialect: Dialect) -> str:
    return str(_save_counts(n).compile(dialect=dialect))


@functools.cache
def pg_compiled(statement: Any, dialect: Dialect) -> tuple[str, dict[str, Any]]:
    """A Core statement's SQL for the driver, with the values of its literal binds."""
    compiled = statement.compile(dialect=dialect)
    return str(compiled), dict(compiled.params)


# What a transaction holds locked, kept in its pipeline memo (PostgreSQL):
# the calls of a group commit (controlplane.db.combine) lock and change the
# same ancestor rows one after another in one transaction. While it holds a
# row locked nobody else can change it, so what it last wrote is the row: a
# later call reads it here instead of selecting it again, and rows announced
# with `will_lock` are locked together with the first lock taken. A rollback
# to any savepoint drops the memo (pipeline.remember), so nothing undone is
# ever read back.
_LOCKED = "quota.locked_grants"
_WANTED = "quota.wanted_locks"
LockKey = tuple[int, str, int]  # (cloud id, resource class, node id)


class _Locked:
    __slots__ = ("ids", "rows")

    def __init__(self) -> None:
        self.rows: dict[LockKey, Any] = {}  # the selected rows (named tuples)
        self.ids: dict[int, LockKey] = {}

    def put(self, cloud_id: int, row: Any) -> None:
        key = (cloud_id, row.resource_class, row.node_id)
        self.rows[key] = row
        self.ids[row.id] = key

    def written(self, grant_id: int | None, **values: Any) -> None:
        key = self.ids.get(grant_id) if grant_id is not None else None
        if key is not None:
            self.rows[key] = self.rows[key]._replace(**values)


class GrantRows:
    _s: Session

    def _locked(self) -> _Locked | None:
        found: _Locked | None = pipeline.recall(self._s, _LOCKED)
        return found

    def will_lock(self, cloud: CloudRef, segments: Sequence[Segment]) -> None:
        if not self._on_postgresql():
            return
        wanted: set[LockKey] = pipeline.recall(self._s, _WANTED) or set()
        wanted.update((cloud.id, c.value, node.id) for c, segment in segments for node in segment)
        pipeline.remember(self._s, _WANTED, wanted)

    def _insert(self, table: Any) -> Any:
        dialect = self._s.get_bind().dialect.name
        return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)

    def _on_postgresql(self) -> bool:
        return self._s.get_bind().dialect.name == "postgresql"

    def _select_locked(self, cloud: CloudRef, keys: Sequence[Key]) -> dict[Key, Any]:
        if not self._on_postgresql():
            rows = self._s.connection().execute(_LOCK, {"cloud_id": cloud.id, "keys": keys}).all()
            return {(r.resource_class, r.node_id): r for r in rows}
        locked = self._locked() or _Locked()
        mine = {(cloud.id, cls, node_id) for cls, node_id in keys}
        if mine - locked.rows.keys():  # some not held yet: lock them and the announced ones
            wanted: set[LockKey] = pipeline.recall(self._s, _WANTED) or set()
            todo = sorted(
                (cls, node_id)
                for cloud_id, cls, node_id in (mine | wanted) - locked.rows.keys()
                if cloud_id == cloud.id
            )
            params: dict[str, Any] = {
                "cloud_id": cloud.id,
                "classes": sorted({k[0] for k in todo}),
                "nodes": sorted({k[1] for k in todo}),
            }
            for i, (cls, node_id) in enumerate(todo):
                params[f"c{i}"], params[f"n{i}"] = cls, node_id
            # Deferred writes (the outbox row) travel with the lock, and a read
            # carried for after it (the audit head: audit.lock_head_next).
            for row in pipeline.fetch(
                self._s, _pg_lock(len(todo)), params, carry=pipeline.LOCKS
            ):
                locked.put(cloud.id, row)
            pipeline.remember(self._s, _LOCKED, locked)
        found = (locked.rows.get(k) for k in mine)
        return {(r.resource_class, r.node_id): r for r in found if r is not None}

    def lock_grants(
        self, cloud: CloudRef, segments: Sequence[Segment], *, create_top: bool = False
    ) -> list[list[GrantRow]]:
        nodes: dict[int, NodeRef] = {}
        keys: list[Key] = []
        for cls, segment in segments:
            for node in segment:
                nodes[node.id] = node
                keys.append((cls.value, node.id))
        found = self._select_locked(cloud, sorted(set(keys)))
        missing: list[tuple[str, NodeRef]] = []
        for cls, segment in segments:
            top_exists = create_top or (cls.value, segment[0].id) in found
            missing += [
                (cls.value, n) for n in segment if top_exists and (cls.value, n.id) not in found
            ]
        if missing:
            self._create(cloud, missing)
            found.update(self._select_locked(cloud, [(c, n.id) for c, n in missing]))
        out = []
        for cls, segment in segments:
            rows = []
            for node in segment:
                row = found.get((cls.value, node.id))
                rows.append(
                    _grant(row, node, cloud)
                    if row is not None
                    else GrantRow(
                        None,
                        cls,
                        node,
                        is_pool=node.id == cloud.owner.id,
                        overcommit=cloud.ratio(cls),
                    )
                )
            out.append(rows)
        return out

    def _create(self, cloud: CloudRef, missing: Sequence[tuple[str, NodeRef]]) -> None:
        now = utcnow()
        # Zero rows; sorted so that concurrent creators (which the parent lock
        # already rules out) would at least insert in the same order.
        values = [
            {
                "cloud_id": cloud.id,
                "resource_class": cls,
                "node_id": node.id,
                "level_rank": node.rank,
                "is_pool": node.id == cloud.owner.id,
                "granted": 0,
                "allocated": 0,
                "consumed": 0,
                "total": 0,
                "capacity_reserved": 0,
                "oversubscription": 1.0,
                "generation": 0,
                "updated_at": now,
            }
            for cls, node in sorted(missing, key=lambda m: (m[1].rank, m[1].id, m[0]))
        ]
        for value in values:
            self._s.connection().execute(self._insert(G).values(**value).on_conflict_do_nothing())

    def save_grants(self, rows: Sequence[GrantRow], now: datetime) -> list[GrantRow]:
        if any(r.id is None for r in rows):
            raise ValueError("save_grants writes locked rows only")
        if not rows:
            return []
        params: dict[str, Any] = {"now": now.astimezone(UTC)}
        for i, r in enumerate(rows):
            params.update(
                {f"id{i}": r.id, f"g{i}": r.granted, f"a{i}": r.allocated},
                **{f"c{i}": r.consumed, f"v{i}": r.generation},
            )
        if self._on_postgresql():
            # Deferred: sent with the next statement (the audit head lock), not
            # in a round trip of its own while these rows are locked.
            sql = _pg_save(len(rows), self._s.get_bind().dialect)
            pipeline.defer(self._s, pipeline.Write(None, params, sql, [params]))
            locked = self._locked()
            if locked is not None:
                for r in rows:
                    locked.written(
                        r.id,
                        granted=r.granted,
                        allocated=r.allocated,
                        consumed=r.consumed,
                        generation=r.generation,
                    )
        else:
            self._s.connection().execute(_save_counts(len(rows)), params)
        return list(rows)

    def save_pool(self, row: GrantRow, now: datetime) -> GrantRow:
        locked = self._locked()
        if locked is not None:
            locked.written(
                row.id,
                total=row.total,
                capacity_reserved=row.capacity_reserved,
                oversubscription=row.oversubscription,
                capacity_source=row.capacity_source,
                generation=row.generation,
            )
        self._s.connection().execute(
            _SAVE_POOL,
            {
                "b_id": row.id,
                "b_total": row.total,
                "b_reserved": row.capacity_reserved,
                "b_oversub": row.oversubscription,
                "b_source": row.capacity_source,
                "b_generation": row.generation,
                "b_now": now,
            },
        )
        return row

    def grant_rows(
        self,
        cloud: CloudRef,
        resource_class: ResourceClass | None = None,
        within: tuple[str, ...] | None = None,
    ) -> list[GrantRow]:
        query = (
            select(*_COLS, OrgNode.code, OrgNode.level, OrgNode.path)
            .join(OrgNode, OrgNode.id == G.c.node_id)
            .where(G.c.cloud_id == cloud.id)
            .order_by(G.c.resource_class, OrgNode.path)
        )
        if resource_class is not None:
            query = query.where(G.c.resource_class == resource_class.value)
        if within is not None:
            query = query.where(or_(False, *[OrgNode.path.startswith(p) for p in within]))
        return [
            _grant(r, NodeRef(r.node_id, r.code, OrgLevel(r.level), r.path), cloud)
            for r in self._s.execute(query).all()
        ]

    def parents(self, node_ids: Sequence[int]) -> dict[int, int | None]:
        rows = self._s.execute(
            select(OrgNode.id, OrgNode.parent_id).where(OrgNode.id.in_(set(node_ids)))
        ).all()
        return {r.id: r.parent_id for r in rows}
