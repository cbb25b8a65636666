"""Read models (pools, grant trees, invariant reports) and the auto-approval policy.

Reads take no locks: they show a consistent snapshot of committed state,
which is all a listing needs.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from controlplane.vocabulary import InvalidInputError, OrgLevel, ResourceClass, supported_classes
from quotas.admission import violations
from quotas.grants import utc
from quotas.inputs import check_amount, parse_class
from quotas.model import Actor, Change, CloudRef, GrantRow
from quotas.ports import QuotaStore


def pools(store: QuotaStore, cloud_code: str | None = None) -> list[tuple[CloudRef, GrantRow]]:
    """Every (cloud, supported class) pool; undeclared ones show as zero rows."""
    clouds = [store.cloud(cloud_code)] if cloud_code else store.clouds()
    out = []
    for cloud in clouds:
        rows = {r.resource_class: r for r in store.grant_rows(cloud) if r.is_pool}
        for cls in sorted(supported_classes(cloud.kind), key=lambda c: c.value):
            out.append(
                (
                    cloud,
                    rows.get(cls)
                    or GrantRow(None, cls, cloud.owner, is_pool=True, overcommit=cloud.ratio(cls)),
                )
            )
    return out


def grant_tree(
    store: QuotaStore,
    cloud_code: str,
    resource_class: str | ResourceClass | None = None,
    within: tuple[str, ...] | None = None,
) -> tuple[CloudRef, list[GrantRow]]:
    """The rows of one cloud's trees (pool first, then by org path), optionally
    one class and only the nodes within the given org paths."""
    cloud = store.cloud(cloud_code)
    cls = parse_class(resource_class, "resource_class") if resource_class is not None else None
    rows = store.grant_rows(cloud, cls, within)
    return cloud, sorted(rows, key=lambda r: (r.resource_class.value, r.node.path))


def check_invariants(store: QuotaStore, cloud_code: str) -> list[str]:
    """Every violated invariant of a cloud's trees, and every derived sum that
    disagrees with the rows it sums (empty when all is sound)."""
    cloud = store.cloud(cloud_code)
    rows = store.grant_rows(cloud)
    parents = store.parents([r.node.id for r in rows])
    return violations(rows, parents, store.live_reserved(cloud))


def set_auto_approval(
    store: QuotaStore,
    actor: Actor,
    scope_code: str,
    limits: Mapping[str | ResourceClass, int] | None,
    *,
    now: datetime | None = None,
) -> Change:
    """Set (or with None, remove) the auto-approval limits of a prefecture or
    the province: requests under it whose every item is a delta within these
    limits and fits the department's unallocated headroom are approved at filing."""
    chain = store.chain(scope_code)
    scope = chain[-1]
    if scope.level not in {OrgLevel.PROVINCE, OrgLevel.PREFECTURE}:
        raise InvalidInputError(
            f"{scope_code!r} is a {scope.level.value}; policies belong to the province "
            "or a prefecture (the scopes that approve)",
            code="quota.invalid_scope",
        )
    parsed: dict[ResourceClass, int] | None = None
    if limits is not None:
        parsed = {}
        for key, amount in limits.items():
            cls = parse_class(key, f"limits.{key}")
            check_amount(amount, f"limits.{cls.value}", allow_zero=False)
            parsed[cls] = amount
    before = store.auto_approval(scope)
    store.set_auto_approval(scope, parsed, actor.id, utc(now))
    store.emit(
        "quota.auto_approval.set",
        "quota_auto_approval",
        scope.code,
        {"scope": scope.code, "by": actor.id},
    )

    def shown(limits: Mapping[ResourceClass, int] | None) -> dict[str, object] | None:
        if limits is None:
            return None
        return {"limits": {k.value: v for k, v in sorted(limits.items())}}

    return Change(
        "quota.auto_approval.set",
        "quota_auto_approval",
        scope.code,
        scope.path,
        shown(before.limits) if before else None,
        shown(parsed),
    )
