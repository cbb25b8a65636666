"""Facts about pods and nodes that both capacity.py and inventory.py need.

Pure functions over the client's model objects: where a node or pod runs
(architecture), whether a node takes new pods, and what a pod requests.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from fractions import Fraction

from kubernetes.client import V1Container, V1Node, V1Pod

from controlplane.vocabulary import Architecture
from providers.kubernetes.quantities import parse_value

log = logging.getLogger(__name__)

ARCH_LABEL = "kubernetes.io/arch"
_LEGACY_ARCH_LABEL = "beta.kubernetes.io/arch"

# GOARCH (what kubelets label nodes with) -> `uname -m`, Yunguan's spelling.
GOARCH_TO_ARCHITECTURE: dict[str, Architecture] = {
    "amd64": Architecture.X86_64,  # Intel, AMD, Hygon
    "arm64": Architecture.AARCH64,  # Kunpeng, Phytium
    "loong64": Architecture.LOONGARCH64,  # Loongson 3A5000+
    "mips64le": Architecture.MIPS64EL,  # older Loongson
    "sw64": Architecture.SW_64,  # Sunway (vendor Go port)
}

# Taints that mean "no tenant workload lands here", whatever the node says
# otherwise. Other NoSchedule taints are kept on purpose: GPU nodes are often
# tainted so only pods that tolerate it land there, and they are still
# capacity the tenants of the AI centre use.
EXCLUDING_TAINTS = frozenset(
    {
        "node.kubernetes.io/unschedulable",
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
        "node-role.kubernetes.io/master",
        "node-role.kubernetes.io/control-plane",
    }
)
TERMINAL_PHASES = frozenset({"Succeeded", "Failed"})


def to_architecture(goarch: str | None) -> Architecture | None:
    return GOARCH_TO_ARCHITECTURE.get(goarch or "")


def node_architecture(node: V1Node) -> Architecture | None:
    labels = (node.metadata.labels if node.metadata else None) or {}
    goarch = labels.get(ARCH_LABEL) or labels.get(_LEGACY_ARCH_LABEL)
    if not goarch and node.status and node.status.node_info:
        goarch = node.status.node_info.architecture
    arch = to_architecture(goarch)
    if arch is None:
        name = node.metadata.name if node.metadata else "?"
        log.warning(
            "node %s has architecture %r, which Yunguan does not know; skipped", name, goarch
        )
    return arch


def node_schedulable(node: V1Node) -> bool:
    """Takes new pods: not cordoned, no excluding taint, and Ready.

    A node with no conditions at all counts as Ready: its kubelet has not
    reported yet, which is how nodes registered ahead of their kubelet look
    (and every node of the kubelet-less testbed). A node whose kubelet did
    report must say Ready=True.
    """
    spec, status = node.spec, node.status
    if spec is not None:
        if spec.unschedulable:
            return False
        for taint in spec.taints or []:
            if taint.effect in ("NoSchedule", "NoExecute") and taint.key in EXCLUDING_TAINTS:
                return False
    conditions = (status.conditions if status else None) or []
    if not conditions:
        return True
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


def node_allocatable(node: V1Node) -> dict[str, Fraction]:
    raw = (node.status.allocatable if node.status else None) or {}
    return {name: parse_value(value) for name, value in raw.items()}


def _requests(containers: Iterable[V1Container]) -> Iterable[dict[str, Fraction]]:
    for container in containers:
        resources = container.resources
        raw = (resources.requests if resources else None) or {}
        yield {name: parse_value(value) for name, value in raw.items()}


def pod_requests(pod: V1Pod) -> dict[str, Fraction]:
    """What the scheduler and the quota count for a pod: the sum over its
    containers, at least the largest init container (they run one at a
    time, before the others), plus the runtime-class overhead."""
    spec = pod.spec
    if spec is None:
        return {}
    total: dict[str, Fraction] = {}
    for requests in _requests(spec.containers or []):
        for name, amount in requests.items():
            total[name] = total.get(name, Fraction(0)) + amount
    for requests in _requests(spec.init_containers or []):
        for name, amount in requests.items():
            total[name] = max(total.get(name, Fraction(0)), amount)
    for name, value in (spec.overhead or {}).items():
        total[name] = total.get(name, Fraction(0)) + parse_value(value)
    return total


def pod_live(pod: V1Pod) -> bool:
    """Counted by the quota: not yet finished (Succeeded/Failed pods free their share)."""
    return (pod.status.phase if pod.status else None) not in TERMINAL_PHASES


def pod_pinned_architecture(pod: V1Pod) -> Architecture | None:
    """The architecture a pod asks for through its nodeSelector, if any."""
    selector = (pod.spec.node_selector if pod.spec else None) or {}
    return to_architecture(selector.get(ARCH_LABEL))
