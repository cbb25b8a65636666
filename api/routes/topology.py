"""Clouds and the organisation tree, read-only here (written by `topology apply`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import UoW
from api.schemas import CloudList, CloudOut, OrgNodeOut
from controlplane.topology.store import TopologyStore
from controlplane.vocabulary import CloudKind, CloudRole

router = APIRouter(prefix="/v1", tags=["topology"])


@router.get("/clouds", response_model=CloudList)
def list_clouds(
    uow: UoW,
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
    )
    return CloudList(items=[CloudOut.of(c) for c in clouds], total=len(clouds))


@router.get("/clouds/{code}", response_model=CloudOut)
def get_cloud(code: str, uow: UoW) -> CloudOut:
    return CloudOut.of(TopologyStore(uow.session).cloud(code))


@router.get("/org", response_model=OrgNodeOut | None)
def org_tree(uow: UoW) -> OrgNodeOut | None:
    nodes = TopologyStore(uow.session).org_nodes()
    by_id = {n.id: OrgNodeOut(code=n.code, name=n.name, level=n.level) for n in nodes}
    root: OrgNodeOut | None = None
    for n in nodes:  # ordered by id, so parents (created first) come before children
        if n.parent_id is None:
            root = by_id[n.id]
        else:
            by_id[n.parent_id].children.append(by_id[n.id])
    return root
