"""THE provider port: what Yunguan asks of every cloud, whatever it runs.

Every adapter (`providers.openstack`, `providers.kubernetes`, `providers.slurm`)
implements `CloudProvider` and passes the one contract suite in
`tests/contract/` against the real service. Verbs are idempotent and
level-triggered: `ensure_` converges and returns, `set_` overwrites exactly
the keys Yunguan manages, `read_`/`list_` have no side effects, and
`check_health` reports "down" instead of raising. The core says *tenant*;
provider words (project, namespace, account, QOS) stay inside the adapters.

Errors: every SDK or HTTP error is translated at the adapter boundary into
this tree and chained (`raise ProviderRejected(...) from exc`)::

    ProviderError                       code                      retry?
     ├── ProviderUnavailable            provider.unavailable      yes (back off)
     ├── ProviderRateLimited            provider.rate_limited     yes (after retry_after)
     ├── ProviderAuthError              provider.auth             no
     ├── ProviderRejected               provider.rejected         no  (provider's message kept)
     ├── ProviderNotFound               provider.not_found        no
     └── UnsupportedResourceClass       provider.unsupported      no
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar, Protocol, TypeVar, runtime_checkable

from controlplane.vocabulary import Architecture, CloudKind, ResourceClass

T = TypeVar("T")
R = TypeVar("R")

# -- errors -------------------------------------------------------------------


class ProviderError(Exception):
    """Base of every error an adapter raises; `retryable` drives the workers."""

    code: ClassVar[str] = "provider.error"
    retryable: ClassVar[bool] = False

    def __init__(self, message: str, *, cloud: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.cloud = cloud

    def __str__(self) -> str:
        return f"{self.cloud}: {self.message}" if self.cloud else self.message


class ProviderUnavailable(ProviderError):
    """Unreachable, timed out, or answered 5xx: try again later."""

    code = "provider.unavailable"
    retryable = True


class ProviderRateLimited(ProviderError):
    code = "provider.rate_limited"
    retryable = True

    def __init__(self, message: str, *, cloud: str | None = None, retry_after: float = 5.0):
        super().__init__(message, cloud=cloud)
        self.retry_after = retry_after


class ProviderAuthError(ProviderError):
    """Our credentials are wrong or lack the rights: an admin must act."""

    code = "provider.auth"


class ProviderRejected(ProviderError):
    """The provider understood and refused (e.g. a quota below current usage)."""

    code = "provider.rejected"


class ProviderNotFound(ProviderError):
    code = "provider.not_found"


class UnsupportedResourceClass(ProviderError):
    """Asked to enforce a class this kind of cloud has no quota for; never dropped silently."""

    code = "provider.unsupported"


# -- values -------------------------------------------------------------------


@dataclass(frozen=True)
class TenantSpec:
    """What a tenant should be. `path` is the org chain from the province down
    to the project (e.g. ("hunan", "changsha", "cs-data", "cs-data-portal")):
    Slurm mirrors it as parent accounts, OpenStack uses its second element to
    pick the owning domain, Kubernetes labels the namespace with it."""

    key: str  # the project's code: unique, stable, the idempotency key
    name: str
    path: tuple[str, ...]
    description: str = ""
    users: tuple[str, ...] = ()  # department users to give membership, when known

    @property
    def department(self) -> str:
        return self.path[-2] if len(self.path) >= 2 else ""

    @property
    def owning_scope(self) -> str:
        """The province or the prefecture the project lies in."""
        return self.path[1] if len(self.path) >= 4 else self.path[0]


@dataclass(frozen=True)
class TenantRef:
    key: str  # Yunguan's project code
    provider_id: str  # project id, namespace name, account name


@dataclass(frozen=True)
class QuotaReading:
    """Limits (None = unlimited) and in-use, for the classes this adapter manages."""

    limits: Mapping[ResourceClass, int | None]
    in_use: Mapping[ResourceClass, int]


@dataclass(frozen=True)
class CapacityEntry:
    resource_class: ResourceClass
    architecture: Architecture | None  # None where the class has no architecture
    total: int
    reserved: int = 0
    allocation_ratio: float = 1.0
    used: int = 0

    @property
    def allocatable(self) -> int:
        return int((self.total - self.reserved) * self.allocation_ratio)


@dataclass(frozen=True)
class CapacityReport:
    entries: tuple[CapacityEntry, ...]
    observed_at: datetime


@dataclass(frozen=True)
class InventoryItem:
    kind: str  # "server", "volume", "pod", "pvc", "job"
    id: str
    name: str
    tenant: str | None  # provider_id of the owning tenant
    status: str
    running: bool  # counts as a live workload (migration acceptance evidence)
    flavor: str | None = None
    architecture: Architecture | None = None
    resources: Mapping[ResourceClass, int] = field(default_factory=dict)


@dataclass(frozen=True)
class HealthReport:
    up: bool
    latency_ms: float
    detail: str = ""
    checks: Mapping[str, str] = field(default_factory=dict)


# -- the port -----------------------------------------------------------------


@runtime_checkable
class CloudProvider(Protocol):
    kind: CloudKind
    cloud: str  # the Yunguan cloud code, for messages and metrics

    def supported_classes(self) -> frozenset[ResourceClass]: ...

    def check_health(self) -> HealthReport: ...

    def ensure_tenant(self, spec: TenantSpec) -> TenantRef: ...

    def set_quota(self, tenant: TenantRef, limits: Mapping[ResourceClass, int]) -> None: ...

    def read_quota(self, tenant: TenantRef) -> QuotaReading: ...

    def read_capacity(self) -> CapacityReport: ...

    def list_inventory(self, tenant: TenantRef | None = None) -> tuple[InventoryItem, ...]: ...

    def retire_tenant(self, tenant: TenantRef) -> None: ...


QuotaReadings = Mapping[TenantRef, QuotaReading | ProviderError]


@runtime_checkable
class BulkQuotaReader(Protocol):
    """Optional: providers that read many tenants' quotas in fewer calls than one
    `read_quota` each (list endpoints, one usage listing for the whole cloud).

    Returns an entry for every tenant given: what `read_quota(tenant)` would
    return, or the permanent error only that tenant hit (gone, not this
    cloud's) — the contract suite checks the equality. Raises what the cloud as
    a whole answers (`ProviderUnavailable`, `ProviderRateLimited`, an auth
    error on a listing): then no reading can be trusted. `parallel` bounds the
    requests in flight at once."""

    def read_quotas(self, tenants: Sequence[TenantRef], *, parallel: int) -> QuotaReadings: ...


@runtime_checkable
class ScopedQuotaProvider(Protocol):
    """Optional: providers whose tenants nest (Slurm accounts) enforce the upper
    levels of the grant tree themselves. `path` is the org chain down to the
    scope (e.g. ("hunan", "changsha")); same classes and overwrite rule as
    `set_quota`."""

    def set_scope_quota(
        self, path: Sequence[str], limits: Mapping[ResourceClass, int]
    ) -> TenantRef: ...


def check_supported(
    provider: CloudProvider, limits: Mapping[ResourceClass, int]
) -> None:
    """Raises UnsupportedResourceClass naming every class the provider lacks."""
    missing = sorted(set(limits) - provider.supported_classes())
    if missing:
        names = ", ".join(m.value for m in missing)
        raise UnsupportedResourceClass(
            f"{provider.kind.value} cloud has no quota for {names}", cloud=provider.cloud
        )
    negative = sorted(k.value for k, v in limits.items() if v < 0)
    if negative:
        raise ProviderRejected(f"negative limits for {', '.join(negative)}", cloud=provider.cloud)


def read_quotas(
    provider: CloudProvider, tenants: Sequence[TenantRef], *, parallel: int
) -> QuotaReadings:
    """Every tenant's reading, as `BulkQuotaReader.read_quotas` promises: the
    provider's own bulk read when it has one, else `read_quota` per tenant,
    `parallel` at a time."""
    if isinstance(provider, BulkQuotaReader):
        return provider.read_quotas(tenants, parallel=parallel)
    return fan_out(provider.read_quota, tenants, parallel)


def fan_out(fn: Callable[[T], R], items: Sequence[T], parallel: int) -> dict[T, R | ProviderError]:
    """`fn` over `items`, `parallel` at a time, in the items' order. A permanent
    ProviderError becomes that item's value; the first retryable one (or any
    other exception) cancels what has not started and is raised: the cloud is
    down, and the other answers would not make the result whole."""
    out: dict[T, R | ProviderError] = {}

    def guarded(item: T) -> None:
        try:
            out[item] = fn(item)
        except ProviderError as exc:
            if exc.retryable:
                raise
            out[item] = exc

    if not items:
        return {}
    with ThreadPoolExecutor(max_workers=max(1, min(parallel, len(items)))) as pool:
        futures = [pool.submit(guarded, item) for item in items]
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        for f in futures:
            f.cancel()
        error = next((e for f in done if (e := f.exception()) is not None), None)
        if error is not None:
            raise error
    return {item: out[item] for item in items}
