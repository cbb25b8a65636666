"""Tenants as namespaces: ensure, check ownership, retire.

Called by the adapter. A tenant is one namespace (naming.py) carrying
Yunguan's ids as labels and annotations, a LimitRange `yunguan-defaults`
and the ResourceQuota `yunguan` (quotas.py), created closed.

Why each piece:

- Ownership is checked before anything is written: a namespace that exists
  without Yunguan's label, or for another project key, is refused, never
  adopted (it may be a platform namespace that happens to share the name).
- Everything is written by server-side apply with field manager "yunguan",
  so labels and annotations added by others (kubectl, a GitOps tool) stay.
- The retired label is applied by a second manager, "yunguan-retire", which
  owns nothing else: `ensure` revives a tenant by applying an empty body as
  that manager, and the apiserver drops exactly the label it owned.
- The LimitRange gives containers that state no requests/limits default
  ones, so every pod is counted by the quota; without limits.cpu and
  limits.memory defaults, such pods would be refused outright by a quota
  that names those keys. It is ours entirely (its `limits` list is atomic
  under apply); admins who want other limits add their own LimitRange.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kubernetes.client import V1Namespace
from kubernetes.client.exceptions import ApiException

from providers.base import (
    ProviderNotFound,
    ProviderRejected,
    ProviderUnavailable,
    TenantRef,
    TenantSpec,
)
from providers.kubernetes.client import KubeClient
from providers.kubernetes.naming import (
    ANNOTATION_KEY,
    LABEL_RETIRED,
    LIMIT_RANGE_NAME,
    MANAGED_BY,
    MANAGER,
    RETIRE_MANAGER,
    namespace_annotations,
    namespace_labels,
    namespace_name,
)
from providers.kubernetes.quotas import APPLY, Quotas


def _default_request() -> dict[str, str]:
    return {"cpu": "250m", "memory": "256Mi"}


def _default_limit() -> dict[str, str]:
    return {"cpu": "1", "memory": "1Gi"}


@dataclass(frozen=True)
class ContainerDefaults:
    """What the LimitRange gives a container that states nothing.

    A container that requests more than the default limit without stating a
    limit is refused by the apiserver (request > limit); 1 CPU / 1 GiB keeps
    that rare while a default pod stays small enough for small grants.
    """

    request: Mapping[str, str] = field(default_factory=_default_request)
    limit: Mapping[str, str] = field(default_factory=_default_limit)


def _labels(ns: V1Namespace) -> dict[str, str]:
    return dict((ns.metadata.labels if ns.metadata else None) or {})


def _annotations(ns: V1Namespace) -> dict[str, str]:
    return dict((ns.metadata.annotations if ns.metadata else None) or {})


class Tenants:
    def __init__(self, client: KubeClient, quotas: Quotas, defaults: ContainerDefaults) -> None:
        self._client = client
        self._quotas = quotas
        self._defaults = defaults

    def _read(self, name: str) -> V1Namespace | None:
        with self._client.errors(f"read namespace {name}"):
            try:
                return self._client.core.read_namespace(name)
            except ApiException as exc:
                if exc.status == 404:
                    return None
                raise

    def _check_ours(self, ns: V1Namespace, name: str, key: str) -> None:
        labels, annotations = _labels(ns), _annotations(ns)
        if labels.get(MANAGED_BY) != MANAGER:
            raise ProviderRejected(
                f"namespace {name} exists and is not managed by Yunguan; refusing to adopt it",
                cloud=self._client.cloud,
            )
        if annotations.get(ANNOTATION_KEY) != key:
            raise ProviderRejected(
                f"namespace {name} belongs to Yunguan project "
                f"{annotations.get(ANNOTATION_KEY)!r}, not {key!r}",
                cloud=self._client.cloud,
            )

    def namespace_of(self, tenant: TenantRef) -> str:
        """The tenant's namespace, after checking it exists and is this tenant's."""
        ns = self._read(tenant.provider_id)
        if ns is None:
            raise ProviderNotFound(
                f"namespace {tenant.provider_id} (tenant {tenant.key}) not found",
                cloud=self._client.cloud,
            )
        self._check_ours(ns, tenant.provider_id, tenant.key)
        return tenant.provider_id

    def ensure(self, spec: TenantSpec) -> TenantRef:
        name = namespace_name(spec.key)
        current = self._read(name)
        if current is not None:
            self._check_ours(current, name, spec.key)
            if current.status is not None and current.status.phase == "Terminating":
                raise ProviderUnavailable(
                    f"namespace {name} is being deleted; it can be ensured again once it is gone",
                    cloud=self._client.cloud,
                )
        body = {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {
                "name": name,
                "labels": namespace_labels(spec),
                "annotations": namespace_annotations(spec),
            },
        }
        applied = self._apply_namespace(name, body, MANAGER)
        if LABEL_RETIRED in _labels(applied):
            empty = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
            self._apply_namespace(name, empty, RETIRE_MANAGER)
        self._apply_limit_range(name)
        self._quotas.close_new(name)
        return TenantRef(key=spec.key, provider_id=name)

    def retire(self, tenant: TenantRef) -> None:
        """Quota to zero, then the retired label. Workloads are never deleted:
        running pods keep running, new ones are refused by the zero quota."""
        name = self.namespace_of(tenant)
        self._quotas.set_zero(name)
        body = {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": name, "labels": {LABEL_RETIRED: "true"}},
        }
        self._apply_namespace(name, body, RETIRE_MANAGER)

    def managed_namespaces(self) -> list[str]:
        """Names of every namespace Yunguan manages on this cluster."""
        with self._client.errors("list Yunguan namespaces"):
            found = self._client.core.list_namespace(label_selector=f"{MANAGED_BY}={MANAGER}")
        return sorted(n.metadata.name for n in found.items or [] if n.metadata and n.metadata.name)

    def _apply_namespace(self, name: str, body: dict[str, Any], manager: str) -> V1Namespace:
        with self._client.errors(f"apply namespace {name}"):
            return self._client.core.patch_namespace(
                name, body, field_manager=manager, force=True, _content_type=APPLY
            )

    def _apply_limit_range(self, namespace: str) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "LimitRange",
            "metadata": {
                "name": LIMIT_RANGE_NAME,
                "namespace": namespace,
                "labels": {MANAGED_BY: MANAGER},
            },
            "spec": {
                "limits": [
                    {
                        "type": "Container",
                        "defaultRequest": dict(self._defaults.request),
                        "default": dict(self._defaults.limit),
                    }
                ]
            },
        }
        with self._client.errors(f"apply limit range of {namespace}"):
            self._client.core.patch_namespaced_limit_range(
                LIMIT_RANGE_NAME,
                namespace,
                body,
                field_manager=MANAGER,
                force=True,
                _content_type=APPLY,
            )
