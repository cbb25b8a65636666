"""Tenants as Keystone projects: naming, tags, domains, membership, retirement.

A Yunguan tenant is one Keystone project:

- in the domain `<domain_prefix>-<owning scope>` (`yg-hunan` for provincial
  departments, `yg-changsha` for Changsha's), created when missing: a
  prefecture's admins can then be given a domain-scoped role without seeing
  the others' projects;
- named `yg-<key>` (Keystone allows 64 characters; longer keys are cut and
  suffixed with a hash, so the name stays deterministic and unique);
- tagged `yunguan`, `yg-cloud:<cloud>`, `yg-project:<key>`,
  `yg-department:<dept>` and `yg-prefecture:<scope>`. The name finds the
  project; the `yg-project` tag finds it again if an operator renamed it;
  `yg-cloud` says which Yunguan clouds manage it (two clouds sharing one
  Keystone each add their own), and scopes inventory listings.

Called by the adapter only. Retiring disables the project; nothing is deleted.
"""

from __future__ import annotations

import hashlib
import logging
import re
from typing import Any

from providers.base import ProviderNotFound, ProviderRejected, TenantRef, TenantSpec
from providers.openstack.connection import CloudSession, Service

log = logging.getLogger(__name__)

TAG_ROOT = "yunguan"
MAX_NAME = 64  # Keystone's limit for project and domain names
MEMBER_ROLE = "member"
# Keystone refuses "/" and "," in tags; codes are ASCII slugs in practice.
_TAG_VALUE = re.compile(r"^[A-Za-z0-9._:-]{1,200}$")
# Our tag families: replaced on every ensure. `yg-cloud:` tags are only ever
# added, since another cloud sharing this Keystone may have put its own there.
_OWN_FAMILIES = ("yg-project:", "yg-department:", "yg-prefecture:")


def cloud_tag(cloud: str) -> str:
    return f"yg-cloud:{cloud}"


def project_name(key: str) -> str:
    name = f"yg-{key}"
    if len(name) <= MAX_NAME:
        return name
    digest = hashlib.sha256(key.encode()).hexdigest()[:8]
    return f"{name[: MAX_NAME - 9]}-{digest}"


def domain_name(prefix: str, scope: str) -> str:
    name = f"{prefix}-{scope}"
    if len(name) > MAX_NAME:
        raise ProviderRejected(f"domain name {name!r} is longer than {MAX_NAME} characters")
    return name


def tags_for(spec: TenantSpec, cloud: str) -> list[str]:
    tags = [
        TAG_ROOT,
        cloud_tag(cloud),
        f"yg-project:{spec.key}",
        f"yg-department:{spec.department}",
        f"yg-prefecture:{spec.owning_scope}",
    ]
    for value in (cloud, spec.key, spec.department, spec.owning_scope):
        if not _TAG_VALUE.match(value):
            raise ProviderRejected(
                f"{value!r} cannot be a Keystone tag value (letters, digits, . _ : - only)",
                cloud=cloud,
            )
    return tags


