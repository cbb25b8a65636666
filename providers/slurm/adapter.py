"""`SlurmProvider`: the provider port for a Slurm cluster behind slurmrestd (NSCC Changsha).

Built by `providers.registry` (`providers.slurm.adapter:SlurmProvider`) from a
cloud's connection `{kind: slurm, url, jwt_key_file, user, cluster?, slurm_conf?}`.

- A tenant is a Slurm account, `yg-<project code>`, under one account per
  ancestor in `TenantSpec.path` (province → prefecture → department), so
  slurmctld enforces every level of the grants.
- Quotas are the account association's GrpTRES / GrpTRESMins (`tres` has the
  table); `set_scope_quota` puts the same kind of limit on an ancestor, e.g.
  a prefecture's HPC grant, which then caps all its departments together.
- `retire_tenant` sets every managed limit to 0; accounts and jobs are never
  deleted by the adapter.

Beyond the port: `ensure_scope`, `set_scope_quota`, `read_scope_quota` for
org nodes above projects, `read_usage` for every account's usage in one
call, and `close`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import ValidationError

from controlplane.topology.model import SlurmConnection
from controlplane.vocabulary import CloudKind, ResourceClass
from providers.base import (
    CapacityReport,
    HealthReport,
    InventoryItem,
    ProviderNotFound,
    ProviderRejected,
    QuotaReading,
    TenantRef,
    TenantSpec,
    check_supported,
)
from providers.slurm import capacity, health, inventory
from providers.slurm.client import SlurmRestClient
from providers.slurm.commands import SlurmCommands
from providers.slurm.naming import account_name
from providers.slurm.quotas import Quotas
from providers.slurm.session import SlurmSession
from providers.slurm.tenants import Tenants
from providers.slurm.tokens import KeyFileTokens
from providers.slurm.tres import SUPPORTED


class SlurmProvider:
    kind: CloudKind = CloudKind.SLURM

    def __init__(self, session: SlurmSession) -> None:
        self.cloud = session.cloud
        self._session = session
        self._tenants = Tenants(session)
        self._quotas = Quotas(session, self._tenants)

    @classmethod
    def from_connection(
        cls, cloud: str, connection: Mapping[str, Any], *, timeout: float
    ) -> SlurmProvider:
        """No I/O here: the first call talks to Slurm (and discovers the cluster
        name when the connection does not give one)."""
        try:
            conn = SlurmConnection.model_validate(dict(connection))
        except ValidationError as exc:
            raise ProviderRejected(f"bad slurm connection: {exc}", cloud=cloud) from exc
        tokens = KeyFileTokens(conn.jwt_key_file, conn.user, cloud=cloud)
        rest = SlurmRestClient(conn.url, conn.user, tokens, cloud=cloud, timeout=timeout)
        cli = SlurmCommands(cloud=cloud, timeout=timeout, tokens=tokens, slurm_conf=conn.slurm_conf)
        return cls(SlurmSession(cloud=cloud, rest=rest, cli=cli, configured_cluster=conn.cluster))

    def close(self) -> None:
        self._session.rest.close()

    # -- the port ------------------------------------------------------------------

    def supported_classes(self) -> frozenset[ResourceClass]:
        return SUPPORTED

    def check_health(self) -> HealthReport:
        return health.check_health(self._session)

    def ensure_tenant(self, spec: TenantSpec) -> TenantRef:
        """Converges the account chain for `spec.path` (the project last; when
        the path stops above the project, `spec.key` is appended) and the
        project's user associations. A new project account starts without
        limits of its own (its ancestors' still apply) until `set_quota`."""
        codes = _chain(spec.path, spec.key)
        chain = self._tenants.ensure_chain(codes, spec.name or spec.description or spec.key)
        account = chain.names[-1]
        self._tenants.ensure_users(account, spec.users, known=chain.leaf_associations)
        return TenantRef(key=spec.key, provider_id=account)

    def set_quota(self, tenant: TenantRef, limits: Mapping[ResourceClass, int]) -> None:
        check_supported(self, limits)
        self._quotas.set_limits(tenant.provider_id, limits)

    def read_quota(self, tenant: TenantRef) -> QuotaReading:
        return self._quotas.read(tenant.provider_id)

    def read_capacity(self) -> CapacityReport:
        return capacity.read_capacity(self._session)

    def list_inventory(self, tenant: TenantRef | None = None) -> tuple[InventoryItem, ...]:
        return inventory.list_jobs(self._session, tenant.provider_id if tenant else None)

    def retire_tenant(self, tenant: TenantRef) -> None:
        """Limits to 0 so nothing new starts; running jobs finish; nothing is
        deleted. An account that is already gone is retired enough."""
        try:
            self._quotas.zero_all(tenant.provider_id)
        except ProviderNotFound:
            return

    # -- beyond the port: org nodes above the projects ------------------------------

    def ensure_scope(self, path: Sequence[str]) -> TenantRef:
        """The account of the org node `path[-1]` (e.g. ("hunan", "changsha")
        for the Changsha prefecture), created with its ancestors if missing."""
        chain = self._tenants.ensure_chain(list(path), path[-1] if path else "")
        return TenantRef(key=path[-1], provider_id=chain.names[-1])

    def set_scope_quota(
        self, path: Sequence[str], limits: Mapping[ResourceClass, int]
    ) -> TenantRef:
        """Limits on an ancestor account, e.g. a prefecture's whole HPC grant:
        slurmctld holds the sum over all its departments and projects to it,
        so a job that fits its project's grant still pends (AssocGrp*Limit)
        when the prefecture's is used up. Same classes and overwrite rule as
        `set_quota`; ensures the accounts of `path` first."""
        check_supported(self, limits)
        scope = self.ensure_scope(path)
        self._quotas.set_limits(scope.provider_id, limits)
        return scope

    def read_scope_quota(self, path: Sequence[str]) -> QuotaReading:
        """Limits of an org node's account and what its whole subtree uses."""
        if not path:
            raise ProviderRejected("an empty org path has no Slurm account", cloud=self.cloud)
        return self._quotas.read(account_name(path[-1]))

    def read_usage(self) -> Mapping[str, Mapping[ResourceClass, int]]:
        """{account: usage} summed over every RUNNING job, in one REST call."""
        return inventory.usage_by_account(self._session)


def _chain(path: Sequence[str], key: str) -> list[str]:
    codes = list(path)
    if not codes or codes[-1] != key:
        codes.append(key)
    return codes
