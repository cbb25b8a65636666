"""The one mapping table between Yunguan's canonical units and Kubernetes quota keys.

Used by quotas.py (writing and reading the `yunguan` ResourceQuota) and
capacity.py (node allocatable). Nothing else in Yunguan knows that a vCPU is
`requests.cpu` or that memory is counted in bytes.

| canonical  | ResourceQuota keys written               | per unit        | read back from       |
|------------|------------------------------------------|-----------------|----------------------|
| vcpu       | requests.cpu, limits.cpu                 | 1 core          | both (see rounding)  |
| memory_mib | requests.memory, limits.memory           | 2**20 bytes     | both                 |
| disk_gib   | requests.storage, persistentvolumeclaims | 2**30 bytes; 1  | requests.storage     |
| gpu        | requests.<gpu> (nvidia.com/gpu)          | 1 device        | requests.<gpu>       |
| pods       | pods                                     | 1 pod           | pods                 |

Rounding, because Kubernetes counts in millicores and bytes and Yunguan in
whole units: a *limit* read back is floored (we never report more than the
apiserver enforces), *usage* is rounded up (1500m used is 2 vCPU: a started
unit is taken). Limits Yunguan writes are integers, so they read back exactly.
Where two keys carry one class (requests.cpu and limits.cpu), the limit read
is the smaller and the usage the larger, since whichever is tighter is what
refuses the next pod.

`persistentvolumeclaims` has no canonical class. It is derived from disk_gib
(one claim per GiB granted): it bounds the number of claim objects a tenant
can create when tiny claims would not dent requests.storage, and it drops to
zero with the storage grant, which is what retiring a tenant needs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from controlplane.vocabulary import ResourceClass
from providers.kubernetes.quantities import (
    QuantityFormat,
    ceil_units,
    floor_units,
    format_quantity,
    parse_value,
)

DEFAULT_GPU_RESOURCE = "nvidia.com/gpu"
MIB = 2**20
GIB = 2**30


@dataclass(frozen=True)
class QuotaKey:
    """One ResourceQuota key: `per_unit` quantity units per canonical unit."""

    name: str
    per_unit: int
    fmt: QuantityFormat
    read: bool = True  # False for derived keys, written but never read back


@dataclass(frozen=True)
class QuotaTable:
    """The canonical <-> ResourceQuota mapping for one cluster (its GPU resource name)."""

    gpu_resource: str = DEFAULT_GPU_RESOURCE

    def keys(self, rc: ResourceClass) -> tuple[QuotaKey, ...]:
        decimal, binary = QuantityFormat.DECIMAL_SI, QuantityFormat.BINARY_SI
        table: dict[ResourceClass, tuple[QuotaKey, ...]] = {
            ResourceClass.VCPU: (
                QuotaKey("requests.cpu", 1, decimal),
                QuotaKey("limits.cpu", 1, decimal),
            ),
            ResourceClass.MEMORY_MIB: (
                QuotaKey("requests.memory", MIB, binary),
                QuotaKey("limits.memory", MIB, binary),
            ),
            ResourceClass.DISK_GIB: (
                QuotaKey("requests.storage", GIB, binary),
                QuotaKey("persistentvolumeclaims", 1, decimal, read=False),
            ),
            ResourceClass.GPU: (QuotaKey(f"requests.{self.gpu_resource}", 1, decimal),),
            ResourceClass.PODS: (QuotaKey("pods", 1, decimal),),
        }
        return table[rc]

    @property
    def classes(self) -> frozenset[ResourceClass]:
        return frozenset(
            {
                ResourceClass.VCPU,
                ResourceClass.MEMORY_MIB,
                ResourceClass.DISK_GIB,
                ResourceClass.GPU,
                ResourceClass.PODS,
            }
        )

    @property
    def all_keys(self) -> frozenset[str]:
        """Every ResourceQuota key Yunguan owns; any other key belongs to someone else."""
        return frozenset(k.name for rc in self.classes for k in self.keys(rc))

    def to_hard(self, limits: Mapping[ResourceClass, int]) -> dict[str, str]:
        """Canonical limits -> `spec.hard` entries, spelled canonically."""
        hard: dict[str, str] = {}
        for rc, amount in limits.items():
            for key in self.keys(rc):
                hard[key.name] = format_quantity(amount * key.per_unit, key.fmt)
        return hard

    def read_limits(self, hard: Mapping[str, str]) -> dict[ResourceClass, int | None]:
        """`spec.hard` -> canonical limits; None where no key of the class is set."""
        limits: dict[ResourceClass, int | None] = {}
        for rc in self.classes:
            values = [
                floor_units(parse_value(hard[k.name]), k.per_unit)
                for k in self.keys(rc)
                if k.read and k.name in hard
            ]
            limits[rc] = min(values) if values else None
        return limits

    def read_usage(self, used: Mapping[str, str]) -> dict[ResourceClass, int]:
        """`status.used` -> canonical usage, rounded up; 0 where nothing is reported."""
        usage: dict[ResourceClass, int] = {}
        for rc in self.classes:
            values = [
                ceil_units(parse_value(used[k.name]), k.per_unit)
                for k in self.keys(rc)
                if k.read and k.name in used
            ]
            usage[rc] = max(values, default=0)
        return usage

    def requested(self, rc: ResourceClass) -> QuotaKey:
        """The quota key counting what a class occupies on nodes: its requests key."""
        return self.keys(rc)[0]

    def node_resources(self) -> dict[ResourceClass, tuple[str, int]]:
        """Class -> (name in Node allocatable and container requests, units per canonical unit).

        disk_gib has none: claim storage comes from storage classes, not nodes.
        """
        return {
            ResourceClass.VCPU: ("cpu", 1),
            ResourceClass.MEMORY_MIB: ("memory", MIB),
            ResourceClass.PODS: ("pods", 1),
            ResourceClass.GPU: (self.gpu_resource, 1),
        }
