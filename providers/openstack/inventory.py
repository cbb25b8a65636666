"""Inventory: the servers (Nova) and volumes (Cinder) of Yunguan's tenants.

Serves migration acceptance ("is the system really running on the cloud?")
and reconciliation, so each item says what it consumes. A server's flavor
comes embedded in the server (microversion 2.47), its architecture from the
compute node's resource provider traits, else from the image's
`hw_architecture`/`architecture` property. A server counts as running when
ACTIVE; a volume when in-use (attached). Nothing here writes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from controlplane.vocabulary import Architecture, ResourceClass
from providers.base import InventoryItem, ProviderNotFound
from providers.openstack.capacity import Placement
from providers.openstack.connection import CloudSession, Service

NOVA_MICROVERSION = "2.47"  # the flavor is embedded in the server
PAGE = 500
HOST_ATTR = "OS-EXT-SRV-ATTR:hypervisor_hostname"  # admin-only; names the node's RP
VOLUME_TENANT_ATTR = "os-vol-tenant-attr:tenant_id"


class Inventory:
    def __init__(self, session: CloudSession, placement: Placement) -> None:
        self._s = session
        self._placement = placement

    def list(self, projects: frozenset[str]) -> tuple[InventoryItem, ...]:
        """The servers and volumes of these projects (admin: all_tenants)."""
        params = {"all_tenants": "1"}
        if len(projects) == 1:
            params["project_id"] = next(iter(projects))  # let the service filter
        if not projects:
            return ()
        host_arch: dict[str, Architecture | None] = {}
        image_arch: dict[str, Architecture | None] = {}
        items: list[InventoryItem] = []
        for server in self._paged(
            Service.COMPUTE, "/servers/detail", "servers", params, "list servers", NOVA_MICROVERSION
        ):
            if server.get("tenant_id") in projects:
                items.append(self._server(server, host_arch, image_arch))
        for volume in self._paged(
            Service.VOLUME, "/volumes/detail", "volumes", params, "list volumes", None
        ):
            if volume.get(VOLUME_TENANT_ATTR) in projects:
                items.append(_volume(volume))
        return tuple(items)

    def _server(
        self,
        server: Mapping[str, Any],
        host_arch: dict[str, Architecture | None],
        image_arch: dict[str, Architecture | None],
    ) -> InventoryItem:
        flavor = server.get("flavor") or {}
        arch = None
        host = server.get(HOST_ATTR)
        if host:
            arch = self._placement.architecture_of_host(host, host_arch)
        image = server.get("image")
        if arch is None and isinstance(image, dict) and image.get("id"):
            arch = self._image_architecture(str(image["id"]), image_arch)
        resources = {
            ResourceClass.INSTANCES: 1,
            ResourceClass.VCPU: int(flavor.get("vcpus", 0)),
            ResourceClass.MEMORY_MIB: int(flavor.get("ram", 0)),
            ResourceClass.DISK_GIB: int(flavor.get("disk", 0)) + int(flavor.get("ephemeral", 0)),
        }
        specs = flavor.get("extra_specs") or {}
        gpus = sum(int(specs.get(f"resources:{rc}", 0)) for rc in ("VGPU", "PGPU"))
        if gpus:
            resources[ResourceClass.GPU] = gpus
        status = str(server.get("status", "UNKNOWN"))
        return InventoryItem(
            kind="server",
            id=str(server["id"]),
            name=str(server.get("name", "")),
            tenant=server.get("tenant_id"),
            status=status,
            running=status == "ACTIVE",
            flavor=flavor.get("original_name"),
            architecture=arch,
            resources=resources,
        )

    def _image_architecture(
        self, image_id: str, cache: dict[str, Architecture | None]
    ) -> Architecture | None:
        if image_id not in cache:
            try:
                image = self._s.call(
                    Service.IMAGE, "GET", f"/images/{image_id}", action=f"read image {image_id}"
                )
            except ProviderNotFound:  # deleted since the boot: the server still counts
                image = {}
            value = image.get("hw_architecture") or image.get("architecture")
            try:
                cache[image_id] = Architecture(str(value).lower()) if value else None
            except ValueError:
                cache[image_id] = None
        return cache[image_id]

    def _paged(
        self,
        service: Service,
        path: str,
        key: str,
        params: Mapping[str, str],
        action: str,
        microversion: str | None,
    ) -> Iterator[dict[str, Any]]:
        marker: str | None = None
        while True:
            query = {**params, "limit": str(PAGE)}
            if marker:
                query["marker"] = marker
            page: list[dict[str, Any]] = self._s.call(
                service, "GET", path, action=action, params=query, microversion=microversion
            )[key]
            yield from page
            if len(page) < PAGE:
                return
            marker = str(page[-1]["id"])


def _volume(volume: Mapping[str, Any]) -> InventoryItem:
    status = str(volume.get("status", "unknown"))
    return InventoryItem(
        kind="volume",
        id=str(volume["id"]),
        name=str(volume.get("name") or ""),
        tenant=volume.get(VOLUME_TENANT_ATTR),
        status=status,
        running=status == "in-use",
        resources={ResourceClass.DISK_GIB: int(volume.get("size", 0))},
    )
