"""What every migration route shares: the two permissions, scope checks, override right.

Reads filter by the caller's `migration:read` scopes (404 beyond them); a
write first finds the object with those, then `Access.check_within` answers
403 for an object the caller may read but not change.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.auth import Access, require
from controlplane.db.tables import OrgNode
from controlplane.identity.roles import Permission, Role
from controlplane.vocabulary import NotFoundError

Reader = Annotated[Access, Depends(require(Permission.MIGRATION_READ))]
Writer = Annotated[Access, Depends(require(Permission.MIGRATION_WRITE))]

# Who may accept a system without inventory evidence: the cloud's admins.
_OVERRIDERS = frozenset({Role.PROVINCE_ADMIN, Role.PREFECTURE_ADMIN})


def read_scopes(access: Access) -> tuple[str, ...]:
    return access.principal.scopes_for(Permission.MIGRATION_READ)


def may_override(access: Access, path: str) -> bool:
    return any(
        b.role in _OVERRIDERS and path.startswith(b.scope_path) for b in access.principal.bindings
    )


def node_for_write(session: Session, text: str, access: Access, levels: tuple[str, ...]) -> OrgNode:
    """An org node (by code, or a department by its exact name) the caller may write
    under: 404 when they cannot see it, 403 when they can only read there."""
    node = session.scalar(select(OrgNode).where(OrgNode.code == text))
    if node is None and "department" in levels:
        found = session.scalars(
            select(OrgNode).where(OrgNode.name == text, OrgNode.level == "department")
        ).all()
        node = found[0] if len(found) == 1 else None
    if node is None or node.level not in levels or not access.visible(node.path):
        raise NotFoundError(f"no organisation node {text!r}", code="org.not_found")
    access.check_within(node.path, f"{node.level} {node.code!r}")
    return node


def node_for_read(session: Session, code: str, access: Access) -> OrgNode:
    """An org node the caller may see the ledger of, or on the way down to it."""
    node = session.scalar(select(OrgNode).where(OrgNode.code == code))
    scopes = read_scopes(access)
    if node is None or not any(node.path.startswith(s) or s.startswith(node.path) for s in scopes):
        raise NotFoundError(f"no organisation node {code!r}", code="org.not_found")
    return node
