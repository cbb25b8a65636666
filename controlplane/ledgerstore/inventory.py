"""The observed inventory of each cloud: what acceptance is verified against.

The inventory sync task (a later issue: Celery workers) calls
`replace_cloud_inventory` with what `CloudProvider.list_inventory()` returned,
translated to `ObservedItem`s: the provider's tenant becomes the Yunguan
project code (`TenantRef.key`), so this module never imports a provider.
A cloud's rows are replaced whole, in the caller's transaction, under a lock
on the cloud's `inventory_syncs` row; an observation older than the stored
one is ignored, so duplicated or reordered sync tasks converge on the newest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from controlplane.db.ledger_tables import InventoryItem, InventorySync
from controlplane.db.tables import Cloud, OrgNode
from controlplane.vocabulary import InvalidInputError, NotFoundError
from migration.states import Evidence, EvidenceItem

_CHUNK = 1000


@dataclass(frozen=True)
class ObservedItem:
    """One workload as a provider reported it, in Yunguan's words."""

    kind: str  # "server", "volume", "pod", "pvc", "job"
    external_id: str  # the provider's id, unique per (cloud, kind)
    name: str
    project: str | None  # the Yunguan project code (TenantRef.key); None when unowned
    status: str
    running: bool  # counts as a live workload
    architecture: str | None = None


@dataclass(frozen=True)
class SyncSummary:
    cloud: str
    observed_at: datetime
    applied: bool  # False when a newer observation was already stored
    items: int
    running: int
    unknown_projects: tuple[str, ...]  # project codes with no org node (stored unlinked)


def replace_cloud_inventory(
    session: Session, cloud_code: str, items: Sequence[ObservedItem], observed_at: datetime
) -> SyncSummary:
    """Atomically replaces the stored inventory of `cloud_code` with `items`."""
    if observed_at.tzinfo is None:
        raise InvalidInputError("observed_at must carry a time zone", code="inventory.invalid")
    cloud_id = session.scalar(select(Cloud.id).where(Cloud.code == cloud_code))
    if cloud_id is None:
        raise NotFoundError(f"no cloud {cloud_code!r}", code="cloud.not_found")
    seen: set[tuple[str, str]] = set()
    for item in items:
        key = (item.kind, item.external_id)
        if key in seen:
            raise InvalidInputError(
                f"{cloud_code}: {item.kind} {item.external_id!r} is reported twice",
                code="inventory.invalid",
            )
        seen.add(key)
    # Lock the cloud's sync row first: concurrent replaces of one cloud serialise here.
    sync = session.scalar(
        select(InventorySync).where(InventorySync.cloud_id == cloud_id).with_for_update()
    )
    running = sum(1 for i in items if i.running)
    codes = sorted({i.project for i in items if i.project})
    if sync is not None and sync.observed_at > observed_at:
        return SyncSummary(cloud_code, observed_at, False, len(items), running, ())
    project_ids = dict(
        session.execute(
            select(OrgNode.code, OrgNode.id).where(
                OrgNode.code.in_(codes), OrgNode.level == "project"
            )
        ).all()
    )
    if sync is None:
        session.add(
            InventorySync(
                cloud_id=cloud_id, observed_at=observed_at, items=len(items), running=running
            )
        )
    else:
        sync.observed_at, sync.items, sync.running = observed_at, len(items), running
    session.execute(delete(InventoryItem).where(InventoryItem.cloud_id == cloud_id))
    rows = [
        {
            "cloud_id": cloud_id,
            "project_id": project_ids.get(i.project) if i.project else None,
            "kind": i.kind[:32],
            "external_id": i.external_id[:255],
            "name": i.name[:255],
            "status": i.status[:64],
            "running": i.running,
            "architecture": i.architecture[:16] if i.architecture else None,
            "observed_at": observed_at,
        }
        for i in items
    ]
    for start in range(0, len(rows), _CHUNK):
        session.execute(insert(InventoryItem), rows[start : start + _CHUNK])
    session.flush()
    unknown = tuple(c for c in codes if c not in project_ids)
    return SyncSummary(cloud_code, observed_at, True, len(items), running, unknown)


def evidence(
    session: Session, cloud_id: int, cloud_code: str, project_ids: Sequence[int]
) -> Evidence:
    """What the latest sync of a cloud says of the given projects' running workloads."""
    synced_at = session.scalar(
        select(InventorySync.observed_at).where(InventorySync.cloud_id == cloud_id)
    )
    if synced_at is None or not project_ids:
        return Evidence(cloud_code, synced_at)
    rows = session.execute(
        select(
            InventoryItem.kind,
            InventoryItem.external_id,
            InventoryItem.name,
            OrgNode.code,
            InventoryItem.architecture,
        )
        .join(OrgNode, OrgNode.id == InventoryItem.project_id)
        .where(
            InventoryItem.cloud_id == cloud_id,
            InventoryItem.project_id.in_(project_ids),
            InventoryItem.running.is_(True),
        )
        .order_by(InventoryItem.kind, InventoryItem.external_id)
    )
    return Evidence(cloud_code, synced_at, tuple(EvidenceItem(*r) for r in rows))
