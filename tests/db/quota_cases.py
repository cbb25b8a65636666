"""Fixtures and helpers shared by the quota service tests (tests/db/test_quota_*.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from controlplane.bootstrap import Container
from controlplane.vocabulary import ResourceClass, YunguanError
from quotas import service
from quotas.model import RequestItem
from quotas.ports import QuotaStore
from tests.db.quota_world import ADMIN, World, make_world

VCPU = ResourceClass.VCPU
MEM = ResourceClass.MEMORY_MIB


@pytest.fixture
def world(container: Container) -> Iterator[World]:
    w = make_world(container)
    # provincial: vcpu overcommit 4.0 → 1000 cores allow 4000 vcpu to be granted
    w.run(lambda s: service.set_capacity(s, ADMIN, "provincial", "vcpu", 1000))
    w.run(lambda s: service.set_capacity(s, ADMIN, "provincial", "memory_mib", 100_000))
    yield w


def refused(
    w: World, work: Callable[[QuotaStore], Any], error: type[YunguanError], code: str
) -> YunguanError:
    """`work` fails with `code` and the quota tables (and outbox) are unchanged."""
    before = w.snapshot()
    with pytest.raises(error) as info:
        w.run(work)
    assert info.value.code == code, info.value
    assert w.snapshot() == before
    return info.value


def grant(w: World, node: str, amount: int, cls: str = "vcpu", cloud: str = "provincial") -> Any:
    return w.run(lambda s: service.set_grant(s, ADMIN, node, cloud, cls, amount))


def sound(w: World, cloud: str = "provincial") -> None:
    assert w.run(lambda s: service.check_invariants(s, cloud)) == []


def file(w: World, project: str = "cs-data-portal", amount: int = 10, **kw: Any) -> Any:
    items = kw.pop("items", [RequestItem(VCPU, amount)])
    kw.setdefault("cloud_code", "provincial")
    return w.run(lambda s: service.file_request(s, ADMIN, project, items, reason="need it", **kw))
