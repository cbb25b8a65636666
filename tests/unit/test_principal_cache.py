"""The principal cache answers from memory for its TTL only, never past the
credential's own expiry, and not at all with TTL 0."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from controlplane.identity.cache import PrincipalCache
from controlplane.identity.principal import Principal

NOW = datetime(2026, 11, 28, tzinfo=UTC)
P = Principal(user_id=1, login="a", bindings=())


def test_hit_then_ttl_ends() -> None:
    cache = PrincipalCache(ttl=0.2)
    key = cache.key("ygt_x")
    assert key != "ygt_x" and len(key) == 64
    cache.put(key, P, NOW + timedelta(days=1))
    assert cache.get(key, NOW) is P
    time.sleep(0.3)  # past the TTL: the next request resolves the token again
    assert cache.get(key, NOW) is None


def test_never_past_the_credentials_expiry() -> None:
    cache = PrincipalCache(ttl=60)
    key = cache.key("ygt_y")
    cache.put(key, P, NOW + timedelta(seconds=1))
    assert cache.get(key, NOW + timedelta(seconds=2)) is None


def test_entries_filled_together_come_due_apart(monkeypatch: pytest.MonkeyPatch) -> None:
    """The refresh point is drawn per entry, within [1/2, 7/8] of the TTL."""
    clock = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])
    cache = PrincipalCache(ttl=8.0)
    keys = [cache.key(f"ygt_{i}") for i in range(200)]
    for key in keys:
        cache.put(key, P, None)
    clock[0] += 3.99  # just before half the life: none due
    assert not any(cache.due(k) for k in keys)
    clock[0] += 1.0  # 4.99 of 8: some due, not all
    assert 0 < sum(cache.due(k) for k in keys) < len(keys)
    clock[0] += 2.02  # 7.01 of 8: every one due, all still answering
    assert all(cache.due(k) and cache.get(k, NOW) is P for k in keys)


def test_ttl_zero_is_off() -> None:
    cache = PrincipalCache(ttl=0)
    cache.put(cache.key("t"), P, None)
    assert cache.get(cache.key("t"), NOW) is None


def test_due_for_refresh_between_half_and_seven_eighths_of_its_life() -> None:
    cache = PrincipalCache(ttl=0.4)
    key = cache.key("ygt_z")
    assert not cache.due(key)  # nothing cached: nothing to refresh
    cache.put(key, P, None)
    assert not cache.due(key)
    time.sleep(0.36)  # past 7/8 of the TTL, still answering
    assert cache.due(key) and cache.get(key, NOW) is P
    cache.put(key, P, None)  # the refresh's answer starts a new life
    assert not cache.due(key)
    cache.drop(key)  # a refresh that found the token revoked
    assert cache.get(key, NOW) is None
