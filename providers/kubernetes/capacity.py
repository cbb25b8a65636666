"""Cluster capacity per resource class and CPU architecture, and what Yunguan's tenants hold.

Called by the adapter's `read_capacity` (a periodic snapshot; the metrics are
served from the stored snapshot, never from here).

Totals: Σ `status.allocatable` of the schedulable nodes (workloads.py says
which), per architecture (`kubernetes.io/arch`), for vcpu (`cpu`), memory_mib
(`memory`), pods and gpu (the cluster's GPU resource, only for architectures
where some node offers it). Allocatable is what the kubelet leaves after its
own and the system's reservations, so `reserved` stays 0; the overcommit of
the cloud is Yunguan's topology, not the cluster's, so `allocation_ratio`
stays 1. Totals are summed exactly and then floored (never claim capacity
that is not there). disk_gib has no entry: claim storage is sized by the
storage backend behind the storage classes, not by nodes.

Used: what Yunguan's tenants hold, i.e. Σ `status.used` of the `yunguan`
ResourceQuota in every Yunguan namespace (the requests keys: what occupies
nodes, not the limits). Quota usage has no architecture, so it is split by
where the counted pods are: bound to a node (`spec.nodeName`), else pinned by
`nodeSelector kubernetes.io/arch`; pods bound to nodes outside the counted set
(cordoned, or outside the node selector) do not use this capacity; whatever is
neither placed nor accounted for (pending pods that any architecture could
take) is reported on the architecture with the largest total for that
class. Each share is rounded up. Workloads outside Yunguan's namespaces
(kube-system, other platforms) are not in `used`: it is the tenants' share,
not node utilisation.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from datetime import UTC, datetime
from fractions import Fraction

from kubernetes.client import V1Node, V1Pod, V1ResourceQuota

from controlplane.vocabulary import Architecture, ResourceClass
from providers.base import CapacityEntry, CapacityReport
from providers.kubernetes.client import KubeClient
from providers.kubernetes.mapping import QuotaTable
from providers.kubernetes.naming import QUOTA_NAME
from providers.kubernetes.quantities import ceil_units, floor_units, parse_value
from providers.kubernetes.workloads import (
    node_allocatable,
    node_architecture,
    node_schedulable,
    pod_live,
    pod_pinned_architecture,
    pod_requests,
)

Key = tuple[ResourceClass, Architecture]


def node_totals(
    nodes: list[V1Node], table: QuotaTable
) -> tuple[dict[Key, Fraction], dict[str, Architecture]]:
    """Exact allocatable per (class, arch) of the schedulable nodes, and the arch of each."""
    totals: dict[Key, Fraction] = defaultdict(Fraction)
    counted: dict[str, Architecture] = {}
    for node in nodes:
        name = node.metadata.name if node.metadata else None
        if not name or not node_schedulable(node):
            continue
        arch = node_architecture(node)
        if arch is None:
            continue
        counted[name] = arch
        allocatable = node_allocatable(node)
        for rc, (resource, _) in table.node_resources().items():
            if resource in allocatable:
                totals[(rc, arch)] += allocatable[resource]
            elif rc is not ResourceClass.GPU:
                totals[(rc, arch)] += 0  # cpu/memory/pods entries exist for every arch
    return totals, counted


def quota_usage(
    quotas: list[V1ResourceQuota], namespaces: set[str], table: QuotaTable
) -> dict[ResourceClass, Fraction]:
    """Σ status.used of the requests keys over the `yunguan` quotas of `namespaces`."""
    usage: dict[ResourceClass, Fraction] = defaultdict(Fraction)
    for quota in quotas:
        if not quota.metadata or quota.metadata.namespace not in namespaces:
            continue
        used = (quota.status.used if quota.status else None) or {}
        for rc in table.node_resources():
            key = table.requested(rc).name
            if key in used:
                usage[rc] += parse_value(used[key])
    return usage


def split_usage(
    usage: Mapping[ResourceClass, Fraction],
    pods: list[V1Pod],
    namespaces: set[str],
    totals: Mapping[Key, Fraction],
    counted: Mapping[str, Architecture],
    table: QuotaTable,
) -> dict[Key, int]:
    """Quota usage per (class, arch), by where the counted pods are (module docstring)."""
    placed: dict[Key, Fraction] = defaultdict(Fraction)
    accounted: dict[ResourceClass, Fraction] = defaultdict(Fraction)
    resources = table.node_resources()
    for pod in pods:
        if not pod.metadata or pod.metadata.namespace not in namespaces or not pod_live(pod):
            continue
        node = pod.spec.node_name if pod.spec else None
        # Bound: its node's arch, or None for a node we do not count (its
        # usage is accounted for, but not on this capacity). Unbound: pinned
        # by nodeSelector, or left for the remainder.
        arch = counted.get(node) if node else pod_pinned_architecture(pod)
        if not node and arch is None:
            continue
        requests = pod_requests(pod)
        for rc, (resource, _) in resources.items():
            amount = (
                Fraction(1) if rc is ResourceClass.PODS else requests.get(resource, Fraction(0))
            )
            accounted[rc] += amount
            if arch is not None and (rc, arch) in totals:
                placed[(rc, arch)] += amount
    shares: dict[Key, Fraction] = dict(placed)
    for rc, total_used in usage.items():
        remainder = total_used - accounted[rc]
        arches = [(amount, arch) for (c, arch), amount in totals.items() if c is rc]
        if remainder > 0 and arches:
            largest = max(arches)[1]
            shares[(rc, largest)] = shares.get((rc, largest), Fraction(0)) + remainder
    return {key: ceil_units(amount, resources[key[0]][1]) for key, amount in shares.items()}


def build_report(
    totals: Mapping[Key, Fraction], used: Mapping[Key, int], table: QuotaTable
) -> CapacityReport:
    units = table.node_resources()
    entries = [
        CapacityEntry(
            resource_class=rc,
            architecture=arch,
            total=floor_units(amount, units[rc][1]),
            used=used.get((rc, arch), 0),
        )
        for (rc, arch), amount in sorted(totals.items())
    ]
    return CapacityReport(entries=tuple(entries), observed_at=datetime.now(UTC))


class Capacity:
    """Fetches nodes, quotas and pods; the arithmetic is in the pure functions above."""

    def __init__(self, client: KubeClient, table: QuotaTable, node_selector: str | None) -> None:
        self._client = client
        self._table = table
        self._node_selector = node_selector

    def read(self, namespaces: list[str]) -> CapacityReport:
        """Capacity of the counted nodes; `namespaces` are Yunguan's tenants."""
        core, wanted = self._client.core, set(namespaces)
        with self._client.errors("list nodes"):
            nodes = core.list_node(label_selector=self._node_selector).items or []
        totals, counted = node_totals(nodes, self._table)
        used: dict[Key, int] = {}
        if wanted and totals:
            with self._client.errors("list Yunguan quotas and pods"):
                quotas = core.list_resource_quota_for_all_namespaces(
                    field_selector=f"metadata.name={QUOTA_NAME}"
                ).items
                # Finished pods free their share; the quota does not count them either.
                pods = core.list_pod_for_all_namespaces(
                    field_selector="status.phase!=Succeeded,status.phase!=Failed"
                ).items
            usage = quota_usage(quotas or [], wanted, self._table)
            used = split_usage(usage, pods or [], wanted, totals, counted, self._table)
        return build_report(totals, used, self._table)
