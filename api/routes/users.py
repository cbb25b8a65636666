"""Users, role bindings and API tokens; every change is audited.

Visibility follows the user's home scope: `user:read` scopes decide what a
caller sees (404 beyond), `user:write` scopes what they may change (403 for a
user they can only see). A binding's scope must lie within the caller's
`user:write` scopes, so nobody grants more than they hold.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, status

from api.auth import Access, require
from api.deps import SecretKey, UoW
from api.routes.identity_schemas import (
    BindingIn,
    HeldRole,
    IssuedTokenOut,
    MeOut,
    TokenIn,
    TokenOut,
    UserIn,
    UserOut,
)
from controlplane.db.identity_tables import User
from controlplane.db.uow import UnitOfWork
from controlplane.identity import audit
from controlplane.identity.principal import within
from controlplane.identity.roles import Permission
from controlplane.identity.store import IdentityStore
from controlplane.topology.store import TopologyStore
from controlplane.vocabulary import NotFoundError

router = APIRouter(prefix="/v1", tags=["identity"])

Self = Annotated[Access, Depends(require(Permission.SELF))]
UserReader = Annotated[Access, Depends(require(Permission.USER_READ))]
UserWriter = Annotated[Access, Depends(require(Permission.USER_WRITE))]


def _home_path(user: User) -> str:
    return user.home_path


def _snapshot(user: User) -> dict[str, Any]:
    return UserOut.of(user).model_dump()


def _user_for_write(uow: UnitOfWork, login: str, access: Access) -> User:
    user = IdentityStore(uow.session).find_user(login)
    read = access.principal.scopes_for(Permission.USER_READ)
    if user is None or not within(_home_path(user), read):
        raise NotFoundError(f"no user {login!r}", code="user.not_found")
    access.check_within(_home_path(user), f"user {login!r}")
    return user


def _scope_for_write(uow: UnitOfWork, code: str, access: Access) -> str:
    node = TopologyStore(uow.session).org_node(code)
    if node is None or not access.visible(node.path):
        raise NotFoundError(f"no organisation node {code!r}", code="org.not_found")
    access.check_within(node.path, f"scope {code!r}")
    return node.path


@router.get("/me", response_model=MeOut)
def me(access: Self) -> MeOut:
    p = access.principal
    roles = [HeldRole(role=b.role.value, scope=b.scope_code) for b in p.bindings]
    return MeOut(login=p.login, via=p.via, roles=roles)


@router.get("/me/tokens", response_model=list[TokenOut])
def my_tokens(uow: UoW, access: Self) -> list[TokenOut]:
    store = IdentityStore(uow.session)
    return [TokenOut.of(t) for t in store.tokens_of(store.user_by_id(access.principal.user_id))]


@router.post("/me/tokens", response_model=IssuedTokenOut, status_code=status.HTTP_201_CREATED)
def issue_my_token(body: TokenIn, uow: UoW, access: Self, secret: SecretKey) -> IssuedTokenOut:
    user = IdentityStore(uow.session).user_by_id(access.principal.user_id)
    return _issue(uow, access, secret, user, body)


@router.delete("/me/tokens/{token_id}", status_code=status.HTTP_204_NO_CONTENT)
def revoke_my_token(token_id: int, uow: UoW, access: Self) -> None:
    store = IdentityStore(uow.session)
    user = store.user_by_id(access.principal.user_id)
    _revoke(uow, access, user, token_id)


@router.get("/users", response_model=list[UserOut])
def list_users(
    uow: UoW,
    access: UserReader,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[UserOut]:
    users = IdentityStore(uow.session).users(access.scopes, limit=limit, offset=offset)
    return [UserOut.of(u) for u in users]


@router.get("/users/{login}", response_model=UserOut)
def get_user(login: str, uow: UoW, access: UserReader) -> UserOut:
    user = IdentityStore(uow.session).find_user(login)
    if user is None or not within(_home_path(user), access.scopes):
        raise NotFoundError(f"no user {login!r}", code="user.not_found")
    return UserOut.of(user)


@router.post("/users", response_model=UserOut, status_code=status.HTTP_201_CREATED)
def create_user(body: UserIn, uow: UoW, access: UserWriter) -> UserOut:
    path = _scope_for_write(uow, body.home_scope, access)
    user = IdentityStore(uow.session).create_user(body.login, body.display_name, body.home_scope)
    uow.session.refresh(user)
    audit.record(
        uow.session,
        access.audit,
        "user.create",
        "user",
        user.login,
        scope_path=path,
        after=_snapshot(user),
    )
    out = UserOut.of(user)
    uow.commit()
    return out


@router.post("/users/{login}/bindings", response_model=UserOut, status_code=201)
def bind_role(login: str, body: BindingIn, uow: UoW, access: UserWriter) -> UserOut:
    user = _user_for_write(uow, login, access)
    _scope_for_write(uow, body.scope, access)
    before = _snapshot(user)
    IdentityStore(uow.session).bind(user, body.role, body.scope)
    audit.record(
        uow.session,
        access.audit,
        "user.bind",
        "user",
        login,
        scope_path=_home_path(user),
        before=before,
        after=_snapshot(user),
    )
    out = UserOut.of(user)
    uow.commit()
    return out


@router.delete("/users/{login}/bindings/{binding_id}", response_model=UserOut)
def unbind_role(login: str, binding_id: int, uow: UoW, access: UserWriter) -> UserOut:
    user = _user_for_write(uow, login, access)
    binding = next((b for b in user.bindings if b.id == binding_id), None)
    if binding is None:
        raise NotFoundError(f"no binding {binding_id} for {login}", code="binding.not_found")
    access.check_within(binding.scope.path, f"binding {binding_id}")
    before = _snapshot(user)
    IdentityStore(uow.session).unbind(user, binding_id)
    audit.record(
        uow.session,
        access.audit,
        "user.unbind",
        "user",
        login,
        scope_path=_home_path(user),
        before=before,
        after=_snapshot(user),
    )
    out = UserOut.of(user)
    uow.commit()
    return out


@router.get("/users/{login}/tokens", response_model=list[TokenOut])
def user_tokens(login: str, uow: UoW, access: UserWriter) -> list[TokenOut]:
    user = _user_for_write(uow, login, access)
    return [TokenOut.of(t) for t in IdentityStore(uow.session).tokens_of(user)]


@router.post("/users/{login}/tokens", response_model=IssuedTokenOut, status_code=201)
def issue_user_token(
    login: str, body: TokenIn, uow: UoW, access: UserWriter, secret: SecretKey
) -> IssuedTokenOut:
    return _issue(uow, access, secret, _user_for_write(uow, login, access), body)


@router.delete("/users/{login}/tokens/{token_id}", status_code=status.HTTP_204_NO_CONTENT)
def revoke_user_token(login: str, token_id: int, uow: UoW, access: UserWriter) -> None:
    _revoke(uow, access, _user_for_write(uow, login, access), token_id)


def _issue(
    uow: UnitOfWork, access: Access, secret: str, user: User, body: TokenIn
) -> IssuedTokenOut:
    issued = IdentityStore(uow.session).issue_token(secret, user, body.name, body.expires_in_days)
    audit.record(
        uow.session,
        access.audit,
        "token.issue",
        "token",
        str(issued.id),
        scope_path=_home_path(user),
        after={
            "user": user.login,
            "name": issued.name,
            "expires_at": issued.expires_at.isoformat(),
        },
    )
    uow.commit()
    return IssuedTokenOut(
        id=issued.id, name=issued.name, expires_at=issued.expires_at, token=issued.plaintext
    )


def _revoke(uow: UnitOfWork, access: Access, user: User, token_id: int) -> None:
    store = IdentityStore(uow.session)
    row = store.token(token_id)
    if row.user_id != user.id:
        raise NotFoundError(f"no token {token_id}", code="token.not_found")
    store.revoke(row)
    audit.record(
        uow.session,
        access.audit,
        "token.revoke",
        "token",
        str(token_id),
        scope_path=_home_path(user),
        after={"user": user.login, "name": row.name},
    )
    uow.commit()
