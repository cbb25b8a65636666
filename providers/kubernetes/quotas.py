"""The tenant's ResourceQuota `yunguan`: written by server-side apply, read back exactly.

Called by the adapter for `set_quota`, `read_quota` and `retire_tenant`, and
by tenants.py to close a new namespace (every key at zero until a grant).

Why server-side apply (PATCH application/apply-patch+yaml, fieldManager
"yunguan"): the quota object may also carry keys other managers own, e.g. a
platform team's `count/configmaps`. Apply lets the apiserver track which
manager owns which key, so writing ours never touches theirs; a GET + PUT
would race them and a merge patch could not tell whose a key is. Verified on
the v1.20.2 testbed (beta there, on by default; GA in 1.22).

Apply semantics need care: a key this manager applied before and leaves out
of its next apply is *deleted*. The port says `set_quota` overwrites only the
keys it is given, so each apply re-sends every key Yunguan already owns (read
from `metadata.managedFields`) with the new values on top. `force` takes
ownership of our keys back from whoever edited them, and only of those: no
other key is ever in the body. The body carries the `resourceVersion` it was
computed from, so two writers cannot interleave read and apply; a 409 is
retried a few times, then reported.

Enforcement lags the write: quota admission checks `status.hard`, which the
resourcequota controller copies from `spec.hard` a moment later (0.4–3 s on
the testbed); until the first sync it refuses every pod ("status unknown for
quota"). `set` therefore returns only once status has caught up, so "quota
raised" means "the next pod is admitted".
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from kubernetes.client import V1ObjectMeta, V1ResourceQuota, V1ResourceQuotaSpec
from kubernetes.client.exceptions import ApiException

from controlplane.vocabulary import ResourceClass
from providers.base import ProviderRejected, ProviderUnavailable, QuotaReading
from providers.kubernetes.client import KubeClient
from providers.kubernetes.errors import status_message
from providers.kubernetes.mapping import QuotaTable
from providers.kubernetes.naming import MANAGED_BY, MANAGER, QUOTA_NAME
from providers.kubernetes.quantities import parse_value

APPLY = "application/apply-patch+yaml"
CONFLICT_RETRIES = 4
DEFAULT_SYNC_TIMEOUT_S = 15.0


def owned_keys(quota: V1ResourceQuota, manager: str = MANAGER) -> set[str]:
    """The `spec.hard` keys `manager` owns, per the apiserver's field ownership."""
    keys: set[str] = set()
    for entry in (quota.metadata.managed_fields if quota.metadata else None) or []:
        if entry.manager != manager or not isinstance(entry.fields_v1, dict):
            continue
        hard = entry.fields_v1.get("f:spec", {}).get("f:hard", {})
        keys.update(k[2:] for k in hard if k.startswith("f:"))
    return keys


def _hard(quota: V1ResourceQuota) -> dict[str, str]:
    return dict((quota.spec.hard if quota.spec else None) or {})


def _status(quota: V1ResourceQuota) -> tuple[dict[str, str], dict[str, str]]:
    status = quota.status
    return dict((status.hard if status else None) or {}), dict(
        (status.used if status else None) or {}
    )


def _same(a: Mapping[str, str], b: Mapping[str, str], keys: set[str] | None = None) -> bool:
    """Equal as quantities ("2Gi" == "2048Mi") on `keys` (default: the keys of `a`)."""
    return all(k in b and parse_value(a[k]) == parse_value(b[k]) for k in (keys or set(a)))


def is_synced(quota: V1ResourceQuota) -> bool:
    """Admission enforces spec.hard: status.hard matches it and usage is known for every key."""
    hard = _hard(quota)
    status_hard, used = _status(quota)
    return set(status_hard) == set(hard) and _same(hard, status_hard) and set(hard) <= set(used)


