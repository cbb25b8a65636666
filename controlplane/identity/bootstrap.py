"""Creating users with a first role and token, outside the API (CLI, `yunguan up`)."""

from __future__ import annotations

import getpass

from sqlalchemy import select
from sqlalchemy.orm import Session

from controlplane.db.identity_tables import ApiToken, User
from controlplane.db.tables import OrgNode
from controlplane.identity import audit
from controlplane.identity.audit import AuditContext
from controlplane.identity.roles import Role
from controlplane.identity.store import IdentityStore, IssuedToken
from controlplane.vocabulary import InvalidInputError

DEV_ADMIN = "dev-admin"
DEV_TOKEN_NAME = "yunguan-up"  # noqa: S105 - a label, not a secret


def cli_context() -> AuditContext:
    try:
        who = getpass.getuser()
    except (KeyError, OSError):
        who = "unknown"
    return AuditContext(principal=None, source=f"cli:{who}")


def default_scope(session: Session, role: Role) -> str:
    """The province for province-wide roles; other roles must name their scope."""
    if role in {Role.PROVINCE_ADMIN, Role.OPS_VIEWER, Role.AUDITOR}:
        code = session.scalar(select(OrgNode.code).where(OrgNode.level == "province"))
        if code:
            return code
        raise InvalidInputError(
            "no province yet: apply a topology first (yunguan topology apply FILE)",
            code="org.empty",
        )
    raise InvalidInputError(f"role {role.value} needs --scope", code="binding.scope_required")


def create_user_with_token(
    session: Session,
    secret_key: str,
    *,
    login: str,
    display_name: str,
    role: Role,
    scope: str | None,
    days: int,
    ctx: AuditContext,
) -> tuple[User, IssuedToken]:
    store = IdentityStore(session)
    scope = scope or default_scope(session, role)
    user = store.create_user(login, display_name, scope)
    store.bind(user, role, scope)
    issued = store.issue_token(secret_key, user, "initial", days)
    path = user.home_path
    audit.record(
        session,
        ctx,
        "user.create",
        "user",
        login,
        scope_path=path,
        after={"login": login, "role": role.value, "scope": scope, "token_id": issued.id},
    )
    return user, issued


def dev_admin_token(session: Session, secret_key: str) -> IssuedToken:
    """For `yunguan up`: the dev admin exists and has one fresh token; older ones are revoked."""
    store = IdentityStore(session)
    user = store.find_user(DEV_ADMIN)
    ctx = AuditContext(principal=None, source="yunguan-up")
    if user is None:
        user, issued = create_user_with_token(
            session,
            secret_key,
            login=DEV_ADMIN,
            display_name="Development administrator",
            role=Role.PROVINCE_ADMIN,
            scope=None,
            days=30,
            ctx=ctx,
        )
        return issued
    for old in session.scalars(
        select(ApiToken).where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
    ):
        store.revoke(old)
    issued = store.issue_token(secret_key, user, DEV_TOKEN_NAME, 30)
    path = user.home_path
    audit.record(
        session,
        ctx,
        "token.issue",
        "token",
        str(issued.id),
        scope_path=path,
        after={"user": user.login, "name": issued.name},
    )
    return issued
