"""A small typed client for slurmrestd, pinned to one API version.

Every call of the adapter to slurmrestd goes through `SlurmRestClient.request`,
which adds the JWT headers, bounds the call with a timeout, reads the
`errors` list that v0.0.38 puts in failures *and* in some HTTP 200 replies,
and turns anything that is not a success into the port's error tree, chained
to the cause (`errors.SlurmReplyError` or the httpx exception)::

    httpx.TimeoutException, httpx.TransportError  → ProviderUnavailable
    401/403, Slurm auth errors (1007, 6000–6005)   → ProviderAuthError
    slurmctld's ambiguous "-1" under HTTP 500      → probe slurmdbd with the same token:
                                                      refused → ProviderAuthError,
                                                      accepted → ProviderUnavailable
    5xx without a usable Slurm error, 7000/7008    → ProviderUnavailable
    9003 "Nothing found" (unless tolerated)        → ProviderNotFound
    429                                            → ProviderRateLimited
    any other refusal (incl. 404: version missing) → ProviderRejected

Callers pass `tolerate=` for the errors that are normal for one call (an
empty result, the association-without-user parser complaint, deleting what
is absent); tolerated entries come back in `Reply.errors` instead of raising.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import httpx

from providers.base import (
    ProviderAuthError,
    ProviderError,
    ProviderNotFound,
    ProviderRateLimited,
    ProviderRejected,
    ProviderUnavailable,
)
from providers.slurm.errors import (
    DATA_UNCHANGED,
    NOTHING_FOUND,
    SlurmErrorEntry,
    SlurmReplyError,
    Verdict,
    classify,
    parse_errors,
)
from providers.slurm.tokens import TokenSource

# The one place the REST API version is named. Debian 12's Slurm 22.05 serves
# v0.0.36–v0.0.38; v0.0.39+ (Slurm 23.02+) changes the schemas (job
# environment as a list, a different association layout), so moving on is a
# code change, not a setting.
API_VERSION: Final = "v0.0.38"

log = logging.getLogger(__name__)

_ERROR_CLASSES: Final[Mapping[Verdict, type[ProviderError]]] = {
    Verdict.AUTH: ProviderAuthError,
    Verdict.UNAVAILABLE: ProviderUnavailable,
    Verdict.RATE_LIMITED: ProviderRateLimited,
    Verdict.NOT_FOUND: ProviderNotFound,
    Verdict.REJECTED: ProviderRejected,
}

Tolerate = Callable[[SlurmErrorEntry], bool]


def nothing_found(entry: SlurmErrorEntry) -> bool:
    """v0.0.38 answers an empty result with HTTP 500 "Nothing found" (accounts,
    associations, users; QOS answers 200 with an empty list instead)."""
    return entry.number == NOTHING_FOUND


def missing_user_field(entry: SlurmErrorEntry) -> bool:
    return entry.is_missing_user_field


def data_unchanged(entry: SlurmErrorEntry) -> bool:
    """DELETE of an absent object answers 200 with error 1900."""
    return entry.number == DATA_UNCHANGED


@dataclass(frozen=True)
class Reply:
    status: int
    body: Mapping[str, Any]
    errors: tuple[SlurmErrorEntry, ...] = ()  # the tolerated ones

    @property
    def empty(self) -> bool:
        return any(e.number == NOTHING_FOUND for e in self.errors)


class SlurmRestClient:
    """slurmrestd for one cluster, as one Slurm user. Thread-safe (httpx.Client is)."""

    def __init__(
        self,
        base_url: str,
        user: str,
        tokens: TokenSource,
        *,
        cloud: str,
        timeout: float,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.cloud = cloud
        self.user = user
        self._tokens = tokens
        self._timeout = timeout
        try:
            self._http = httpx.Client(
                base_url=base_url.rstrip("/"),
                timeout=httpx.Timeout(timeout),
                transport=transport,
                headers={"Accept": "application/json"},
            )
        except httpx.InvalidURL as exc:
            raise ProviderRejected(f"bad slurmrestd URL {base_url!r}", cloud=cloud) from exc

    def close(self) -> None:
        self._http.close()

    def token(self) -> str:
        """The token the next request will carry (tests register it with the log scan)."""
        return self._tokens.token()

    # -- calls -----------------------------------------------------------------

    def slurm(self, method: str, path: str, **kw: Any) -> Reply:
        """A slurmctld endpoint, e.g. `slurm("GET", "nodes")`."""
        return self.request(method, f"/slurm/{API_VERSION}/{path}", **kw)

    def slurmdb(self, method: str, path: str, **kw: Any) -> Reply:
        """A slurmdbd endpoint, e.g. `slurmdb("GET", "associations", params=...)`."""
        return self.request(method, f"/slurmdb/{API_VERSION}/{path}", **kw)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Mapping[str, Any] | None = None,
        tolerate: Tolerate | None = None,
    ) -> Reply:
        status, payload, text = self._send(method, path, params, body)
        errors = parse_errors(payload or {})
        tolerated = tuple(e for e in errors if tolerate is not None and tolerate(e))
        remaining = tuple(e for e in errors if e not in tolerated)
        # A 500 whose every error is tolerated ("Nothing found") is a success.
        effective = 200 if errors and not remaining else status
        verdict = classify(effective, remaining)
        if verdict is None:
            if payload is not None:
                return Reply(status=status, body=payload, errors=tolerated)
            verdict = Verdict.UNAVAILABLE  # a 2xx that is not JSON: a proxy page, a crash
        cause = SlurmReplyError(method, path, status, remaining, text)
        raise self._error_for(verdict, cause, path) from cause

    # -- internals ---------------------------------------------------------------

    def _send(
        self,
        method: str,
        path: str,
        params: Mapping[str, str] | None,
        body: Mapping[str, Any] | None,
    ) -> tuple[int, dict[str, Any] | None, str]:
        """(status, JSON object or None, raw text); transport failures raise."""
        headers = {"X-SLURM-USER-NAME": self.user, "X-SLURM-USER-TOKEN": self._tokens.token()}
        started = time.monotonic()
        try:
            response = self._http.request(method, path, params=params, json=body, headers=headers)
        except httpx.TimeoutException as exc:
            raise ProviderUnavailable(
                f"slurmrestd did not answer {method} {path} within {self._timeout:g} s",
                cloud=self.cloud,
            ) from exc
        except httpx.UnsupportedProtocol as exc:
            raise ProviderRejected(f"bad slurmrestd URL: {exc}", cloud=self.cloud) from exc
        except httpx.TransportError as exc:
            raise ProviderUnavailable(
                f"cannot reach slurmrestd ({exc.__class__.__name__}: {exc})", cloud=self.cloud
            ) from exc
        elapsed_ms = (time.monotonic() - started) * 1000
        log.debug("slurmrestd %s %s -> %s in %.0f ms", method, path, response.status_code,
                  elapsed_ms)
        text = response.text
        try:
            payload = response.json()
        except ValueError:
            payload = None  # 401's "Authentication failure", 404's hint: plain text
        return response.status_code, payload if isinstance(payload, dict) else None, text

    def _error_for(self, verdict: Verdict, cause: SlurmReplyError, path: str) -> ProviderError:
        if verdict is Verdict.AMBIGUOUS:
            return self._disambiguate(cause)
        if verdict is Verdict.AUTH:
            message = f"Slurm refused the token of user {self.user!r}: {cause}"
        elif verdict is Verdict.REJECTED and cause.status == 404:
            message = f"slurmrestd does not serve {path} (this adapter speaks {API_VERSION} only)"
        else:
            message = str(cause)
        return _ERROR_CLASSES[verdict](message, cloud=self.cloud)

    def _disambiguate(self, cause: SlurmReplyError) -> ProviderError:
        """slurmctld answers an invalid token and its own absence with the same
        HTTP 500 / error -1 body, so ask slurmdbd, which names auth failures
        (1007) plainly: if it refuses the same token, the token is bad."""
        try:
            status, payload, _ = self._send("GET", f"/slurmdb/{API_VERSION}/tres", None, None)
        except ProviderUnavailable:
            return ProviderUnavailable(f"{cause} (slurmdbd unreachable too)", cloud=self.cloud)
        if classify(status, parse_errors(payload or {})) is Verdict.AUTH:
            return ProviderAuthError(
                f"Slurm refused the token of user {self.user!r} "
                f"(slurmdbd: authentication error; slurmctld: {cause})",
                cloud=self.cloud,
            )
        return ProviderUnavailable(
            f"slurmctld failed while slurmdbd accepts our token: {cause}", cloud=self.cloud
        )
