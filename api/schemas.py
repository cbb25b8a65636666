"""Response bodies of the topology routes."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from controlplane.db.tables import Cloud


class CloudOut(BaseModel):
    code: str
    name: str
    kind: str
    role: str
    owner: str
    architectures: list[str]
    region: str
    connection: dict[str, Any] = Field(description="a reference to credentials, never a secret")
    overcommit: dict[str, float]
    accelerators: list[str]
    enabled: bool

    @classmethod
    def of(cls, c: Cloud) -> CloudOut:
        return cls(
            code=c.code,
            name=c.name,
            kind=c.kind,
            role=c.role,
            owner=c.owner.code,
            architectures=list(c.architectures),
            region=c.region,
            connection=dict(c.connection),
            overcommit=dict(c.overcommit),
            accelerators=list(c.accelerators),
            enabled=c.enabled,
        )


class CloudList(BaseModel):
    items: list[CloudOut]
    total: int


class OrgNodeOut(BaseModel):
    code: str
    name: str
    level: str
    children: list[OrgNodeOut] = Field(default_factory=list)


class Health(BaseModel):
    status: str
    checks: dict[str, str] = Field(default_factory=dict)
