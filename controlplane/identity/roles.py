"""Roles, permissions and what each role may do; pure.

A role is always bound to a scope (an org node: the province, a prefecture,
a department) and applies to that node's whole subtree. Permissions are
coarse verbs on a kind of object; the scope decides *which* objects.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    PROVINCE_ADMIN = "province-admin"
    PREFECTURE_ADMIN = "prefecture-admin"
    DEPARTMENT_MANAGER = "department-manager"
    DEPARTMENT_MEMBER = "department-member"
    OPS_VIEWER = "ops-viewer"
    AUDITOR = "auditor"


class Permission(StrEnum):
    """`<object>:<verb>`; the set is closed so a route cannot invent one."""

    SELF = "self:manage"  # one's own profile and tokens; every authenticated user
    ORG_READ = "org:read"
    CLOUD_READ = "cloud:read"
    USER_READ = "user:read"
    USER_WRITE = "user:write"
    AUDIT_READ = "audit:read"
    CAPACITY_READ = "capacity:read"
    QUOTA_READ = "quota:read"
    QUOTA_GRANT = "quota:grant"
    REQUEST_FILE = "request:file"
    REQUEST_READ = "request:read"
    REQUEST_APPROVE = "request:approve"
    OPERATION_READ = "operation:read"
    OPERATION_RETRY = "operation:retry"
    MIGRATION_READ = "migration:read"
    MIGRATION_WRITE = "migration:write"


_READ_COMMON = {Permission.ORG_READ, Permission.CLOUD_READ}

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.PROVINCE_ADMIN: frozenset(Permission),
    Role.PREFECTURE_ADMIN: frozenset(
        _READ_COMMON
        | {
            Permission.USER_READ,
            Permission.USER_WRITE,
            Permission.CAPACITY_READ,
            Permission.QUOTA_READ,
            Permission.QUOTA_GRANT,
            Permission.REQUEST_FILE,
            Permission.REQUEST_READ,
            Permission.REQUEST_APPROVE,
            Permission.OPERATION_READ,
            Permission.OPERATION_RETRY,
            Permission.MIGRATION_READ,
            Permission.MIGRATION_WRITE,
        }
    ),
    Role.DEPARTMENT_MANAGER: frozenset(
        _READ_COMMON
        | {
            Permission.USER_READ,
            Permission.QUOTA_READ,
            Permission.REQUEST_FILE,
            Permission.REQUEST_READ,
            Permission.REQUEST_APPROVE,
            Permission.OPERATION_READ,
            Permission.MIGRATION_READ,
            Permission.MIGRATION_WRITE,
        }
    ),
    Role.DEPARTMENT_MEMBER: frozenset(
        _READ_COMMON
        | {
            Permission.QUOTA_READ,
            Permission.REQUEST_FILE,
            Permission.REQUEST_READ,
            Permission.OPERATION_READ,
            Permission.MIGRATION_READ,
        }
    ),
    Role.OPS_VIEWER: frozenset(
        _READ_COMMON
        | {
            Permission.CAPACITY_READ,
            Permission.QUOTA_READ,
            Permission.OPERATION_READ,
            Permission.MIGRATION_READ,
        }
    ),
    Role.AUDITOR: frozenset(_READ_COMMON | {Permission.AUDIT_READ}),
}

# The org level each role may be bound at: a department role on a prefecture
# would silently widen it to every department there.
ROLE_SCOPE_LEVELS: dict[Role, frozenset[str]] = {
    Role.PROVINCE_ADMIN: frozenset({"province"}),
    Role.PREFECTURE_ADMIN: frozenset({"prefecture"}),
    Role.DEPARTMENT_MANAGER: frozenset({"department"}),
    Role.DEPARTMENT_MEMBER: frozenset({"department"}),
    Role.OPS_VIEWER: frozenset({"province", "prefecture"}),
    Role.AUDITOR: frozenset({"province", "prefecture"}),
}
