"""JWTs for slurmrestd and for the Slurm commands, minted from the cluster's HS256 key.

Slurm's auth/jwt plugin accepts an HS256 token whose `sun` claim names the
user and whose `exp` is in the future; slurmrestd passes it through to
slurmctld and slurmdbd, and `sacctmgr`/`scontrol` accept the same token in
`SLURM_JWT`. So one key file is the adapter's only credential, and the REST
calls and the commands act as the same Slurm user.

HS256 is a dozen lines of stdlib (`hmac`), so the token path needs no
third-party crypto. Tokens are cached until shortly before they expire; the
key file is re-read for every new token, so rotating the key on disk takes
effect without a restart. Nothing here logs a token or the key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from providers.base import ProviderAuthError

DEFAULT_LIFESPAN_S = 900
# Renew this long before `exp`, so a token never expires between being
# handed out and reaching slurmctld (clock skew, a slow request, a retry).
RENEW_MARGIN_S = 120


class TokenSource(Protocol):
    """Where the adapter gets the token for the next request."""

    def token(self) -> str: ...


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def mint_hs256(key: bytes, user: str, *, now: int, lifespan_s: int) -> str:
    """A compact JWS as Slurm's auth/jwt expects it (claims `iat`, `exp`, `sun`)."""
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    claims = {"iat": now, "exp": now + lifespan_s, "sun": user}
    payload = _b64url(json.dumps(claims, separators=(",", ":")).encode())
    signing_input = f"{header}.{payload}".encode("ascii")
    signature = _b64url(hmac.new(key, signing_input, hashlib.sha256).digest())
    return f"{header}.{payload}.{signature}"


class StaticToken:
    """A token handed to us (e.g. from `scontrol token`); renewing it is the caller's job."""

    def __init__(self, token: str) -> None:
        if not token:
            raise ProviderAuthError("empty Slurm token")
        self._token = token

    def token(self) -> str:
        return self._token


class KeyFileTokens:
    """Mints tokens for `user` from the HS256 key file slurmctld/slurmdbd verify with."""

    def __init__(
        self,
        key_file: str | Path,
        user: str,
        *,
        cloud: str | None = None,
        lifespan_s: int = DEFAULT_LIFESPAN_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if lifespan_s <= RENEW_MARGIN_S:
            raise ValueError(f"lifespan must exceed the renew margin ({RENEW_MARGIN_S} s)")
        self._key_file = Path(key_file)
        self._user = user
        self._cloud = cloud
        self._lifespan_s = lifespan_s
        self._clock = clock
        self._lock = threading.Lock()
        self._cached: tuple[str, float] | None = None  # (token, renew_at)

    def token(self) -> str:
        with self._lock:
            now = self._clock()
            if self._cached is not None and now < self._cached[1]:
                return self._cached[0]
            key = self._read_key()
            token = mint_hs256(key, self._user, now=int(now), lifespan_s=self._lifespan_s)
            self._cached = (token, now + self._lifespan_s - RENEW_MARGIN_S)
            return token

    def _read_key(self) -> bytes:
        # A missing or unreadable key is a credential problem an admin must
        # fix, not an outage to retry.
        try:
            key = self._key_file.read_bytes()
        except OSError as exc:
            raise ProviderAuthError(
                f"cannot read the Slurm JWT key file {self._key_file}: {exc.strerror}",
                cloud=self._cloud,
            ) from exc
        if not key:
            raise ProviderAuthError(
                f"the Slurm JWT key file {self._key_file} is empty", cloud=self._cloud
            )
        return key
