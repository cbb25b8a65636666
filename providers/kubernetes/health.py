"""Is the cluster usable by Yunguan? `/version`, `/readyz`, and whether our credentials
may write quotas. Called by the adapter's `check_health`; never raises.

`up` means the apiserver answered /version with our credentials and /readyz
said ok. A 401 counts as down (nothing works with those credentials); a
token that authenticates but lacks RBAC rights stays up with the missing
right in `checks["rights"]`, since the cluster itself is fine and the fix is
a RoleBinding, not a restart.
"""

from __future__ import annotations

import time

from kubernetes.client import (
    V1ResourceAttributes,
    V1SelfSubjectAccessReview,
    V1SelfSubjectAccessReviewSpec,
)
from kubernetes.client.exceptions import ApiException

from providers.base import HealthReport, ProviderError
from providers.kubernetes.client import KubeClient
from providers.kubernetes.errors import status_message


def _rights(client: KubeClient) -> str:
    """Can we patch resourcequotas everywhere? One SelfSubjectAccessReview."""
    review = V1SelfSubjectAccessReview(
        spec=V1SelfSubjectAccessReviewSpec(
            resource_attributes=V1ResourceAttributes(verb="patch", resource="resourcequotas")
        )
    )
    with client.errors("review own rights"):
        answer = client.authz.create_self_subject_access_review(review)
    allowed = bool(answer.status and answer.status.allowed)
    return "ok" if allowed else "missing: patch resourcequotas (cluster-wide)"


def check_health(client: KubeClient) -> HealthReport:
    started = time.monotonic()
    checks: dict[str, str] = {}

    def report(up: bool, detail: str) -> HealthReport:
        latency = (time.monotonic() - started) * 1000.0
        return HealthReport(up=up, latency_ms=latency, detail=detail, checks=checks)

    try:
        with client.errors("GET /version"):
            try:
                version = client.version.get_code()
            except ApiException as exc:
                if exc.status == 401:
                    checks["version"] = "401"
                    return report(False, f"credentials rejected: {status_message(exc)}")
                raise
        checks["version"] = str(version.git_version)
        with client.errors("GET /readyz"):
            status, body = client.get_text("/readyz")
        checks["readyz"] = "ok" if status == 200 else f"{status}: {body.strip()[:200]}"
        if status != 200:
            return report(False, f"apiserver not ready: /readyz answered {status}")
    except ProviderError as exc:
        return report(False, exc.message)
    try:
        checks["rights"] = _rights(client)
    except ProviderError as exc:  # the apiserver is up; only the review failed
        checks["rights"] = f"unknown: {exc.message}"
    detail = f"kubernetes {checks['version']} at {client.server}"
    if checks["rights"] != "ok":
        detail += f"; credentials lack rights ({checks['rights']})"
    return report(True, detail)
