"""The quota model: who holds what, in which unit, and the words the service speaks.

The grant tree of one (cloud, resource class) mirrors the organisation tree
below the cloud's owner (the province for provincial clouds, a prefecture for
its own cloud)::

    pool (at the owner: allocatable = total × overcommit − reserved, × oversubscription)
     └── grant at a prefecture or department directly below the owner  ("top-level")
          └── grant at a department
               └── grant at a project   → pushed to the provider as the tenant's quota
                    └── reservations (held or committed consumption)

Every row of that tree is a `GrantRow`; the pool is simply the root row. Each
row keeps two derived sums, maintained under the row lock by the same
transaction that changes a child: `allocated` (Σ children's grants) and
`consumed` (Σ live reservations, projects only). Invariants, always:
`allocated + consumed ≤ limit` on every row.

Pure: no web framework, ORM, Celery or SDK (import-linter enforces it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import ROUND_FLOOR, Decimal
from enum import StrEnum
from typing import Any

from controlplane.vocabulary import (
    Architecture,
    CloudKind,
    CloudRole,
    InvalidInputError,
    OrgLevel,
    ResourceClass,
    supported_classes,
)

# Amounts are canonical integers (vcpu, MiB, GiB, ...); the cap keeps every
# sum far inside a signed 64-bit column.
MAX_AMOUNT = 10**15

LEVEL_RANK: dict[OrgLevel, int] = {
    OrgLevel.PROVINCE: 0,
    OrgLevel.PREFECTURE: 1,
    OrgLevel.DEPARTMENT: 2,
    OrgLevel.PROJECT: 3,
}


class RequestState(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    APPLIED = "applied"
    FAILED = "failed"


class ReservationState(StrEnum):
    HELD = "held"
    COMMITTED = "committed"
    RELEASED = "released"
    EXPIRED = "expired"


LIVE_RESERVATION_STATES = frozenset({ReservationState.HELD, ReservationState.COMMITTED})


@dataclass(frozen=True)
class Actor:
    """Who acts, for the records (requested_by, decided_by, outbox payloads).

    `id` is the login (or `cli:<user>`, `system`); `scopes` are the org paths
    the identity layer resolved for the call. Authorisation itself is the
    identity layer's job; the quota service only records.
    """

    id: str
    scopes: tuple[str, ...] = ()


SYSTEM = Actor("system")


@dataclass(frozen=True)
class NodeRef:
    id: int
    code: str
    level: OrgLevel
    path: str

    @property
    def rank(self) -> int:
        return LEVEL_RANK[self.level]


@dataclass(frozen=True)
class CloudRef:
    id: int
    code: str
    kind: CloudKind
    role: CloudRole
    owner: NodeRef
    architectures: tuple[str, ...]
    overcommit: Mapping[str, float]
    enabled: bool = True

    def ratio(self, resource_class: ResourceClass) -> float:
        return float(self.overcommit.get(resource_class.value, 1.0))

    def supports(self, resource_class: ResourceClass) -> bool:
        return resource_class in supported_classes(self.kind)


def pool_limit(total: int, overcommit: float, reserved: int, oversubscription: float) -> int:
    """What the top-level grants of a pool may add up to.

    allocatable = ⌊total × overcommit⌋ − reserved (never below 0), then
    × the oversubscription factor the cloud's policy allows (1.0 by default).
    Decimal arithmetic from the printed ratio, so 3 × 1.1 is 3.3, not 3.3000000000000003.
    """
    if float(overcommit).is_integer() and float(oversubscription).is_integer():
        return max(0, total * int(overcommit) - reserved) * int(oversubscription)
    allocatable = (Decimal(total) * Decimal(str(overcommit))).to_integral_value(ROUND_FLOOR)
    allocatable = max(Decimal(0), allocatable - reserved)
    return int((allocatable * Decimal(str(oversubscription))).to_integral_value(ROUND_FLOOR))


@dataclass(frozen=True)
class GrantRow:
    """One row of a grant tree as read (under lock) by an admission.

    `id` is None for a row that does not exist (a zero grant). On the pool
    row (`is_pool`) the limit comes from the capacity columns and the cloud's
    overcommit ratio; elsewhere it is `granted`.
    """

    id: int | None
    resource_class: ResourceClass
    node: NodeRef
    is_pool: bool = False
    granted: int = 0
    allocated: int = 0
    consumed: int = 0
    generation: int = 0
    total: int = 0
    capacity_reserved: int = 0
    oversubscription: float = 1.0
    overcommit: float = 1.0
    capacity_source: str | None = None

    @property
    def limit(self) -> int:
        if self.is_pool:
            return pool_limit(
                self.total, self.overcommit, self.capacity_reserved, self.oversubscription
            )
        return self.granted

    @property
    def free(self) -> int:
        return self.limit - self.allocated - self.consumed

    def values(self) -> dict[str, Any]:
        """The row as the API and the audit log show it."""
        out: dict[str, Any] = {
            "node": self.node.code,
            "resource_class": self.resource_class.value,
            "allocated": self.allocated,
            "free": self.free,
            "generation": self.generation,
        }
        if self.is_pool:
            out.update(
                total=self.total,
                reserved=self.capacity_reserved,
                overcommit=self.overcommit,
                oversubscription=self.oversubscription,
                limit=self.limit,
                source=self.capacity_source,
            )
        else:
            out.update(granted=self.granted, consumed=self.consumed)
        return out


@dataclass(frozen=True)
class Change:
    """One audited change, shaped for `identity.audit.record(...)`."""

    action: str
    object_type: str
    object_id: str
    scope_path: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None


@dataclass(frozen=True)
class RequestItem:
    """One resource class of a request: a delta (+n) or an absolute target."""

    resource_class: ResourceClass
    amount: int
    absolute: bool = False

    def as_dict(self) -> dict[str, Any]:
        key = "absolute" if self.absolute else "delta"
        return {"resource_class": self.resource_class.value, key: self.amount}


@dataclass(frozen=True)
class CloudSelector:
    """ "Any cloud of role X (and architecture Y)": the approver picks one."""

    role: CloudRole
    architecture: Architecture | None = None

    def matches(self, cloud: CloudRef) -> bool:
        return cloud.role is self.role and (
            self.architecture is None or self.architecture.value in cloud.architectures
        )

    def describe(self) -> str:
        arch = f" on {self.architecture.value}" if self.architecture else ""
        return f"any {self.role.value} cloud{arch}"


@dataclass(frozen=True)
class QuotaRequest:
    id: int
    project: NodeRef
    cloud: CloudRef | None
    selector: CloudSelector | None
    items: tuple[RequestItem, ...]
    reason: str
    needed_by: date | None
    state: RequestState
    requested_by: str
    created_at: datetime
    updated_at: datetime
    decided_by: str | None = None
    decided_at: datetime | None = None
    note: str | None = None
    generation: int = 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "project": self.project.code,
            "project_path": self.project.path,
            "cloud": self.cloud.code if self.cloud else None,
            "cloud_role": self.selector.role.value if self.selector else None,
            "cloud_architecture": (
                self.selector.architecture.value
                if self.selector and self.selector.architecture
                else None
            ),
            "items": [i.as_dict() for i in self.items],
            "reason": self.reason,
            "needed_by": self.needed_by.isoformat() if self.needed_by else None,
            "state": self.state.value,
            "requested_by": self.requested_by,
            "decided_by": self.decided_by,
            "decided_at": self.decided_at.isoformat() if self.decided_at else None,
            "note": self.note,
            "generation": self.generation,
            "created_at": self.created_at.isoformat(),
        }


@dataclass(frozen=True)
class Reservation:
    id: int
    project: NodeRef
    cloud: CloudRef
    amounts: Mapping[ResourceClass, int]
    state: ReservationState
    expires_at: datetime
    created_by: str
    created_at: datetime

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "project": self.project.code,
            "cloud": self.cloud.code,
            "amounts": {k.value: v for k, v in sorted(self.amounts.items())},
            "state": self.state.value,
            "expires_at": self.expires_at.isoformat(),
            "created_by": self.created_by,
        }


@dataclass(frozen=True)
class AutoApprovalPolicy:
    """Requests under a scope are approved at filing when every item is a
    delta within `limits` and fits the department's own unallocated headroom."""

    scope: NodeRef
    limits: Mapping[ResourceClass, int] = field(default_factory=dict)

    def covers(self, items: Sequence[RequestItem]) -> bool:
        return bool(items) and all(
            not i.absolute and i.amount <= self.limits.get(i.resource_class, -1) for i in items
        )


# -- the scope that owns the headroom -------------------------------------


def approving_scope(chain: Sequence[NodeRef]) -> NodeRef:
    """Who approves a request for the project at the end of `chain` (root first).

    The department's parent: the prefecture for municipal departments, the
    province for provincial ones. Its headroom is what an approval draws on.
    """
    if not chain or chain[-1].level is not OrgLevel.PROJECT or len(chain) < 3:
        where = chain[-1].code if chain else "?"
        raise InvalidInputError(f"{where!r} is not a project", code="quota.not_a_project")
    return chain[-3]


def granting_scope(chain: Sequence[NodeRef]) -> NodeRef:
    """Who may set the grant of the node at the end of `chain`: its parent's scope
    (the province for prefecture envelopes and provincial departments)."""
    if len(chain) < 2:
        raise InvalidInputError(
            "the province holds the pools; it has no grant", code="quota.pool_root"
        )
    return chain[-2]