class Quotas:
    def __init__(
        self, client: KubeClient, table: QuotaTable, *, sync_timeout: float = DEFAULT_SYNC_TIMEOUT_S
    ) -> None:
        self._client = client
        self._table = table
        self._sync_timeout = sync_timeout

    # -- reads ----------------------------------------------------------------

    def get(self, namespace: str) -> V1ResourceQuota | None:
        with self._client.errors(f"read quota of {namespace}"):
            try:
                return self._client.core.read_namespaced_resource_quota(QUOTA_NAME, namespace)
            except ApiException as exc:
                if exc.status == 404:
                    return None
                raise

    def read(self, namespace: str) -> QuotaReading:
        quota = self.get(namespace)
        if quota is None:  # a namespace Yunguan has not closed yet: nothing enforced
            return QuotaReading(
                limits=dict.fromkeys(self._table.classes),
                in_use=dict.fromkeys(self._table.classes, 0),
            )
        _, used = _status(quota)
        return QuotaReading(
            limits=self._table.read_limits(_hard(quota)), in_use=self._table.read_usage(used)
        )

    # -- writes ---------------------------------------------------------------

    def close_new(self, namespace: str) -> None:
        """Create the quota with every key at zero, unless it exists (then leave it alone).

        A namespace without a ResourceQuota may use the whole cluster; a new
        tenant gets nothing until its grant arrives through `set`. Create,
        not apply: create is atomic "only if absent", so a tenant re-ensured
        after its grant is never zeroed again.
        """
        body = V1ResourceQuota(
            api_version="v1",
            kind="ResourceQuota",
            metadata=V1ObjectMeta(
                name=QUOTA_NAME, namespace=namespace, labels={MANAGED_BY: MANAGER}
            ),
            spec=V1ResourceQuotaSpec(hard=self._zeros()),
        )
        with self._client.errors(f"create quota of {namespace}"):
            created: V1ResourceQuota | None
            try:
                created = self._client.core.create_namespaced_resource_quota(
                    namespace, body, field_manager=MANAGER
                )
            except ApiException as exc:
                if exc.status != 409:  # AlreadyExists: someone (we) got there first
                    raise
                created = self.get(namespace)
        # Admission enforces a quota only once the controller has filled its
        # status (before, it refuses with "status unknown" or, while its cache
        # lags, may not see the object at all): return when it is enforced.
        if created is not None:
            self._wait_synced(namespace, created)

    def set(self, namespace: str, limits: Mapping[ResourceClass, int]) -> None:
        self.apply(namespace, self._table.to_hard(limits))

    def set_zero(self, namespace: str) -> None:
        self.apply(namespace, self._zeros())

    def apply(self, namespace: str, changes: Mapping[str, str]) -> None:
        """Overlay `changes` on the keys Yunguan owns, apply, and wait until enforced."""
        for attempt in range(CONFLICT_RETRIES + 1):
            current = self.get(namespace)
            # No quota object (deleted by hand): start closed, as close_new would.
            ours, rv = self._zeros(), None
            if current is not None:
                hard = _hard(current)
                mine = owned_keys(current)
                if set(changes) <= mine and _same(changes, hard):
                    self._wait_synced(namespace, current)  # nothing to write
                    return
                ours = {k: hard[k] for k in mine if k in hard}
                rv = current.metadata.resource_version if current.metadata else None
            desired = {**ours, **changes}
            try:
                with self._client.errors(f"apply quota of {namespace}"):
                    try:
                        written = self._client.core.patch_namespaced_resource_quota(
                            QUOTA_NAME,
                            namespace,
                            self._body(namespace, desired, resource_version=rv),
                            field_manager=MANAGER,
                            force=True,
                            _content_type=APPLY,
                        )
                    except ApiException as exc:
                        if exc.status == 409 and attempt < CONFLICT_RETRIES:
                            raise _Conflict(status_message(exc)) from exc
                        raise
            except _Conflict:
                time.sleep(0.05 * (attempt + 1))  # another writer moved it: re-read, re-apply
                continue
            self._wait_synced(namespace, written)
            return
        raise ProviderRejected(  # unreachable: the last attempt re-raises its 409
            f"quota of {namespace}: conflicting writers", cloud=self._client.cloud
        )

    def _wait_synced(self, namespace: str, quota: V1ResourceQuota) -> None:
        deadline = time.monotonic() + self._sync_timeout
        delay = 0.05  # the controller usually syncs within 0.1 s of a change
        while not is_synced(quota):
            if time.monotonic() > deadline:
                raise ProviderUnavailable(
                    f"quota of {namespace} written, but the resourcequota controller has not "
                    f"synced its status in {self._sync_timeout:.0f} s; the old limits stay "
                    "enforced until it does (is kube-controller-manager running?)",
                    cloud=self._client.cloud,
                )
            time.sleep(delay)
            delay = min(delay * 1.5, 0.5)
            fresh = self.get(namespace)
            if fresh is None:
                raise ProviderUnavailable(
                    f"quota of {namespace} vanished while waiting for its status",
                    cloud=self._client.cloud,
                )
            quota = fresh

    def _zeros(self) -> dict[str, str]:
        return dict.fromkeys(sorted(self._table.all_keys), "0")

    def _body(
        self, namespace: str, hard: Mapping[str, str], *, resource_version: str | None
    ) -> dict[str, Any]:
        metadata: dict[str, Any] = {
            "name": QUOTA_NAME,
            "namespace": namespace,
            "labels": {MANAGED_BY: MANAGER},
        }
        if resource_version:
            metadata["resourceVersion"] = resource_version
        return {
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": metadata,
            "spec": {"hard": dict(sorted(hard.items()))},
        }


class _Conflict(Exception):
    """A 409 from our optimistic apply, still within the retry budget."""
