"""API token secrets: minted once, stored only as a keyed hash.

A token reads `ygt_<selector>_<secret>`. The selector (public, indexed) finds
the row; the whole token is checked against the stored HMAC-SHA256 with
`hmac.compare_digest`. An unknown selector is checked against a dummy digest,
so unknown and wrong tokens cost the same work and answer the same 401.
The HMAC key is the installation's secret key: a stolen table alone cannot be
brute-forced offline into working tokens.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

PREFIX = "ygt_"
_FORMAT = re.compile(r"^ygt_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")
_DUMMY = "0" * 64


@dataclass(frozen=True)
class MintedToken:
    selector: str
    plaintext: str  # shown to the user once, never stored or logged
    digest: str


def digest(secret_key: str, token: str) -> str:
    return hmac.new(secret_key.encode(), token.encode(), hashlib.sha256).hexdigest()


def mint(secret_key: str) -> MintedToken:
    selector = secrets.token_hex(8)
    plaintext = f"{PREFIX}{selector}_{secrets.token_urlsafe(32)}"
    return MintedToken(selector, plaintext, digest(secret_key, plaintext))


def selector_of(token: str) -> str | None:
    """The selector of a well-formed token, else None (malformed)."""
    match = _FORMAT.match(token)
    return match.group(1) if match else None


def matches(secret_key: str, token: str, stored_digest: str | None) -> bool:
    """Constant-time check; pass None for an unknown selector."""
    expected = stored_digest if stored_digest is not None else _DUMMY
    ok = hmac.compare_digest(digest(secret_key, token), expected)
    return ok and stored_digest is not None
