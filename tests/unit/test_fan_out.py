"""`providers.base.fan_out`: the concurrency under every bulk quota read.

Pure: plain functions stand in for one tenant's read. The reads against the
real clouds are in tests/contract (the shared suite and test_quota_sweep.py).
"""

from __future__ import annotations

import threading
import time

import pytest

from providers.base import ProviderNotFound, ProviderUnavailable, fan_out


def test_results_keep_the_items_order_and_permanent_errors_are_values() -> None:
    def read(n: int) -> int:
        time.sleep(0.001 * (10 - n))  # finish out of order
        if n == 3:
            raise ProviderNotFound("gone")
        return n * n

    out = fan_out(read, list(range(10)), 4)
    assert list(out) == list(range(10))
    assert isinstance(out[3], ProviderNotFound)
    assert [v for k, v in out.items() if k != 3] == [k * k for k in range(10) if k != 3]


def test_at_most_parallel_calls_run_at_once() -> None:
    running, peak, lock = [0], [0], threading.Lock()

    def read(n: int) -> int:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.01)
        with lock:
            running[0] -= 1
        return n

    fan_out(read, list(range(20)), 3)
    assert peak[0] == 3


def test_a_retryable_error_is_raised_and_stops_what_has_not_started() -> None:
    started: list[int] = []

    def read(n: int) -> int:
        started.append(n)
        if n == 0:
            raise ProviderUnavailable("down")
        time.sleep(0.05)
        return n

    with pytest.raises(ProviderUnavailable):
        fan_out(read, list(range(50)), 2)
    assert len(started) < 10  # the other 40-odd reads never ran


def test_nothing_to_read() -> None:
    assert fan_out(lambda n: n, [], 8) == {}
