"""Builds the adapter for a cloud from its kind and connection reference.

Adapters are imported lazily by name, so a control plane that manages no
Kubernetes cloud never imports the kubernetes client (and the core never
imports an SDK at all). Called only by the composition root and the workers.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any, Protocol, cast

from controlplane.vocabulary import CloudKind
from providers.base import CloudProvider

DEFAULT_TIMEOUT_S = 15.0

# kind -> "module:Class"; each class has `from_connection(cloud, connection, timeout=)`.
ADAPTERS: dict[CloudKind, str] = {
    CloudKind.OPENSTACK: "providers.openstack.adapter:OpenStackProvider",
    CloudKind.KUBERNETES: "providers.kubernetes.adapter:KubernetesProvider",
    CloudKind.SLURM: "providers.slurm.adapter:SlurmProvider",
}


class _Factory(Protocol):
    def from_connection(
        self, cloud: str, connection: Mapping[str, Any], *, timeout: float
    ) -> CloudProvider: ...


def build_provider(
    cloud: str,
    kind: CloudKind,
    connection: Mapping[str, Any],
    *,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> CloudProvider:
    module_name, _, class_name = ADAPTERS[kind].partition(":")
    factory = cast(_Factory, getattr(importlib.import_module(module_name), class_name))
    return factory.from_connection(cloud, connection, timeout=timeout)
