"""Reading desired state for a task: what Yunguan wants a tenant to be.

The grant ledger is the source: a project's grants on a cloud become its
quota there. Classes the adapter enforces but the project holds no grant for
are pushed as 0 — a tenant gets exactly what was granted, never a provider's
default — except the classes listed in `UNLIMITED_WHEN_UNGRANTED`, where a
missing grant means "not limited by Yunguan": Slurm memory and core-hour
budgets are granted only where a centre meters them, and an OpenStack cloud
on Nova's DB quota driver cannot limit GPUs at all (only unified limits can),
so an ungranted GPU class is left to the cloud's own default there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from controlplane.db.quota_tables import QuotaGrant
from controlplane.db.tables import Cloud, OrgNode
from controlplane.vocabulary import CloudKind, NotFoundError, ResourceClass
from providers.base import TenantSpec

UNLIMITED_WHEN_UNGRANTED: dict[CloudKind, frozenset[ResourceClass]] = {
    CloudKind.SLURM: frozenset({ResourceClass.MEMORY_MIB, ResourceClass.HPC_CORE_HOURS}),
    CloudKind.OPENSTACK: frozenset({ResourceClass.GPU}),
}


@dataclass(frozen=True)
class Target:
    cloud_id: int
    cloud_code: str
    kind: CloudKind
    connection: Mapping[str, object]
    enabled: bool
    node_id: int
    node_code: str
    node_level: str
    spec: TenantSpec
    granted: Mapping[ResourceClass, int]  # grant rows that exist
    generation: int  # max generation over those rows


def load_target(session: Session, cloud_id: int, node_id: int) -> Target:
    cloud = session.get(Cloud, cloud_id)
    node = session.get(OrgNode, node_id)
    if cloud is None or node is None:
        raise NotFoundError(f"cloud {cloud_id} or node {node_id} is gone", code="operation.gone")
    rows = session.execute(
        select(QuotaGrant.resource_class, QuotaGrant.granted, QuotaGrant.generation).where(
            QuotaGrant.cloud_id == cloud_id, QuotaGrant.node_id == node_id
        )
    ).all()
    path = tuple(p for p in node.path.split("/") if p)
    spec = TenantSpec(key=node.code, name=node.name, path=path, description=node.name)
    return Target(
        cloud_id=cloud.id,
        cloud_code=cloud.code,
        kind=CloudKind(cloud.kind),
        connection=dict(cloud.connection),
        enabled=cloud.enabled,
        node_id=node.id,
        node_code=node.code,
        node_level=node.level,
        spec=spec,
        granted={ResourceClass(r.resource_class): int(r.granted) for r in rows},
        generation=max((int(r.generation) for r in rows), default=0),
    )


def desired_limits(target: Target, enforced: frozenset[ResourceClass]) -> dict[ResourceClass, int]:
    """The limits to push: every enforced class, 0 where nothing is granted."""
    return limits_for(target.kind, target.granted, enforced)


def limits_for(
    kind: CloudKind, granted: Mapping[ResourceClass, int], enforced: frozenset[ResourceClass]
) -> dict[ResourceClass, int]:
    """`desired_limits` from the grant rows alone (the quota sync reads them for
    every tenant of a cloud in one query)."""
    optional = UNLIMITED_WHEN_UNGRANTED.get(kind, frozenset())
    out: dict[ResourceClass, int] = {}
    for rc in enforced:
        if rc in granted:
            out[rc] = granted[rc]
        elif rc not in optional:
            out[rc] = 0
    return out
