"""What to do after a failed attempt, by error class.

Retryable provider errors (unreachable, rate limited) back off exponentially
with full jitter up to a bound; permanent ones (rejected, auth, not found,
unsupported) fail the operation at once with the provider's message; anything
else is a bug or a surprise and gets a few attempts before failing.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from providers.base import ProviderError, ProviderRateLimited


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts_retryable: int = 8
    max_attempts_unknown: int = 3
    base_s: float = 2.0
    cap_s: float = 120.0


@dataclass(frozen=True)
class Decision:
    retry: bool
    countdown: float
    code: str
    message: str


def decide(exc: BaseException, attempt: int, policy: RetryPolicy = RetryPolicy()) -> Decision:
    """`attempt` counts from 1 (the attempt that just failed)."""
    backoff = random.uniform(0, min(policy.cap_s, policy.base_s * 2 ** (attempt - 1)))  # noqa: S311 - jitter, not crypto
    if isinstance(exc, ProviderError):
        message = exc.message[:2000]
        if not exc.retryable:
            return Decision(False, 0.0, exc.code, message)
        if isinstance(exc, ProviderRateLimited):
            backoff = max(backoff, exc.retry_after)
        return Decision(attempt < policy.max_attempts_retryable, backoff, exc.code, message)
    text = f"{exc.__class__.__name__}: {exc}"[:2000]
    return Decision(attempt < policy.max_attempts_unknown, backoff, "internal", text)
