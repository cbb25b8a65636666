"""Who is calling and where each of their permissions applies; pure.

Scopes are org-node *paths* (`/hunan/changsha/cs-data/`): an object is within
a scope when its path starts with the scope's path. Queries filter on that
prefix in SQL, so lists are filtered before pagination.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from controlplane.identity.roles import ROLE_PERMISSIONS, Permission, Role


@dataclass(frozen=True)
class Binding:
    role: Role
    scope_code: str
    scope_path: str


@dataclass(frozen=True)
class Principal:
    user_id: int
    login: str
    bindings: tuple[Binding, ...]
    via: str = "token"  # "token" or "oidc"
    expires_at: datetime | None = None  # of the credential that proved it

    def scopes_for(self, permission: Permission) -> tuple[str, ...]:
        """Scope paths where `permission` holds, without paths nested in another."""
        paths = sorted(
            {b.scope_path for b in self.bindings if permission in ROLE_PERMISSIONS[b.role]}
        )
        return tuple(p for p in paths if not any(p != q and p.startswith(q) for q in paths))

    def roles_text(self) -> str:
        return ",".join(sorted(f"{b.role.value}@{b.scope_code}" for b in self.bindings))


def within(path: str, scopes: tuple[str, ...]) -> bool:
    """`path` lies in the subtree of one of `scopes`."""
    return any(path.startswith(s) for s in scopes)


def on_path(path: str, scopes: tuple[str, ...]) -> bool:
    """`path` is in a scope's subtree or on the way down to one (an ancestor)."""
    return any(path.startswith(s) or s.startswith(path) for s in scopes)
