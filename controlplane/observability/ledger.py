"""Migration-ledger series: systems by state, the 应上尽上 rate, rooms, assets, waves.

Rates and "behind plan" come from `controlplane.ledgerstore.progress`, the
same code the API and the CLI report with, so a dashboard never disagrees
with `yunguan ledger progress`. `today` is the UTC date, as in the API; the
exporter's cache key includes it, so a wave falls behind plan at midnight
even when nothing else changes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from prometheus_client.core import Metric
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from controlplane.db.ledger_tables import (
    ASSET_STATUSES,
    ROOM_STATUSES,
    LedgerAsset,
    LedgerRoom,
    LedgerSystem,
)
from controlplane.ledgerstore.progress import progress
from controlplane.observability import families as f
from controlplane.observability.places import Places


def ledger_metrics(session: Session, places: Places, today: date) -> Iterator[Metric]:
    yield _systems(session, places)
    yield from _rates(session, places, today)
    yield from _rooms_and_assets(session, places)


def _systems(session: Session, places: Places) -> Metric:
    S = LedgerSystem
    systems = f.MIGRATION_SYSTEMS.new()
    rows = session.execute(
        select(S.department_id, S.classification, S.state, func.count())
        .group_by(S.department_id, S.classification, S.state)
        .order_by(S.department_id, S.classification, S.state)
    )
    for department_id, classification, state, n in rows:
        place = places.nodes.get(department_id)
        if place is not None:
            systems.add((place.prefecture, place.code, classification, state), n)
    return systems.metric


def _rates(session: Session, places: Places, today: date) -> Iterator[Metric]:
    view = progress(session, None, today)
    total = f.MIGRATION_RATE_TOTAL.new()
    if view.rates.total.rate is not None:
        total.add((), view.rates.total.rate)
    by_prefecture = f.MIGRATION_RATE_PREFECTURE.new()
    for r in view.rates.by_parent:
        if r.rate is not None:
            by_prefecture.add((r.scope,), r.rate)
    by_department = f.MIGRATION_RATE_DEPARTMENT.new()
    for r in view.rates.by_department:
        place = places.by_code.get(r.scope)
        if r.rate is not None and place is not None:
            by_department.add((place.prefecture, r.scope), r.rate)
    systems, unfinished, behind, end = (
        f.WAVE_SYSTEMS.new(),
        f.WAVE_UNFINISHED.new(),
        f.WAVE_BEHIND.new(),
        f.WAVE_END.new(),
    )
    for w in view.waves:
        scope = places.by_code.get(w.wave.scope)
        labels = (scope.prefecture if scope else places.province, w.wave.code)
        systems.add(labels, w.total)
        unfinished.add(labels, w.unfinished)
        behind.add(labels, w.unfinished if w.behind_plan else 0)
        last_moment = datetime.combine(w.wave.ends_on + timedelta(days=1), time(), tzinfo=UTC)
        end.add(labels, last_moment.timestamp())
    for b in (total, by_prefecture, by_department, systems, unfinished, behind, end):
        yield b.metric


def _rooms_and_assets(session: Session, places: Places) -> Iterator[Metric]:
    """Per prefecture, every status present (zero included), so "retired" is a
    series from the first room on."""
    R, A = LedgerRoom, LedgerAsset
    room_rows = session.execute(
        select(R.department_id, R.status, func.count()).group_by(R.department_id, R.status)
    )
    asset_rows = session.execute(
        select(R.department_id, A.status, func.count())
        .join(R, R.id == A.room_id)
        .group_by(R.department_id, A.status)
    )
    yield _per_prefecture(f.MIGRATION_ROOMS, room_rows, ROOM_STATUSES, places)
    yield _per_prefecture(f.MIGRATION_ASSETS, asset_rows, ASSET_STATUSES, places)


def _per_prefecture(
    family: f.Family, rows: Any, statuses: tuple[str, ...], places: Places
) -> Metric:
    counts: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(statuses, 0))
    for department_id, status, n in rows:
        place = places.nodes.get(department_id)
        if place is not None:
            counts[place.prefecture][status] = counts[place.prefecture].get(status, 0) + n
    builder = family.new()
    for prefecture in sorted(counts):
        for status, n in counts[prefecture].items():
            builder.add((prefecture, status), n)
    return builder.metric
