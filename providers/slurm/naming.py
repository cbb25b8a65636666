"""Slurm account names derived from Yunguan org codes: deterministic, safe, bounded.

Called by `tenants` and `quotas`. Org codes are unique across all levels of
the tree (the topology validator enforces it) and Slurm account names are one
flat namespace per slurmdbd, so `yg-<code>` is unique per installation and
never collides with the site's own accounts, which lack the prefix.

Safety: the result only ever holds `[a-z0-9-]`, so it is a valid account name
(Slurm lower-cases names anyway), a safe URL path segment, and cannot smuggle
`where`/`set` clauses or commas into a sacctmgr argument. A code that is too
long or has other characters is cut and suffixed with 8 hex digits of its
SHA-256, so distinct codes keep distinct names.
"""

from __future__ import annotations

import hashlib
import re
from typing import Final

from providers.base import ProviderRejected

PREFIX: Final = "yg-"
# Slurm 22.05 stores account names as tinytext and documents no shorter
# limit, but the names appear in squeue/sacct/sshare columns, in job scripts
# and in site policies; 32 keeps every name readable and inside the limits
# sites commonly impose.
MAX_ACCOUNT_LEN: Final = 32
_HASH_LEN: Final = 8
_SAFE_NAME: Final = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_UNSAFE_CHARS: Final = re.compile(r"[^a-z0-9-]")


def account_name(code: str) -> str:
    """`yg-<code>`, or `yg-<cut code>-<hash>` when the code is long or unusual."""
    if not code:
        raise ProviderRejected("an empty org code has no Slurm account name")
    cleaned = _UNSAFE_CHARS.sub("-", code.lower())
    plain = PREFIX + cleaned
    if cleaned == code and len(plain) <= MAX_ACCOUNT_LEN:
        return plain
    digest = hashlib.sha256(code.encode("utf-8")).hexdigest()[:_HASH_LEN]
    room = MAX_ACCOUNT_LEN - len(PREFIX) - _HASH_LEN - 1
    stem = cleaned[:room].strip("-")
    return f"{PREFIX}{stem}-{digest}" if stem else f"{PREFIX}{digest}"


def is_safe_account(name: str) -> bool:
    """True for names this module could have produced (or the site's plain
    names of the same alphabet); checked before a name reaches sacctmgr."""
    return len(name) <= 64 and bool(_SAFE_NAME.match(name))


def is_safe_user(name: str) -> bool:
    """A POSIX-style login, the only kind of Slurm user we create or associate."""
    return bool(re.fullmatch(r"[a-z_][a-z0-9_.-]{0,31}", name))
