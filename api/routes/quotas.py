"""Pools and grants: `/v1/pools`, `/v1/grants` (tree views; ETag = generation).

Reads are scoped like everything else. Changing a pool is for the admins of the
cloud's owner; changing a node's grant is for the admins of its parent scope
(the scope whose headroom it draws on).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from api.auth import Access, require
from api.deps import UoW
from api.routes.quota_common import Cont, IfMatch, actor_of, expected_generation, mutate
from controlplane.identity.principal import on_path
from controlplane.identity.roles import Permission
from controlplane.quotastore.store import SqlQuotaStore
from controlplane.vocabulary import NotFoundError, ResourceClass
from quotas import service
from quotas.model import GrantRow, granting_scope

router = APIRouter(prefix="/v1", tags=["quotas"])

Reader = Annotated[Access, Depends(require(Permission.QUOTA_READ))]
Granter = Annotated[Access, Depends(require(Permission.QUOTA_GRANT))]


class PoolIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    total: int = Field(ge=0)
    reserved: int = Field(default=0, ge=0)
    oversubscription: float | None = Field(default=None, ge=1.0)
    force: bool = False


class GrantIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    amount: int = Field(ge=0)
    force: bool = Field(default=False, description="allow going below observed usage (recorded)")


def narrow(scopes: tuple[str, ...], path: str) -> tuple[str, ...]:
    """The part of `scopes` inside `path`: the whole subtree when a scope covers it,
    else the caller's scopes that lie below it."""
    if any(path.startswith(s) for s in scopes):
        return (path,)
    return tuple(s for s in scopes if s.startswith(path))


def _row(cloud: str, row: GrantRow) -> dict[str, Any]:
    return {
        "cloud": cloud,
        "level": row.node.level.value,
        "path": row.node.path,
        "is_pool": row.is_pool,
        **row.values(),
    }


@router.get("/pools")
def list_pools(
    uow: UoW, access: Reader, cloud: Annotated[str | None, Query(max_length=63)] = None
) -> list[dict[str, Any]]:
    store = SqlQuotaStore(uow.session)
    return [
        _row(c.code, row)
        for c, row in service.pools(store, cloud)
        if on_path(c.owner.path, access.scopes)
    ]


@router.put("/pools/{cloud}/{resource_class}")
async def set_pool(
    cloud: str,
    resource_class: ResourceClass,
    body: PoolIn,
    request: Request,
    container: Cont,
    access: Granter,
    if_match: IfMatch = None,
) -> JSONResponse:
    def work(store: SqlQuotaStore, _s: Session) -> tuple[int, Any, Any, int | None]:
        ref = store.cloud(cloud)
        access.check_within(ref.owner.path, f"cloud {cloud!r}")
        result = service.set_capacity(
            store,
            actor_of(access),
            cloud,
            resource_class,
            body.total,
            reserved=body.reserved,
            oversubscription=body.oversubscription,
            force=body.force,
            expected_generation=expected_generation(if_match),
        )
        (row,) = result.rows
        return 200, _row(cloud, row), result.changes, row.generation

    return await mutate(container, request, access, None, body.model_dump(), work)


@router.get("/grants")
def list_grants(
    uow: UoW,
    access: Reader,
    cloud: Annotated[str, Query(max_length=63)],
    resource_class: Annotated[ResourceClass | None, Query()] = None,
    scope: Annotated[str | None, Query(max_length=63, description="org code: its subtree")] = None,
) -> list[dict[str, Any]]:
    store = SqlQuotaStore(uow.session)
    within = access.scopes
    if scope is not None:
        chain = store.chain(scope)
        node = chain[-1]
        if not access.visible(node.path):
            raise NotFoundError(f"no organisation node {scope!r}", code="org.not_found")
        within = narrow(access.scopes, node.path)
    ref = store.cloud(cloud)
    if not on_path(ref.owner.path, access.scopes):
        raise NotFoundError(f"no cloud {cloud!r}", code="cloud.not_found")
    _, rows = service.grant_tree(store, cloud, resource_class, within)
    return [_row(cloud, r) for r in rows]


@router.put("/grants/{cloud}/{node}/{resource_class}")
async def set_grant(
    cloud: str,
    node: str,
    resource_class: ResourceClass,
    body: GrantIn,
    request: Request,
    container: Cont,
    access: Granter,
    if_match: IfMatch = None,
) -> JSONResponse:
    def work(store: SqlQuotaStore, _s: Session) -> tuple[int, Any, Any, int | None]:
        chain = store.chain(node)
        target = chain[-1]
        if not access.visible(target.path):
            raise NotFoundError(f"no organisation node {node!r}", code="org.not_found")
        access.check_within(granting_scope(chain).path, f"the grant of {node!r}")
        result = service.set_grant(
            store,
            actor_of(access),
            node,
            cloud,
            resource_class,
            body.amount,
            force=body.force,
            expected_generation=expected_generation(if_match),
        )
        (row,) = result.rows
        return 200, {**_row(cloud, row), "forced": result.forced}, result.changes, row.generation

    return await mutate(container, request, access, None, body.model_dump(), work)
