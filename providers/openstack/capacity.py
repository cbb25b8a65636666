"""Capacity from Placement: inventories and usages per resource class and architecture.

For every resource provider: its inventories (total, reserved,
allocation_ratio), its usages, and its traits. The CPU architecture comes
from an `HW_ARCH_*` trait (os-traits names the ones Nova knows, e.g.
`HW_ARCH_X86_64`, `HW_ARCH_AARCH64`, `HW_ARCH_MIPS64EL`); architectures
os-traits lacks (Loongson's loongarch64, Sunway's sw_64) can only be custom
traits in Placement, so `CUSTOM_HW_ARCH_<ARCH>` counts too. A nested provider
(a GPU under a compute node) inherits its root's architecture. A provider with
no such trait reports architecture None, as does disk, which has none.

Entries are summed per (class, architecture, allocation ratio): providers with
different ratios stay apart, so `allocatable` remains exact. Called by the
adapter's read_capacity, which runs in the background collector, never in a
metrics scrape (one request per provider and item: minutes on a large cloud).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from controlplane.vocabulary import Architecture, ResourceClass
from providers.base import CapacityEntry, CapacityReport
from providers.openstack.connection import CloudSession, Service

PLACEMENT_MICROVERSION = "1.18"  # usages (1.9), root_provider_uuid (1.14)

# Placement resource class -> Yunguan's; Placement counts memory in MiB already.
CLASSES: dict[str, ResourceClass] = {
    "VCPU": ResourceClass.VCPU,
    "MEMORY_MB": ResourceClass.MEMORY_MIB,
    "DISK_GB": ResourceClass.DISK_GIB,
    "VGPU": ResourceClass.GPU,
    "PGPU": ResourceClass.GPU,
}
WITHOUT_ARCHITECTURE = frozenset({ResourceClass.DISK_GIB})


def architecture_of(traits: Iterable[str]) -> Architecture | None:
    """HW_ARCH_AARCH64 or CUSTOM_HW_ARCH_LOONGARCH64 -> Architecture; None if absent."""
    for trait in traits:
        name = trait.removeprefix("CUSTOM_")
        if not name.startswith("HW_ARCH_"):
            continue
        try:
            return Architecture(name.removeprefix("HW_ARCH_").lower())
        except ValueError:
            continue  # an architecture Yunguan does not manage (e.g. PPC64LE)
    return None


@dataclass(frozen=True)
class Provider:
    uuid: str
    name: str
    root: str
    architecture: Architecture | None


class Placement:
    def __init__(self, session: CloudSession) -> None:
        self._s = session

    def report(self) -> CapacityReport:
        providers = self.providers()
        sums: dict[tuple[ResourceClass, Architecture | None, float], list[int]] = defaultdict(
            lambda: [0, 0, 0]
        )
        for rp in providers.values():
            inventories = self._get(
                f"/resource_providers/{rp.uuid}/inventories", "read inventories"
            )["inventories"]
            if not any(rc in CLASSES for rc in inventories):
                continue
            usages = self._get(f"/resource_providers/{rp.uuid}/usages", "read usages")["usages"]
            for placement_rc, inventory in inventories.items():
                rc = CLASSES.get(placement_rc)
                if rc is None:
                    continue
                arch = None if rc in WITHOUT_ARCHITECTURE else rp.architecture
                ratio = float(inventory.get("allocation_ratio", 1.0))
                total = sums[(rc, arch, ratio)]
                total[0] += int(inventory["total"])
                total[1] += int(inventory.get("reserved", 0))
                total[2] += int(usages.get(placement_rc, 0))
        entries = tuple(
            CapacityEntry(
                resource_class=rc,
                architecture=arch,
                total=t,
                reserved=r,
                allocation_ratio=ratio,
                used=u,
            )
            for (rc, arch, ratio), (t, r, u) in sorted(sums.items(), key=_order)
        )
        return CapacityReport(entries=entries, observed_at=datetime.now(UTC))

    def providers(self) -> dict[str, Provider]:
        """Every resource provider by uuid, with its (inherited) architecture."""
        listed = self._get("/resource_providers", "list resource providers")["resource_providers"]
        own: dict[str, Architecture | None] = {}
        for rp in listed:
            traits = self._get(f"/resource_providers/{rp['uuid']}/traits", "read traits")["traits"]
            own[rp["uuid"]] = architecture_of(traits)
        result = {}
        for rp in listed:
            root = rp.get("root_provider_uuid") or rp["uuid"]
            arch = own[rp["uuid"]] or own.get(root)
            result[rp["uuid"]] = Provider(rp["uuid"], rp["name"], root, arch)
        return result

    def architecture_of_host(
        self, host: str, cache: dict[str, Architecture | None]
    ) -> Architecture | None:
        """The architecture of the compute node named `host` (its provider's name)."""
        if host not in cache:
            found = self._get(
                "/resource_providers", f"find resource provider {host}", params={"name": host}
            )["resource_providers"]
            arch = None
            if found:
                traits = self._get(f"/resource_providers/{found[0]['uuid']}/traits", "read traits")[
                    "traits"
                ]
                arch = architecture_of(traits)
            cache[host] = arch
        return cache[host]

    def _get(self, path: str, action: str, params: Mapping[str, str] | None = None) -> Any:
        return self._s.call(
            Service.PLACEMENT,
            "GET",
            path,
            action=action,
            params=params,
            microversion=PLACEMENT_MICROVERSION,
        )


def _order(
    item: tuple[tuple[ResourceClass, Architecture | None, float], list[int]],
) -> tuple[str, str, float]:
    (rc, arch, ratio), _ = item
    return (rc.value, arch.value if arch else "", ratio)
