"""What runs in Yunguan's namespaces: pods and persistent volume claims.

Called by the adapter's `list_inventory`, which feeds reconciliation and the
migration ledger's acceptance evidence ("is the migrated system live on the
cloud?"). Hence `running`:

- a pod is running when its phase is Running. Pending pods (unscheduled, or
  pulling images) are not: they prove nothing yet. On the kubelet-less
  testbed every pod stays Pending;
- a claim is "running" when Bound: the storage exists and holds the data.

Resources are the pod's requests (containers, init containers, overhead; see
workloads.py) and the claim's requested storage, in canonical units rounded
up, like quota usage.
"""

from __future__ import annotations

from kubernetes.client import V1PersistentVolumeClaim, V1Pod

from controlplane.vocabulary import Architecture, ResourceClass
from providers.base import InventoryItem
from providers.kubernetes.client import KubeClient
from providers.kubernetes.mapping import GIB, QuotaTable
from providers.kubernetes.quantities import ceil_units, parse_value
from providers.kubernetes.workloads import (
    node_architecture,
    pod_pinned_architecture,
    pod_requests,
)


class Inventory:
    def __init__(self, client: KubeClient, table: QuotaTable) -> None:
        self._client = client
        self._table = table

    def items(self, namespaces: list[str], *, one_namespace: bool) -> tuple[InventoryItem, ...]:
        """Pods and claims of `namespaces`; one namespace is listed directly,
        several with one cluster-wide list each, filtered here."""
        wanted = set(namespaces)
        if not wanted:
            return ()
        core = self._client.core
        with self._client.errors("list tenant pods and claims"):
            if one_namespace:
                (namespace,) = namespaces
                pods = core.list_namespaced_pod(namespace).items or []
                claims = core.list_namespaced_persistent_volume_claim(namespace).items or []
            else:
                pods = core.list_pod_for_all_namespaces().items or []
                claims = core.list_persistent_volume_claim_for_all_namespaces().items or []
            arches = self._node_architectures(pods)
        items = [self._pod(p, arches) for p in pods if _namespace(p) in wanted]
        items += [self._claim(c) for c in claims if _namespace(c) in wanted]
        return tuple(sorted(items, key=lambda i: (i.tenant or "", i.kind, i.name)))

    def _node_architectures(self, pods: list[V1Pod]) -> dict[str, Architecture | None]:
        if not any(p.spec and p.spec.node_name for p in pods):
            return {}  # nothing is bound: spare the node list
        nodes = self._client.core.list_node().items or []
        return {
            n.metadata.name: node_architecture(n) for n in nodes if n.metadata and n.metadata.name
        }

    def _pod(self, pod: V1Pod, arches: dict[str, Architecture | None]) -> InventoryItem:
        meta, spec, status = pod.metadata, pod.spec, pod.status
        node = spec.node_name if spec else None
        arch = arches.get(node) if node else pod_pinned_architecture(pod)
        phase = (status.phase if status else None) or "Unknown"
        requests = pod_requests(pod)
        resources: dict[ResourceClass, int] = {}
        for rc, (resource, unit) in self._table.node_resources().items():
            if rc is ResourceClass.PODS:
                continue
            amount = requests.get(resource)
            if amount:
                resources[rc] = ceil_units(amount, unit)
        return InventoryItem(
            kind="pod",
            id=(meta.uid if meta else None) or "",
            name=(meta.name if meta else None) or "",
            tenant=_namespace(pod),
            status=phase,
            running=phase == "Running",
            flavor=None,
            architecture=arch,
            resources=resources,
        )

    def _claim(self, claim: V1PersistentVolumeClaim) -> InventoryItem:
        meta, spec, status = claim.metadata, claim.spec, claim.status
        phase = (status.phase if status else None) or "Unknown"
        requested = ((spec.resources.requests if spec and spec.resources else None) or {}).get(
            "storage"
        )
        resources = (
            {ResourceClass.DISK_GIB: ceil_units(parse_value(requested), GIB)} if requested else {}
        )
        return InventoryItem(
            kind="pvc",
            id=(meta.uid if meta else None) or "",
            name=(meta.name if meta else None) or "",
            tenant=_namespace(claim),
            status=phase,
            running=phase == "Bound",
            flavor=spec.storage_class_name if spec else None,
            architecture=None,
            resources=resources,
        )


def _namespace(obj: V1Pod | V1PersistentVolumeClaim) -> str | None:
    return obj.metadata.namespace if obj.metadata else None
