"""Names and labels Yunguan writes into a cluster, derived deterministically from its ids.

A tenant's namespace is `yg-<project key>` when that is a valid DNS-1123
label (≤ 63 characters, lowercase alphanumerics and '-', alphanumeric at both
ends); otherwise the key is lowercased, stripped of other characters,
truncated, and suffixed with 8 hex digits of its SHA-256, so two keys that
clean up alike still get different namespaces and the same key always gets
the same one. The exact key is kept in an annotation, which is what
ownership checks compare.
"""

from __future__ import annotations

import hashlib
import re

from providers.base import TenantSpec

NAMESPACE_PREFIX = "yg-"
DOMAIN = "yunguan.hunan.gov.cn"
MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER = "yunguan"  # also the server-side-apply field manager
RETIRE_MANAGER = "yunguan-retire"  # owns only the retired label, so ensure can drop it

LABEL_PROJECT = f"{DOMAIN}/project"
LABEL_DEPARTMENT = f"{DOMAIN}/department"
LABEL_PREFECTURE = f"{DOMAIN}/prefecture"
LABEL_PROVINCE = f"{DOMAIN}/province"
LABEL_RETIRED = f"{DOMAIN}/retired"
ANNOTATION_KEY = f"{DOMAIN}/key"
ANNOTATION_NAME = f"{DOMAIN}/name"
ANNOTATION_PATH = f"{DOMAIN}/path"
ANNOTATION_DESCRIPTION = f"{DOMAIN}/description"

QUOTA_NAME = "yunguan"
LIMIT_RANGE_NAME = "yunguan-defaults"

MAX_LABEL = 63
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_LABEL_VALUE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?")


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def namespace_name(key: str) -> str:
    """The namespace of the tenant with project key `key` (stable, DNS-1123)."""
    plain = NAMESPACE_PREFIX + key
    if len(plain) <= MAX_LABEL and _DNS_LABEL.fullmatch(plain):
        return plain
    cleaned = re.sub(r"[^a-z0-9-]+", "-", key.lower()).strip("-")
    room = MAX_LABEL - len(NAMESPACE_PREFIX) - 1 - 8
    stem = cleaned[:room].rstrip("-")
    return (
        f"{NAMESPACE_PREFIX}{stem}-{_digest(key)}" if stem else f"{NAMESPACE_PREFIX}{_digest(key)}"
    )


def label_value(text: str) -> str:
    """`text` as a label value: itself when valid, else a truncated form with a hash."""
    if len(text) <= MAX_LABEL and _LABEL_VALUE.fullmatch(text):
        return text
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "-", text)
    stem = cleaned[: MAX_LABEL - 9].strip("-_.")
    return f"{stem}-{_digest(text)}" if stem else _digest(text)


def namespace_labels(spec: TenantSpec) -> dict[str, str]:
    """Yunguan's ids on the namespace, for selectors (`kubectl get ns -l ...`)."""
    labels = {
        MANAGED_BY: MANAGER,
        LABEL_PROJECT: label_value(spec.key),
        LABEL_PROVINCE: label_value(spec.path[0]) if spec.path else "",
    }
    if spec.department:
        labels[LABEL_DEPARTMENT] = label_value(spec.department)
    # Only a municipal project's path has four levels: province, prefecture,
    # department, project. A provincial one has no prefecture.
    if len(spec.path) >= 4:
        labels[LABEL_PREFECTURE] = label_value(spec.path[1])
    return {k: v for k, v in labels.items() if v}


def namespace_annotations(spec: TenantSpec) -> dict[str, str]:
    """The exact ids and the human names, which labels cannot hold (Chinese, length)."""
    annotations = {
        ANNOTATION_KEY: spec.key,
        ANNOTATION_NAME: spec.name,
        ANNOTATION_PATH: "/".join(spec.path),
    }
    if spec.description:
        annotations[ANNOTATION_DESCRIPTION] = spec.description
    return annotations


def managed_selector() -> str:
    return f"{MANAGED_BY}={MANAGER}"
