"""How slurmrestd 22.05 (API v0.0.38) says "no", and which port error each answer becomes.

Used by `client` (HTTP replies) and `commands` (sacctmgr/scontrol output);
nothing else in the adapter inspects raw Slurm errors.

v0.0.38 does not use HTTP statuses the way a REST client expects, so the
status alone decides almost nothing. What this testbed answers (verified on
Debian 12's slurmrestd 22.05.8, see /work/shared/testbeds/slurm.md):

====================================  =====================================================
reply                                 meaning → port error
====================================  =====================================================
401 text "Authentication failure"     token or user header missing → ProviderAuthError
500/200 error_number 1007             slurmdbd refused the token → ProviderAuthError
500 error_number -1 on /slurm/...     token refused by slurmctld *or* slurmctld down: the
                                      same body for both → ambiguous, `client` asks slurmdbd
500 error_number 9003 "Nothing found" an empty result (accounts, associations, users)
200 error_number 7000 / 7008          slurmdbd unreachable (yes, with HTTP 200) → unavailable
200 "Missing required field 'user'"   an account association was created anyway (benign)
200 error_number 1900                 DELETE of something absent ("Data has not changed")
404 text "Unable find requested URL"  the pinned API version is not served → rejected
====================================  =====================================================

An error entry with a concrete Slurm error number that is neither of the
above is Slurm understanding and refusing, even under HTTP 500 (22.05 uses
500 for every refusal): it becomes ProviderRejected, never a retry loop.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

# Slurm error numbers (slurm/slurm_errno.h, 22.05).
UNSPECIFIED = -1
COMMUNICATION_ERRORS = frozenset({1001, 1002, 1003, 1004})  # SLURM_COMMUNICATIONS_*
AUTHENTICATION_ERROR = 1007  # SLURM_PROTOCOL_AUTHENTICATION_ERROR
AUTH_PLUGIN_ERRORS = frozenset(range(6000, 6006))  # ESLURM_AUTH_CRED_INVALID … ESLURM_AUTH_SKIP
DATA_UNCHANGED = 1900  # "Data has not changed since time specified": DELETE of nothing
DB_CONNECTION_ERRORS = frozenset({7000, 7008})  # ESLURM_DB_CONNECTION(_INVALID)
NOTHING_FOUND = 9003  # ESLURM_REST_EMPTY_RESULT

_AUTH_NUMBERS = AUTH_PLUGIN_ERRORS | {AUTHENTICATION_ERROR}
_UNREACHABLE_NUMBERS = COMMUNICATION_ERRORS | DB_CONNECTION_ERRORS


@dataclass(frozen=True)
class SlurmErrorEntry:
    """One entry of a reply's `errors` list. `number` is None for parser
    messages, which v0.0.38 reports without an error number."""

    number: int | None
    error: str
    description: str
    source: str

    def __str__(self) -> str:
        text = "; ".join(part for part in (self.error, self.description) if part)
        return f"{text} [{self.number}]" if self.number is not None else text

    @property
    def is_missing_user_field(self) -> bool:
        """The parser's complaint about an account association posted without
        `user`: the association *is* created. Posting `"user": ""` instead
        creates a broken pseudo-user association, and `null` updates nothing."""
        return self.number is None and "Missing required field 'user'" in self.description


def parse_errors(body: Mapping[str, Any]) -> tuple[SlurmErrorEntry, ...]:
    """The `errors` list of a reply; nodes endpoints spell the number `errno`."""
    raw = body.get("errors")
    if not isinstance(raw, list):
        return ()
    entries = []
    for item in raw:
        if not isinstance(item, Mapping):
            entries.append(SlurmErrorEntry(None, str(item), "", ""))
            continue
        number = item.get("error_number", item.get("errno"))
        entries.append(
            SlurmErrorEntry(
                number=number if isinstance(number, int) else None,
                error=str(item.get("error") or ""),
                description=str(item.get("description") or ""),
                source=str(item.get("source") or ""),
            )
        )
    return tuple(entries)


class Verdict(StrEnum):
    """What a failed reply means for the caller; `client` maps it to an exception."""

    AUTH = "auth"
    UNAVAILABLE = "unavailable"
    RATE_LIMITED = "rate_limited"
    NOT_FOUND = "not_found"
    REJECTED = "rejected"
    AMBIGUOUS = "ambiguous"  # slurmctld said "-1": bad token or controller down


def classify(status: int, errors: Sequence[SlurmErrorEntry]) -> Verdict | None:
    """None when the reply is a success; otherwise what went wrong.

    The first matching rule wins, so an auth error beats everything (retrying
    cannot fix it), then unreachable daemons, then empty results."""
    numbers = {e.number for e in errors}
    # No usable number: proxies' 502/503, a crashed plugin, or slurmctld's
    # "-1", which an invalid token produces as well (see the module table).
    numberless = numbers <= {UNSPECIFIED, None}
    rules = (
        (status in (401, 403) or bool(numbers & _AUTH_NUMBERS), Verdict.AUTH),
        (status == 429, Verdict.RATE_LIMITED),
        (bool(numbers & _UNREACHABLE_NUMBERS), Verdict.UNAVAILABLE),
        (NOTHING_FOUND in numbers, Verdict.NOT_FOUND),
        (status >= 500 and numberless and UNSPECIFIED in numbers, Verdict.AMBIGUOUS),
        (status >= 500 and numberless, Verdict.UNAVAILABLE),
        (status >= 400 or bool(errors), Verdict.REJECTED),
    )
    return next((verdict for matched, verdict in rules if matched), None)


def describe(errors: Iterable[SlurmErrorEntry]) -> str:
    return "; ".join(str(e) for e in errors) or "no detail"


class SlurmReplyError(Exception):
    """The raw failed reply, kept as the `__cause__` of the ProviderError the
    adapter raises, so logs and debuggers see what slurmrestd really said."""

    def __init__(
        self,
        method: str,
        path: str,
        status: int,
        errors: Sequence[SlurmErrorEntry],
        text: str = "",
    ) -> None:
        detail = describe(errors) if errors else (text[:200] or "empty body")
        super().__init__(f"{method} {path} -> HTTP {status}: {detail}")
        self.status = status
        self.errors = tuple(errors)
