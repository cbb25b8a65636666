"""Users, role bindings and API tokens in the caller's unit of work (never commits).

Called by the API's auth dependency (to resolve a bearer token), the user
routes and the `yunguan user|token` commands.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Select, bindparam, select, update
from sqlalchemy.orm import Session, selectinload

from controlplane.db.base import utcnow
from controlplane.db.identity_tables import ApiToken, RoleBinding, User
from controlplane.db.scoping import within_clause
from controlplane.db.tables import OrgNode
from controlplane.identity import tokens
from controlplane.identity.principal import Binding, Principal
from controlplane.identity.roles import ROLE_SCOPE_LEVELS, Role
from controlplane.vocabulary import ConflictError, InvalidInputError, NotFoundError

# The statements of `authenticate`, built once (construction costs more than
# running them). Selected through the mapped columns, so datetimes come back
# as the ORM gives them (UTC-aware).
_TOKEN_BY_SELECTOR = select(ApiToken.id, ApiToken.digest).where(
    ApiToken.selector == bindparam("selector")
)
_TOKEN_WITH_USER = (
    select(
        ApiToken.user_id,
        ApiToken.expires_at,
        ApiToken.revoked_at,
        ApiToken.last_used_at,
        User.login,
        User.active,
        RoleBinding.role,
        OrgNode.code.label("scope_code"),
        OrgNode.path.label("scope_path"),
    )
    .select_from(ApiToken)
    .join(User, User.id == ApiToken.user_id)
    .outerjoin(RoleBinding, RoleBinding.user_id == User.id)
    .outerjoin(OrgNode, OrgNode.id == RoleBinding.scope_id)
    .where(ApiToken.id == bindparam("token_id"))
    .order_by(RoleBinding.id)  # as User.bindings is ordered
)
_STAMP_LAST_USED = (
    update(ApiToken)
    .where(ApiToken.id == bindparam("token_id"))
    .values(last_used_at=bindparam("now"))
)

MAX_TOKEN_DAYS = 365
LAST_USED_RESOLUTION = timedelta(minutes=1)
LOGIN_PATTERN = r"^[a-z][a-z0-9._-]{1,63}$"


class AuthError(Exception):
    """A bearer credential was refused; `code` says why (never which part)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class IssuedToken:
    id: int
    name: str
    plaintext: str
    expires_at: datetime


def principal_of(user: User, via: str = "token") -> Principal:
    return Principal(
        user_id=user.id,
        login=user.login,
        bindings=tuple(Binding(Role(b.role), b.scope.code, b.scope.path) for b in user.bindings),
        via=via,
    )


