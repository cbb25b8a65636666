"""Keystone unified limits for Nova: project limits in /v3/limits, per region.

Under Nova's UnifiedLimitsDriver the compute quota lives in Keystone: a
*registered limit* per resource (`servers`, `class:VCPU`, `class:MEMORY_MB`,
`class:VGPU`, ...) is the cloud-wide default and a *project limit* overrides
it for one project. Keystone's default policy takes limit writes only from a
system-scoped token, so every call here goes through the cloud's
`system_cloud` entry (reads too: a project-scoped token sees only its own
project's limits). Used by `quotas.py` only.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from providers.base import ProviderNotFound, UnsupportedResourceClass
from providers.openstack.connection import CloudSession, Service


class KeystoneLimits:
    def __init__(self, session: CloudSession) -> None:
        self._s = session
        self._service_id: str | None = None

    def set(self, project_id: str, limits: Mapping[str, int]) -> None:
        """Creates or updates the project's limit for each resource name given;
        writes nothing when one of them cannot be written."""
        existing = {
            str(limit["resource_name"]): limit for limit in self._project_limits(project_id)
        }
        new = [name for name in limits if name not in existing]
        if new:
            # Keystone refuses (403) a project limit without a registered limit,
            # and registering one sets a cloud-wide default: a cloud admin's call.
            missing = sorted(set(new) - self.registered())
            if missing:
                raise UnsupportedResourceClass(
                    f"Keystone has no registered limit for {', '.join(missing)}: a cloud admin "
                    "must register one first (openstack registered limit create --service "
                    f"nova --default-limit 0 {missing[0]})",
                    cloud=self._s.cloud,
                )
        create = [self._new_limit(project_id, name, limits[name]) for name in new]
        for name, current in existing.items():
            value = limits.get(name)
            if value is None or current["resource_limit"] == value or self._patch(current, value):
                continue
            # Keystone (30.0) answers 200 to a PATCH to 0 and keeps the old value
            # (`if limit.get('resource_limit')` in its SQL backend), so a zero is
            # written as delete + create. Between the two the project briefly
            # falls back to the registered default.
            self._call("DELETE", f"/limits/{current['id']}", f"replace limit {name}")
            create.append(self._new_limit(project_id, name, value))
        if create:
            # One POST for all: Keystone creates the list atomically.
            self._call("POST", "/limits", "create project limits", json={"limits": create})

    def _patch(self, current: Mapping[str, Any], value: int) -> bool:
        """PATCHes the limit; True when Keystone's answer shows the new value."""
        name = current["resource_name"]
        answer = self._call(
            "PATCH",
            f"/limits/{current['id']}",
            f"update limit {name}",
            json={"limit": {"resource_limit": value}},
        )
        return bool(answer["limit"]["resource_limit"] == value)

    def effective(self, project_id: str, name: str) -> int | None:
        """The project's limit, else the registered default, else None (unlimited:
        Nova requires a registered limit only for the resources in its
        [quota] unified_limits_resource_list, `servers` by default)."""
        for limit in self._project_limits(project_id):
            if limit["resource_name"] == name:
                return int(limit["resource_limit"])
        for registered in self._registered(name):
            return int(registered["default_limit"])
        return None

    def registered(self) -> frozenset[str]:
        """The compute resource names with a registered limit in this region."""
        return frozenset(str(r["resource_name"]) for r in self._registered(None))

    def _project_limits(self, project_id: str) -> list[dict[str, Any]]:
        params = {"service_id": self._compute_service(), "project_id": project_id}
        params.update(self._region())
        found: list[dict[str, Any]] = self._call(
            "GET", "/limits", "read project limits", params=params
        )["limits"]
        return found

    def _registered(self, name: str | None) -> list[dict[str, Any]]:
        params = {"service_id": self._compute_service(), **self._region()}
        if name is not None:
            params["resource_name"] = name
        found: list[dict[str, Any]] = self._call(
            "GET", "/registered_limits", "read registered limits", params=params
        )["registered_limits"]
        return found

    def _new_limit(self, project_id: str, name: str, value: int) -> dict[str, Any]:
        return {
            "service_id": self._compute_service(),
            "project_id": project_id,
            "resource_name": name,
            "resource_limit": value,
            "description": "set by Yunguan",
            **self._region(),
        }

    def _region(self) -> dict[str, str]:
        region = self._s.region()
        return {"region_id": region} if region else {}

    def _compute_service(self) -> str:
        if self._service_id is None:
            services = self._call(
                "GET", "/services", "find the compute service", params={"type": "compute"}
            )["services"]
            if not services:
                raise ProviderNotFound("Keystone has no compute service", cloud=self._s.cloud)
            self._service_id = str(services[0]["id"])
        return self._service_id

    def _call(self, method: str, path: str, action: str, **kwargs: Any) -> Any:
        return self._s.call(Service.IDENTITY, method, path, action=action, system=True, **kwargs)
