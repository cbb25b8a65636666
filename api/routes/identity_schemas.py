"""Bodies of the user, token and audit routes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from controlplane.db.identity_tables import ApiToken, AuditEntry, User
from controlplane.identity.roles import Role
from controlplane.identity.store import LOGIN_PATTERN, MAX_TOKEN_DAYS


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BindingOut(BaseModel):
    id: int
    role: str
    scope: str


class UserOut(BaseModel):
    login: str
    display_name: str
    home_scope: str | None
    active: bool
    source: str
    bindings: list[BindingOut]

    @classmethod
    def of(cls, u: User) -> UserOut:
        return cls(
            login=u.login,
            display_name=u.display_name,
            home_scope=u.home_scope.code if u.home_scope else None,
            active=u.active,
            source=u.source,
            bindings=[BindingOut(id=b.id, role=b.role, scope=b.scope.code) for b in u.bindings],
        )


class HeldRole(BaseModel):
    role: str
    scope: str


class MeOut(BaseModel):
    login: str
    via: str
    roles: list[HeldRole]


class UserIn(_In):
    login: str = Field(pattern=LOGIN_PATTERN)
    display_name: str = Field(min_length=1, max_length=200)
    home_scope: str = Field(min_length=1, max_length=63)


class BindingIn(_In):
    role: Role
    scope: str = Field(min_length=1, max_length=63)


class TokenIn(_In):
    name: str = Field(min_length=1, max_length=100)
    expires_in_days: int = Field(default=90, ge=1, le=MAX_TOKEN_DAYS)


class TokenOut(BaseModel):
    id: int
    name: str
    created_at: datetime
    expires_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None

    @classmethod
    def of(cls, t: ApiToken) -> TokenOut:
        return cls(
            id=t.id,
            name=t.name,
            created_at=t.created_at,
            expires_at=t.expires_at,
            revoked_at=t.revoked_at,
            last_used_at=t.last_used_at,
        )


class IssuedTokenOut(BaseModel):
    id: int
    name: str
    expires_at: datetime
    token: str = Field(description="shown once; only a keyed hash is stored")


class AuditOut(BaseModel):
    seq: int
    at: datetime
    actor: str
    roles: str
    scope_path: str
    action: str
    object_type: str
    object_id: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    request_id: str | None
    source: str | None
    hash: str

    @classmethod
    def of(cls, e: AuditEntry) -> AuditOut:
        return cls(
            seq=e.seq,
            at=e.at,
            actor=e.actor,
            roles=e.roles,
            scope_path=e.scope_path,
            action=e.action,
            object_type=e.object_type,
            object_id=e.object_id,
            before=e.before,
            after=e.after,
            request_id=e.request_id,
            source=e.source,
            hash=e.hash,
        )


class AuditPage(BaseModel):
    items: list[AuditOut]
    next_after_seq: int | None