class IdentityStore:
    def __init__(self, session: Session) -> None:
        self._s = session

    # -- users ---------------------------------------------------------------
    def _scope(self, code: str) -> OrgNode:
        node = self._s.scalar(select(OrgNode).where(OrgNode.code == code))
        if node is None:
            raise NotFoundError(f"no organisation node {code!r}", code="org.not_found")
        return node

    def _user_query(self) -> Select[User]:
        return select(User).options(
            selectinload(User.bindings).selectinload(RoleBinding.scope),
            selectinload(User.home_scope),
        )

    def user(self, login: str) -> User:
        found = self._s.scalar(self._user_query().where(User.login == login))
        if found is None:
            raise NotFoundError(f"no user {login!r}", code="user.not_found")
        return found

    def find_user(self, login: str) -> User | None:
        return self._s.scalar(self._user_query().where(User.login == login))

    def users(self, scopes: tuple[str, ...] | None, *, limit: int, offset: int) -> Sequence[User]:
        """Users whose home scope lies within `scopes` (None: all)."""
        query = self._user_query().order_by(User.login)
        if scopes is not None:
            query = query.join(User.home_scope).where(within_clause(OrgNode.path, scopes))
        return self._s.scalars(query.limit(limit).offset(offset)).all()

    def create_user(self, login: str, display_name: str, home_scope: str | None) -> User:
        if self._s.scalar(select(User.id).where(User.login == login)) is not None:
            raise ConflictError(f"user {login!r} already exists", code="user.exists")
        user = User(login=login, display_name=display_name, active=True, source="local")
        if home_scope:
            user.home_scope_id = self._scope(home_scope).id
        self._s.add(user)
        self._s.flush()
        return user

    def bind(self, user: User, role: Role, scope_code: str) -> RoleBinding:
        scope = self._scope(scope_code)
        if scope.level not in ROLE_SCOPE_LEVELS[role]:
            allowed = " or ".join(sorted(ROLE_SCOPE_LEVELS[role]))
            raise InvalidInputError(
                f"role {role.value} is bound to a {allowed}, not to {scope.level} {scope.code!r}",
                code="binding.invalid_scope",
            )
        if any(b.role == role.value and b.scope_id == scope.id for b in user.bindings):
            raise ConflictError(
                f"{user.login} already holds {role.value} at {scope.code}", code="binding.exists"
            )
        binding = RoleBinding(role=role.value, scope_id=scope.id, scope=scope)
        user.bindings.append(binding)
        self._s.flush()
        return binding

    def unbind(self, user: User, binding_id: int) -> RoleBinding:
        binding = next((b for b in user.bindings if b.id == binding_id), None)
        if binding is None:
            raise NotFoundError(
                f"no binding {binding_id} for {user.login}", code="binding.not_found"
            )
        user.bindings.remove(binding)
        self._s.flush()
        return binding

    def upsert_oidc_user(self, login: str, display_name: str) -> User:
        user = self.find_user(login)
        if user is None:
            user = User(login=login, display_name=display_name, active=True, source="oidc")
            self._s.add(user)
            self._s.flush()
        return user

    # -- tokens --------------------------------------------------------------
    def issue_token(self, secret_key: str, user: User, name: str, days: int) -> IssuedToken:
        if not 1 <= days <= MAX_TOKEN_DAYS:
            raise InvalidInputError(
                f"token lifetime must be 1 to {MAX_TOKEN_DAYS} days, got {days}",
                code="token.invalid_lifetime",
            )
        minted = tokens.mint(secret_key)
        row = ApiToken(
            selector=minted.selector,
            digest=minted.digest,
            user_id=user.id,
            name=name,
            expires_at=utcnow() + timedelta(days=days),
        )
        self._s.add(row)
        self._s.flush()
        return IssuedToken(row.id, name, minted.plaintext, row.expires_at)

    def tokens_of(self, user: User) -> Sequence[ApiToken]:
        return self._s.scalars(
            select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id)
        ).all()

    def token(self, token_id: int) -> ApiToken:
        row = self._s.get(ApiToken, token_id)
        if row is None:
            raise NotFoundError(f"no token {token_id}", code="token.not_found")
        return row

    def revoke(self, row: ApiToken) -> None:
        if row.revoked_at is None:
            row.revoked_at = utcnow()
            self._s.flush()

    def authenticate(self, secret_key: str, bearer: str, now: datetime) -> Principal:
        """Resolves a `ygt_` token to its principal or raises AuthError.

        Core statements on the session's connection, no ORM objects: this runs
        for every new bearer and again every few seconds for every busy one
        (the principal cache's refresh), in a thread beside the event loop, and
        the ORM's user-with-bindings load cost ~6 ms of CPU (8 round trips) per
        lookup against 0.74 ms (4) this way (bench/quota_http.py).
        """
        selector = tokens.selector_of(bearer)
        if selector is None:
            raise AuthError("auth.malformed", "the bearer token is malformed")
        conn = self._s.connection()
        # One light query either way, the same for an unknown selector and a
        # wrong secret (two plain columns, no row processing to tell them
        # apart); the rest is read only after the secret matched.
        found = conn.execute(_TOKEN_BY_SELECTOR, {"selector": selector}).first()
        if not tokens.matches(secret_key, bearer, found.digest if found else None) or not found:
            raise AuthError("auth.invalid", "the bearer token is not valid")
        rows = conn.execute(_TOKEN_WITH_USER, {"token_id": found.id}).all()
        if not rows:  # the token (or its user) was deleted between the two reads
            raise AuthError("auth.invalid", "the bearer token is not valid")
        first = rows[0]
        if first.revoked_at is not None:
            raise AuthError("auth.revoked", "the bearer token was revoked")
        if first.expires_at <= now:
            raise AuthError("auth.expired", "the bearer token has expired")
        if not first.active:
            raise AuthError("auth.inactive", "the user is deactivated")
        # A write per request would serialise every caller sharing a token on its
        # row lock; a minute's resolution is plenty to spot an unused token.
        if first.last_used_at is None or now - first.last_used_at > LAST_USED_RESOLUTION:
            conn.execute(_STAMP_LAST_USED, {"token_id": found.id, "now": now})
        return Principal(
            user_id=first.user_id,
            login=first.login,
            bindings=tuple(
                Binding(Role(r.role), r.scope_code, r.scope_path)
                for r in rows
                if r.role is not None  # a user without bindings: one row of NULLs
            ),
            via="token",
            expires_at=first.expires_at,
        )

    def user_by_id(self, user_id: int) -> User:
        user = self._s.scalar(self._user_query().where(User.id == user_id))
        if user is None:
            raise NotFoundError(f"no user {user_id}", code="user.not_found")
        return user
