"""What the quota service needs from storage: one Protocol, implemented by
`controlplane.quotastore.SqlQuotaStore` over the caller's unit of work.

The store never commits. Its one subtle duty is `lock_grants`: it must lock
rows in the single global order (cloud, level rank, row id) — root → leaf
along every chain — which is what makes concurrent admissions deadlock-free
(the argument is written beside the implementation).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol

from controlplane.vocabulary import Architecture, CloudRole, ResourceClass
from quotas.model import (
    AutoApprovalPolicy,
    CloudRef,
    CloudSelector,
    GrantRow,
    NodeRef,
    QuotaRequest,
    RequestItem,
    RequestState,
    Reservation,
    ReservationState,
)

Segment = tuple[ResourceClass, Sequence[NodeRef]]


@dataclass(frozen=True)
class NewRequest:
    project: NodeRef
    cloud: CloudRef | None
    selector: CloudSelector | None
    items: tuple[RequestItem, ...]
    reason: str
    needed_by: date | None
    requested_by: str


@dataclass(frozen=True)
class RequestFilter:
    state: RequestState | None = None
    project: str | None = None
    cloud: str | None = None
    within: tuple[str, ...] | None = None  # org paths; None = everything
    limit: int = 100
    offset: int = 0


class QuotaStore(Protocol):
    # -- topology (read-only here) ------------------------------------------
    def cloud(self, code: str) -> CloudRef:
        """The cloud, or NotFoundError `cloud.not_found`."""
        ...

    def clouds(
        self, role: CloudRole | None = None, architecture: Architecture | None = None
    ) -> list[CloudRef]: ...

    def chain(self, code: str) -> list[NodeRef]:
        """The org node and its ancestors, root first; NotFoundError `org.not_found`."""
        ...

    def locate(self, cloud_code: str, node_code: str) -> tuple[CloudRef, list[NodeRef]]:
        """`cloud(cloud_code)` and `chain(node_code)` in one round trip."""
        ...

    # -- the grant trees --------------------------------------------------
    def lock_grants(
        self, cloud: CloudRef, segments: Sequence[Segment], *, create_top: bool = False
    ) -> list[list[GrantRow]]:
        """Lock the rows of each segment (nodes root → leaf) FOR UPDATE, all of
        them in the global order, and return them aligned with the segments.

        A missing top row comes back with `id=None` (a zero grant) unless
        `create_top`; missing rows below an existing top are created at zero
        under its lock. The pool row is the one at `cloud.owner_id`.
        """
        ...

    def will_lock(self, cloud: CloudRef, segments: Sequence[Segment]) -> None:
        """A hint: this transaction is about to `lock_grants` these rows. A
        store that runs many calls in one transaction may lock them together
        with the first rows it locks; any store may ignore it."""
        ...

    def save_grants(self, rows: Sequence[GrantRow], now: datetime) -> list[GrantRow]:
        """Write the sums (granted, allocated, consumed) and generation of locked rows."""
        ...

    def save_pool(self, row: GrantRow, now: datetime) -> GrantRow:
        """Write the capacity columns and generation of a locked pool row."""
        ...

    def grant_rows(
        self,
        cloud: CloudRef,
        resource_class: ResourceClass | None = None,
        within: tuple[str, ...] | None = None,
    ) -> list[GrantRow]:
        """Unlocked snapshot of a cloud's rows (views, invariant checks)."""
        ...

    def parents(self, node_ids: Sequence[int]) -> dict[int, int | None]: ...

    def usage(self, cloud: CloudRef, resource_class: ResourceClass, node: NodeRef) -> int:
        """Provider-observed usage summed over the projects in `node`'s subtree."""
        ...

    def set_usage(
        self,
        cloud: CloudRef,
        resource_class: ResourceClass,
        project: NodeRef,
        used: int,
        now: datetime,
    ) -> None: ...

    def live_reserved(self, cloud: CloudRef) -> dict[tuple[ResourceClass, int], int]:
        """Σ held + committed reservations per (class, project id): the ledger."""
        ...

    # -- requests ---------------------------------------------------------
    def add_request(self, new: NewRequest, now: datetime) -> QuotaRequest: ...

    def request(self, request_id: int, *, lock: bool = False) -> QuotaRequest:
        """NotFoundError `request.not_found` when absent."""
        ...

    def save_request(self, request: QuotaRequest) -> None: ...

    def requests(self, flt: RequestFilter) -> list[QuotaRequest]: ...

    def auto_approval(self, scope: NodeRef) -> AutoApprovalPolicy | None: ...

    def set_auto_approval(
        self, scope: NodeRef, limits: Mapping[ResourceClass, int] | None, actor: str, now: datetime
    ) -> None: ...

    # -- reservations -----------------------------------------------------
    def add_reservation(
        self,
        project: NodeRef,
        cloud: CloudRef,
        amounts: Mapping[ResourceClass, int],
        expires_at: datetime,
        created_by: str,
        now: datetime,
    ) -> Reservation: ...

    def reservation(self, reservation_id: int, *, lock: bool = False) -> Reservation: ...

    def lock_expired_reservations(self, now: datetime, limit: int) -> list[Reservation]: ...

    def set_reservation_state(
        self, reservation_id: int, state: ReservationState, now: datetime
    ) -> None: ...

    def reservations(
        self,
        *,
        project: str | None = None,
        state: ReservationState | None = None,
        within: tuple[str, ...] | None = None,
    ) -> list[Reservation]: ...

    # -- the outbox -------------------------------------------------------
    def emit(
        self, topic: str, aggregate_type: str, aggregate_id: str, payload: Mapping[str, Any]
    ) -> None:
        """Record an event in this transaction; relayed after commit."""
        ...
