"""Optional OIDC: a JWT bearer signed by the government SSO, checked against a
JWKS file, mapped to a user (created on first sight) and to role bindings from
a claim. Off by default (`YUNGUAN_OIDC__ENABLED`).

Roles come from the token each time, never stored: revoking a role at the
identity provider takes effect with the next token.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jwt
from jwt import PyJWK, PyJWKSet
from sqlalchemy import select
from sqlalchemy.orm import Session

from controlplane.db.tables import OrgNode
from controlplane.identity.principal import Binding, Principal
from controlplane.identity.roles import ROLE_SCOPE_LEVELS, Role
from controlplane.identity.store import AuthError, IdentityStore
from controlplane.settings import OidcSettings

log = logging.getLogger("yunguan.auth")


class OidcVerifier:
    def __init__(self, cfg: OidcSettings) -> None:
        if cfg.jwks_file is None:
            raise ValueError("OIDC is enabled but oidc.jwks_file is not set")
        self._cfg = cfg
        data = json.loads(Path(cfg.jwks_file).read_text(encoding="utf-8"))
        self._keys: dict[str | None, PyJWK] = {k.key_id: k for k in PyJWKSet.from_dict(data).keys}

    def claims(self, bearer: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(bearer)
        except jwt.PyJWTError as exc:
            raise AuthError("auth.malformed", "the bearer token is malformed") from exc
        key = self._keys.get(header.get("kid")) or (
            next(iter(self._keys.values())) if len(self._keys) == 1 else None
        )
        if key is None:
            raise AuthError("auth.invalid", "the bearer token is not valid")
        try:
            claims: dict[str, Any] = jwt.decode(
                bearer,
                key=key,
                algorithms=self._cfg.algorithms,
                audience=self._cfg.audience,
                issuer=self._cfg.issuer,
                leeway=self._cfg.leeway_seconds,
                options={"require": ["exp", "iat"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise AuthError("auth.expired", "the bearer token has expired") from exc
        except jwt.PyJWTError as exc:
            raise AuthError("auth.invalid", "the bearer token is not valid") from exc
        return claims

    def principal(self, session: Session, bearer: str) -> Principal:
        claims = self.claims(bearer)
        login = claims.get(self._cfg.login_claim)
        if not isinstance(login, str) or not login:
            raise AuthError("auth.invalid", f"the token has no {self._cfg.login_claim} claim")
        user = IdentityStore(session).upsert_oidc_user(
            login, str(claims.get(self._cfg.name_claim) or login)
        )
        exp = claims.get("exp")
        expires_at = datetime.fromtimestamp(exp, UTC) if isinstance(exp, int | float) else None
        return Principal(
            user.id, user.login, self._bindings(session, claims), via="oidc", expires_at=expires_at
        )

    def _bindings(self, session: Session, claims: dict[str, Any]) -> tuple[Binding, ...]:
        raw = claims.get(self._cfg.roles_claim) or []
        wanted: list[tuple[Role, str]] = []
        for item in raw if isinstance(raw, list) else []:
            role_text, _, scope = str(item).partition("@")
            try:
                wanted.append((Role(role_text), scope))
            except ValueError:
                log.warning("ignoring unknown role %r in an OIDC token", role_text)
        codes = {scope for _, scope in wanted}
        nodes = {n.code: n for n in session.scalars(select(OrgNode).where(OrgNode.code.in_(codes)))}
        out = []
        for role, scope in wanted:
            node = nodes.get(scope)
            if node is None or node.level not in ROLE_SCOPE_LEVELS[role]:
                log.warning("ignoring OIDC binding %s@%s: no such scope", role.value, scope)
                continue
            out.append(Binding(role, node.code, node.path))
        return tuple(out)
