"""`KubernetesProvider`: the provider port for Kubernetes clouds (the AI training centre,
the container platforms of the Xinchuang and prefecture clouds).

Built by `providers.registry.build_provider` from a cloud's connection
reference `{kind: kubernetes, context: CONTEXT, kubeconfig: PATH?}`. The verbs
are thin: each module of this package owns one operation family.

    tenant    = a namespace `yg-<key>` labelled with Yunguan's ids   tenants.py, naming.py
    quota     = ResourceQuota `yunguan` (server-side apply)          quotas.py, mapping.py
    defaults  = LimitRange `yunguan-defaults`                        tenants.py
    capacity  = Σ allocatable of schedulable nodes, per arch         capacity.py
    inventory = pods and claims of the tenant namespaces             inventory.py
    health    = /version, /readyz, a rights review                   health.py
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from controlplane.vocabulary import CloudKind, ResourceClass
from providers.base import (
    CapacityReport,
    HealthReport,
    InventoryItem,
    ProviderRejected,
    QuotaReading,
    TenantRef,
    TenantSpec,
    check_supported,
)
from providers.kubernetes.capacity import Capacity
from providers.kubernetes.client import KubeClient, connect
from providers.kubernetes.health import check_health
from providers.kubernetes.inventory import Inventory
from providers.kubernetes.mapping import DEFAULT_GPU_RESOURCE, QuotaTable
from providers.kubernetes.quotas import DEFAULT_SYNC_TIMEOUT_S, Quotas
from providers.kubernetes.tenants import ContainerDefaults, Tenants


class KubernetesProvider:
    kind = CloudKind.KUBERNETES

    def __init__(
        self,
        cloud: str,
        client: KubeClient,
        *,
        gpu_resource: str = DEFAULT_GPU_RESOURCE,
        node_selector: str | None = None,
        container_defaults: ContainerDefaults | None = None,
        quota_sync_timeout: float = DEFAULT_SYNC_TIMEOUT_S,
    ) -> None:
        """`node_selector` (a label selector) limits capacity to a dedicated node pool;
        `gpu_resource` is the extended resource the cluster's GPUs are offered as."""
        self.cloud = cloud
        self._client = client
        self._table = QuotaTable(gpu_resource=gpu_resource)
        self._quotas = Quotas(client, self._table, sync_timeout=quota_sync_timeout)
        self._tenants = Tenants(client, self._quotas, container_defaults or ContainerDefaults())
        self._capacity = Capacity(client, self._table, node_selector)
        self._inventory = Inventory(client, self._table)

    @classmethod
    def from_connection(
        cls, cloud: str, connection: Mapping[str, Any], *, timeout: float
    ) -> KubernetesProvider:
        if connection.get("kind", "kubernetes") != "kubernetes":
            raise ProviderRejected(
                f"not a kubernetes connection: kind {connection.get('kind')!r}", cloud=cloud
            )
        context = connection.get("context")
        if not isinstance(context, str) or not context:
            raise ProviderRejected("kubernetes connection needs a context", cloud=cloud)
        kubeconfig = connection.get("kubeconfig")
        client = connect(
            kubeconfig if isinstance(kubeconfig, str) else None,
            context,
            cloud=cloud,
            timeout=timeout,
        )
        return cls(cloud, client)

    def close(self) -> None:
        """Drop pooled connections (the workers build one provider per cloud and keep it)."""
        self._client.close()

    # -- the port ---------------------------------------------------------------

    def supported_classes(self) -> frozenset[ResourceClass]:
        return self._table.classes

    def check_health(self) -> HealthReport:
        return check_health(self._client)

    def ensure_tenant(self, spec: TenantSpec) -> TenantRef:
        return self._tenants.ensure(spec)

    def set_quota(self, tenant: TenantRef, limits: Mapping[ResourceClass, int]) -> None:
        check_supported(self, limits)
        namespace = self._tenants.namespace_of(tenant)
        if limits:
            self._quotas.set(namespace, limits)

    def read_quota(self, tenant: TenantRef) -> QuotaReading:
        return self._quotas.read(self._tenants.namespace_of(tenant))

    def read_capacity(self) -> CapacityReport:
        return self._capacity.read(self._tenants.managed_namespaces())

    def list_inventory(self, tenant: TenantRef | None = None) -> tuple[InventoryItem, ...]:
        if tenant is not None:
            namespace = self._tenants.namespace_of(tenant)
            return self._inventory.items([namespace], one_namespace=True)
        return self._inventory.items(self._tenants.managed_namespaces(), one_namespace=False)

    def retire_tenant(self, tenant: TenantRef) -> None:
        self._tenants.retire(tenant)
