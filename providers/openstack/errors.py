"""Translates keystoneauth1 and openstacksdk exceptions into the provider error tree.

Every call the adapter makes to a cloud runs inside `translated(...)`, so no
SDK exception ever leaves `providers.openstack`; each is chained (`from exc`)
so the traceback still shows what the cloud said. The mapping::

    connection refused / reset, timeout, TLS, discovery failure  ProviderUnavailable
    HTTP 5xx, and SDK errors we cannot classify                  ProviderUnavailable
    HTTP 401, missing or invalid auth options, no such entry     ProviderAuthError
    no endpoint for a service in the catalog (wrong region)      ProviderAuthError
    HTTP 403: the call site decides (`forbidden=`)               ProviderAuthError by default
              a 403 saying a quota is exceeded                   ProviderRejected
    HTTP 404                                                     ProviderNotFound
    HTTP 400, 409, 422 and other 4xx                             ProviderRejected
    HTTP 413, 429 (Retry-After honoured)                         ProviderRateLimited

Why 403 depends on the context: Keystone, Nova and Placement answer 403 when
*our* credentials lack a role (policy), which an admin must fix, but Nova also
answers 403 "Quota exceeded" when a request goes over a tenant's quota, which
is a refusal of that request. Catalog and configuration problems count as auth
errors because they too need an admin to fix the clouds.yaml entry; retrying
would never help.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from keystoneauth1 import exceptions as ka_exc
from openstack import exceptions as sdk_exc

from providers.base import (
    ProviderAuthError,
    ProviderError,
    ProviderNotFound,
    ProviderRateLimited,
    ProviderRejected,
    ProviderUnavailable,
)

DEFAULT_RETRY_AFTER_S = 5.0


@contextmanager
def translated(
    cloud: str, action: str, *, forbidden: type[ProviderError] = ProviderAuthError
) -> Iterator[None]:
    """Runs the body; any SDK error becomes a ProviderError naming `action`."""
    try:
        yield
    except ProviderError:
        raise
    except (ka_exc.ClientException, sdk_exc.SDKException) as exc:
        raise translate(exc, cloud, action, forbidden=forbidden) from exc


def translate(
    exc: Exception,
    cloud: str,
    action: str,
    *,
    forbidden: type[ProviderError] = ProviderAuthError,
) -> ProviderError:
    status = _status_of(exc)
    if status is not None:
        return _from_status(status, exc, cloud, action, forbidden)
    if isinstance(exc, (ka_exc.ConnectionError, ka_exc.DiscoveryFailure)):
        return ProviderUnavailable(f"{action}: cannot reach the cloud: {_short(exc)}", cloud=cloud)
    if isinstance(exc, ka_exc.CatalogException):
        return ProviderAuthError(f"{action}: {_short(exc)} (check region and catalog)", cloud=cloud)
    if isinstance(exc, (ka_exc.AuthPluginException, sdk_exc.ConfigException)):
        return ProviderAuthError(f"{action}: bad connection settings: {_short(exc)}", cloud=cloud)
    # Unclassified SDK errors (a response that is not JSON, an SDK wait that
    # timed out, ...): transient more often than not, so the worker retries.
    return ProviderUnavailable(f"{action}: {type(exc).__name__}: {_short(exc)}", cloud=cloud)


_BY_STATUS: dict[int, type[ProviderError]] = {
    401: ProviderAuthError,
    404: ProviderNotFound,
}


def _from_status(
    status: int, exc: Exception, cloud: str, action: str, forbidden: type[ProviderError]
) -> ProviderError:
    said = _provider_message(exc)
    message = f"{action}: {said} (HTTP {status})"
    if status in (413, 429):
        return ProviderRateLimited(message, cloud=cloud, retry_after=_retry_after(exc))
    if status == 403:
        # "Quota exceeded for instances ..."; a policy refusal never says
        # "exceed" (and may well say "quota": os_compute_api:os-quota-sets:update).
        cls = ProviderRejected if "exceed" in said.lower() else forbidden
    elif status >= 500:
        cls = ProviderUnavailable
    else:
        cls = _BY_STATUS.get(status, ProviderRejected)
    return cls(message, cloud=cloud)


def _status_of(exc: Exception) -> int | None:
    if isinstance(exc, sdk_exc.HttpException) and exc.status_code is not None:
        return int(exc.status_code)
    if isinstance(exc, ka_exc.HttpError) and exc.http_status:
        return int(exc.http_status)
    return None


def _provider_message(exc: Exception) -> str:
    """What the service said, without the SDK's "Client Error for url" wrapping."""
    details: Any = getattr(exc, "details", None)
    if isinstance(details, str) and details.strip():
        return details.strip()
    message: Any = getattr(exc, "message", None)
    if isinstance(message, str) and message.strip():
        return message.strip()
    return _short(exc)


def _retry_after(exc: Exception) -> float:
    response: Any = getattr(exc, "response", None)
    header = response.headers.get("Retry-After") if response is not None else None
    try:
        return max(float(header), 0.0) if header is not None else DEFAULT_RETRY_AFTER_S
    except ValueError:  # an HTTP date instead of seconds: not worth parsing
        return DEFAULT_RETRY_AFTER_S


def _short(exc: Exception, limit: int = 300) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
