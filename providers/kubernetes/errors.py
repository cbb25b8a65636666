"""Translation of kubernetes-client and urllib3 errors into the `providers.base` tree.

Every call the adapter makes to the apiserver runs inside `translated(...)`,
so no `ApiException` or urllib3 error leaves `providers.kubernetes`. The
apiserver's own message (a `Status` object in the body) is kept, because it
says what a cluster admin needs to read ("exceeded quota: yunguan, requested:
pods=1, used: pods=2, limited: pods=2").

    what the apiserver / transport says                     -> raised
    refused, reset, timed out, TLS handshake failure, 5xx       ProviderUnavailable
    certificate not trusted by the kubeconfig's CA              ProviderAuthError
    403 "status unknown for quota", namespace terminating       ProviderUnavailable (transient)
    429 (with Retry-After)                                      ProviderRateLimited
    401; 403 `User "x" cannot <verb> ...` (RBAC)                ProviderAuthError
    404                                                         ProviderNotFound
    409 AlreadyExists / Conflict (after our own retries)        ProviderRejected
    422 invalid, 400, any other 403 (admission: exceeded        ProviderRejected
        quota, LimitRange)

A 403 is split by its message because Kubernetes uses it both for "your
credentials lack this right" (an admin must act) and for admission refusals
(the request itself is wrong, or must wait for a controller).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import urllib3.exceptions
from kubernetes.client.exceptions import ApiException

from providers.base import (
    ProviderAuthError,
    ProviderError,
    ProviderNotFound,
    ProviderRateLimited,
    ProviderRejected,
    ProviderUnavailable,
)

_RBAC_DENIAL = re.compile(r'User "[^"]*" cannot ')
# Admission refusals that clear up by themselves: the quota controller has
# not computed usage yet, or the namespace is being finalized.
_TRANSIENT_403 = ("status unknown for quota", "because it is being terminated")
DEFAULT_RETRY_AFTER_S = 5.0
_UNTRUSTED = "CERTIFICATE_VERIFY_FAILED"
_BY_STATUS: dict[int, type[ProviderError]] = {401: ProviderAuthError, 404: ProviderNotFound}


def _status(exc: ApiException) -> dict[str, Any]:
    """The `Status` object the apiserver put in the error body ({} when there is none)."""
    body: Any = exc.body
    if isinstance(body, bytes | bytearray):
        body = body.decode("utf-8", "replace")
    if not isinstance(body, str) or not body:
        return {}
    try:
        status = json.loads(body)
    except ValueError:
        return {"message": body.strip()[:500]}
    return status if isinstance(status, dict) else {}


def status_message(exc: ApiException) -> str:
    """The apiserver's `Status.message`, or the HTTP reason when the body has none."""
    message = _status(exc).get("message")
    if isinstance(message, str) and message:
        return message
    return str(exc.reason or "no reason given").strip()


def status_reason(exc: ApiException) -> str:
    """The apiserver's machine-readable `Status.reason` (Conflict, AlreadyExists, ...)."""
    return str(_status(exc).get("reason") or "")


def _retry_after(exc: ApiException) -> float:
    headers = exc.headers or {}
    raw = headers.get("Retry-After") if hasattr(headers, "get") else None
    try:
        return max(float(raw), 0.0) if raw is not None else DEFAULT_RETRY_AFTER_S
    except ValueError:
        return DEFAULT_RETRY_AFTER_S


def from_api_exception(exc: ApiException, *, cloud: str, action: str) -> ProviderError:
    """The ProviderError for an ApiException (not raised: the caller chains it)."""
    status = int(exc.status or 0)
    message = status_message(exc)
    text = f"{action}: {message}" if status == 0 else f"{action}: HTTP {status}: {message}"
    if status == 0:
        # How the client reports a TLS failure before any response.
        return from_transport_error(
            ConnectionError(exc.reason or message), cloud=cloud, action=action
        )
    if status >= 500:
        return ProviderUnavailable(text, cloud=cloud)
    if status == 429:
        return ProviderRateLimited(text, cloud=cloud, retry_after=_retry_after(exc))
    if status == 403:
        return _forbidden(text, message, cloud)
    # 401, 404; everything else (400, 409, 422) is a refusal of this request.
    return _BY_STATUS.get(status, ProviderRejected)(text, cloud=cloud)


def _forbidden(text: str, message: str, cloud: str) -> ProviderError:
    if _RBAC_DENIAL.search(message):
        return ProviderAuthError(text, cloud=cloud)
    if any(marker in message for marker in _TRANSIENT_403):
        return ProviderUnavailable(text, cloud=cloud)
    return ProviderRejected(text, cloud=cloud)


def from_transport_error(exc: Exception, *, cloud: str, action: str) -> ProviderError:
    """Refused, reset, timed out: the apiserver did not answer. Except an untrusted
    certificate: waiting will not fix the kubeconfig's CA, an admin must."""
    reason = getattr(exc, "reason", None) or exc
    if _UNTRUSTED in str(reason):
        return ProviderAuthError(
            f"{action}: the apiserver's certificate is not trusted by the kubeconfig's CA: "
            f"{reason}",
            cloud=cloud,
        )
    return ProviderUnavailable(f"{action}: apiserver unreachable: {reason}", cloud=cloud)


@contextmanager
def translated(cloud: str, action: str) -> Iterator[None]:
    """Run a block of apiserver calls; re-raise their failures as ProviderErrors, chained."""
    try:
        yield
    except ApiException as exc:
        raise from_api_exception(exc, cloud=cloud, action=action) from exc
    except urllib3.exceptions.HTTPError as exc:
        raise from_transport_error(exc, cloud=cloud, action=action) from exc
    except OSError as exc:
        # urllib3 wraps socket errors, but a TLS context that cannot even be
        # built (a CA file removed under us) surfaces as a bare OSError.
        raise from_transport_error(exc, cloud=cloud, action=action) from exc
