"""Clouds and the organisation tree, read-only (written by `topology apply`), scoped.

A caller sees the province's clouds and those of the prefectures in their
scopes; in the tree, their own subtrees and the path down to them.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from api.auth import Access, require
from api.deps import UoW
from api.schemas import CloudList, CloudOut, OrgNodeOut
from controlplane.identity.roles import Permission
from controlplane.topology.store import TopologyStore
from controlplane.vocabulary import CloudKind, CloudRole, NotFoundError

router = APIRouter(prefix="/v1", tags=["topology"])

CloudReader = Annotated[Access, Depends(require(Permission.CLOUD_READ))]
OrgReader = Annotated[Access, Depends(require(Permission.ORG_READ))]


@router.get("/clouds", response_model=CloudList)
def list_clouds(
    uow: UoW,
    access: CloudReader,
    kind: Annotated[CloudKind | None, Query()] = None,
    role: Annotated[CloudRole | None, Query()] = None,
    owner: Annotated[str | None, Query(description="province or prefecture code")] = None,
    enabled: Annotated[bool | None, Query()] = None,
) -> CloudList:
    clouds = TopologyStore(uow.session).clouds(
        kind=kind.value if kind else None,
        role=role.value if role else None,
        owner=owner,
        enabled=enabled,
        visible_to=access.scopes,
    )
    return CloudList(items=[CloudOut.of(c) for c in clouds], total=len(clouds))


@router.get("/clouds/{code}", response_model=CloudOut)
def get_cloud(code: str, uow: UoW, access: CloudReader) -> CloudOut:
    return CloudOut.of(TopologyStore(uow.session).cloud(code, visible_to=access.scopes))


@router.get("/org", response_model=OrgNodeOut | None)
def org_tree(uow: UoW, access: OrgReader) -> OrgNodeOut | None:
    nodes = TopologyStore(uow.session).org_nodes(visible_to=access.scopes)
    by_id = {n.id: OrgNodeOut(code=n.code, name=n.name, level=n.level) for n in nodes}
    root: OrgNodeOut | None = None
    for n in nodes:  # ordered by path, so parents come before children
        if n.parent_id is None:
            root = by_id[n.id]
        elif n.parent_id in by_id:
            by_id[n.parent_id].children.append(by_id[n.id])
    return root


@router.get("/org/{code}", response_model=OrgNodeOut)
def org_node(code: str, uow: UoW, access: OrgReader) -> OrgNodeOut:
    node = TopologyStore(uow.session).org_node(code)
    if node is None or not access.visible(node.path):
        raise NotFoundError(f"no organisation node {code!r}", code="org.not_found")
    children = [
        OrgNodeOut(code=c.code, name=c.name, level=c.level)
        for c in TopologyStore(uow.session).children(node.id)
        if access.visible(c.path)
    ]
    return OrgNodeOut(code=node.code, name=node.name, level=node.level, children=children)
