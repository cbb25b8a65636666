"""Yunguan's own error tree, with stable codes.

    YunguanError                 code                 (HTTP, rendered by api/ only)
     ├── InvalidInputError       "<area>.invalid"     422
     ├── UnauthenticatedError    "auth.<why>"         401
     ├── ForbiddenError          "auth.forbidden"     403
     ├── NotFoundError           "<area>.not_found"   404
     ├── ConflictError           "<area>.conflict"    409
     └── PreconditionFailedError "<area>.stale"       412

A code, once published, is never reused for another meaning (the Placement
lesson): clients and runbooks match on it. Only api/ maps the tree to HTTP;
the CLI prints `error: <message>`.
"""

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Problem:
    """One thing wrong with an input: where it is and what is wrong."""

    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message


@dataclass
class YunguanError(Exception):
    """Base of every error the control plane raises on purpose."""

    message: str
    code: str = "yunguan.error"
    problems: list[Problem] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message


@dataclass
class InvalidInputError(YunguanError):
    """The caller sent something we will not accept; nothing was written."""

    code: str = "input.invalid"


@dataclass
class NotFoundError(YunguanError):
    """The named object does not exist (or is outside the caller's scope)."""

    code: str = "object.not_found"


@dataclass
class ConflictError(YunguanError):
    """The request is valid but clashes with the current state."""

    code: str = "state.conflict"


@dataclass
class UnauthenticatedError(YunguanError):
    """No credential, or one that is malformed, unknown, expired or revoked."""

    code: str = "auth.invalid"


@dataclass
class ForbiddenError(YunguanError):
    """The caller is known and may see the object, but not do this to it."""

    code: str = "auth.forbidden"


@dataclass
class PreconditionFailedError(YunguanError):
    """An If-Match generation no longer matches the stored one."""

    code: str = "state.stale"