class Tenants:
    def __init__(self, session: CloudSession) -> None:
        self._s = session
        self._member_role_id: str | None = None

    # -- ensure ----------------------------------------------------------------

    def ensure(self, spec: TenantSpec) -> TenantRef:
        """Converges the project for `spec`: exists, enabled, tagged, members added."""
        if not spec.key or not spec.path:
            raise ProviderRejected("a tenant needs a key and a path", cloud=self._s.cloud)
        tags = tags_for(spec, self._s.cloud)
        domain_id = self._ensure_domain(spec.owning_scope)
        project = self._find(domain_id, spec.key)
        if project is None:
            project = self._create(domain_id, spec, tags)
        else:
            self._converge(project, spec, tags)
        if spec.users:
            self._add_members(project["id"], domain_id, spec.users)
        return TenantRef(key=spec.key, provider_id=project["id"])

    def _ensure_domain(self, scope: str) -> str:
        name = domain_name(self._s.settings.domain_prefix, scope)
        domain = self._find_domain(name)
        if domain is None:
            body = {
                "domain": {
                    "name": name,
                    "enabled": True,
                    "description": f"Yunguan tenants of {scope}",
                }
            }
            try:
                domain = self._identity("POST", "/domains", f"create domain {name}", json=body)[
                    "domain"
                ]
            except ProviderRejected:
                # Another worker created it between our lookup and our POST (409).
                domain = self._find_domain(name)
                if domain is None:
                    raise
        elif not domain.get("enabled", True):
            log.info("%s: re-enabling Keystone domain %s", self._s.cloud, name)
            self._identity(
                "PATCH",
                f"/domains/{domain['id']}",
                f"enable domain {name}",
                json={"domain": {"enabled": True}},
            )
        return str(domain["id"])

    def _find_domain(self, name: str) -> dict[str, Any] | None:
        found = self._identity("GET", "/domains", f"find domain {name}", params={"name": name})
        domains: list[dict[str, Any]] = found["domains"]
        return domains[0] if domains else None

    def _find(self, domain_id: str, key: str) -> dict[str, Any] | None:
        action = f"find project for {key}"
        by_name = self._identity(
            "GET", "/projects", action, params={"domain_id": domain_id, "name": project_name(key)}
        )["projects"]
        if by_name:
            return dict(by_name[0])
        by_tag = self._identity(
            "GET", "/projects", action, params={"domain_id": domain_id, "tags": f"yg-project:{key}"}
        )["projects"]
        return dict(by_tag[0]) if by_tag else None

    def _create(self, domain_id: str, spec: TenantSpec, tags: list[str]) -> dict[str, Any]:
        body = {
            "project": {
                "name": project_name(spec.key),
                "domain_id": domain_id,
                "description": _description(spec),
                "enabled": True,
                "tags": tags,
            }
        }
        try:
            project: dict[str, Any] = self._identity(
                "POST", "/projects", f"create project for {spec.key}", json=body
            )["project"]
        except ProviderRejected:
            found = self._find(domain_id, spec.key)  # lost a creation race (409)
            if found is None:
                raise
            self._converge(found, spec, tags)
            return found
        return project

    def _converge(self, project: dict[str, Any], spec: TenantSpec, tags: list[str]) -> None:
        current = list(project.get("tags") or [])
        keep = [t for t in current if not t.startswith(_OWN_FAMILIES)]
        wanted = keep + [t for t in tags if t not in keep]
        patch: dict[str, Any] = {}
        if sorted(wanted) != sorted(current):
            patch["tags"] = wanted
        if not project.get("enabled", True):
            patch["enabled"] = True  # ensure_tenant revives a retired tenant
        if project.get("description") != _description(spec):
            patch["description"] = _description(spec)
        if patch:
            self._identity(
                "PATCH",
                f"/projects/{project['id']}",
                f"update project for {spec.key}",
                json={"project": patch},
            )

    def _add_members(self, project_id: str, domain_id: str, users: tuple[str, ...]) -> None:
        role_id = self._member_role()
        for login in users:
            found = self._identity(
                "GET",
                "/users",
                f"find user {login}",
                params={"domain_id": domain_id, "name": login},
            )["users"]
            if not found:
                # Department users appear in Keystone when they first sign in
                # (federation/LDAP); until then there is nobody to add.
                log.info("%s: no Keystone user %s in the tenant's domain yet", self._s.cloud, login)
                continue
            # PUT is idempotent in Keystone: a second assignment is a no-op.
            self._identity(
                "PUT",
                f"/projects/{project_id}/users/{found[0]['id']}/roles/{role_id}",
                f"give {login} the {MEMBER_ROLE} role",
            )

    def _member_role(self) -> str:
        if self._member_role_id is None:
            roles = self._identity(
                "GET", "/roles", "find the member role", params={"name": MEMBER_ROLE}
            )["roles"]
            if not roles:
                raise ProviderNotFound(f"Keystone has no {MEMBER_ROLE!r} role", cloud=self._s.cloud)
            self._member_role_id = str(roles[0]["id"])
        return self._member_role_id

    # -- read, retire, list ------------------------------------------------------

    def get(self, tenant: TenantRef) -> dict[str, Any]:
        """The tenant's project; ProviderNotFound when it is gone or not this cloud's.

        A TenantRef routed to the wrong cloud (one sharing this Keystone) must
        fail loudly instead of reading or writing another cloud's tenant.
        """
        project: dict[str, Any] = self._identity(
            "GET", f"/projects/{tenant.provider_id}", f"read project {tenant.provider_id}"
        )["project"]
        if cloud_tag(self._s.cloud) not in (project.get("tags") or []):
            raise ProviderNotFound(
                f"project {tenant.provider_id} is not a Yunguan tenant of this cloud",
                cloud=self._s.cloud,
            )
        return project

    def disable(self, project: dict[str, Any]) -> None:
        if project.get("enabled", True):
            self._identity(
                "PATCH",
                f"/projects/{project['id']}",
                f"disable project {project['id']}",
                json={"project": {"enabled": False}},
            )

    def owned(self) -> dict[str, dict[str, Any]]:
        """The projects this cloud manages, enabled or retired, by id: one call.

        Keystone has no paging for projects; a deployment that sets
        `[DEFAULT] list_limit` gets a truncated list, so callers treat an id
        missing here as "ask `get`", not as "gone"."""
        found = self._identity(
            "GET", "/projects", "list Yunguan projects", params={"tags": cloud_tag(self._s.cloud)}
        )["projects"]
        return {str(p["id"]): dict(p) for p in found}

    def owned_ids(self) -> set[str]:
        """Ids of the projects this cloud manages, enabled or retired."""
        return set(self.owned())

    def _identity(self, method: str, path: str, action: str, **kwargs: Any) -> Any:
        return self._s.call(Service.IDENTITY, method, path, action=action, **kwargs)


def _description(spec: TenantSpec) -> str:
    text = f"{spec.name} — {spec.description}" if spec.description else spec.name
    return f"{text} [Yunguan {'/'.join(spec.path)}]"
