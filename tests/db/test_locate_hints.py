"""`SqlQuotaStore.expect_locate`: announced lookups answer exactly as plain
ones, all in the round trip of the first."""

from __future__ import annotations

import pytest

from controlplane.bootstrap import Container
from controlplane.db.uow import UnitOfWork
from controlplane.quotastore import SqlQuotaStore
from controlplane.vocabulary import NotFoundError
from quotas import service
from quotas.model import AutoApprovalPolicy, CloudRef, NodeRef, approving_scope
from tests.db.pipeline_probe import (  # noqa: F401 - sent is a fixture
    Sent,
    driver_of,
    require_postgresql,
    sent,
)
from tests.db.quota_world import ADMIN, make_world

PAIRS = [
    ("changsha", "cs-data-portal"),
    ("changsha", "cs-health-his"),
    ("provincial", "hn-health-hrp"),
    ("provincial", "cs-data-portal"),
]
Located = tuple[CloudRef, list[NodeRef], AutoApprovalPolicy | None]


def _located(store: SqlQuotaStore, cloud: str, node: str) -> Located:
    found, chain = store.locate(cloud, node)
    # The policies come with the lookup (read along by locate).
    return found, chain, store.auto_approval(approving_scope(chain))


def _plain_lookups(container: Container) -> dict[tuple[str, str], Located]:
    """Each pair looked up alone, in a fresh transaction without hints."""
    out = {}
    for pair in PAIRS:
        with UnitOfWork(container.session_factory) as uow:
            out[pair] = _located(SqlQuotaStore(uow.session), *pair)
    return out


@pytest.fixture
def located_world(container: Container) -> Container:
    """The sample topology, with an auto-approval policy for the lookups to read along."""
    world = make_world(container)
    world.run(lambda s: service.set_auto_approval(s, ADMIN, "changsha", {"vcpu": 8}))
    return container


def test_announced_lookups_answer_as_plain_ones_in_one_round_trip(
    located_world: Container, sent: Sent
) -> None:
    """A batch announces its lookups (expect_locate): each locate then returns
    what it returns alone, and only the first one costs a round trip, which
    carries all of them."""
    container = located_world
    require_postgresql(container)
    expected = _plain_lookups(container)
    with UnitOfWork(container.session_factory) as uow:
        store = SqlQuotaStore(uow.session)
        for pair in PAIRS:
            store.expect_locate(*pair)
        sent.clear()
        got = {PAIRS[0]: _located(store, *PAIRS[0])}
        assert len(sent.scripts) == 1
        lookups = [sql for _, sql, _ in sent.statements if sql.startswith("WITH RECURSIVE")]
        assert len(lookups) == len(PAIRS)
        statements = len(sent.statements)
        got.update({pair: _located(store, *pair) for pair in PAIRS[1:]})
        assert len(sent.statements) == statements and len(sent.scripts) == 1
    assert got == expected


@pytest.mark.parametrize("unknown_first", [True, False], ids=["unknown-first", "unknown-last"])
@pytest.mark.parametrize(
    ("cloud", "node", "code"),
    [
        ("changsha", "no-such-project", "org.not_found"),
        ("no-such-cloud", "cs-data-portal", "cloud.not_found"),
    ],
    ids=["unknown-project", "unknown-cloud"],
)
def test_an_announced_unknown_lookup_still_raises(
    located_world: Container, unknown_first: bool, cloud: str, node: str, code: str
) -> None:
    """An announced lookup of an unknown project (or cloud) raises the same
    NotFoundError on locate as without the announcement, whether its rows came
    carried or it was the first lookup; the others still answer."""
    container = located_world
    expected = _plain_lookups(container)[PAIRS[0]]
    with UnitOfWork(container.session_factory) as uow:
        store = SqlQuotaStore(uow.session)
        store.expect_locate(cloud, node)
        store.expect_locate(*PAIRS[0])
        if not unknown_first:
            assert _located(store, *PAIRS[0]) == expected
        with pytest.raises(NotFoundError) as raised:
            store.locate(cloud, node)
        assert raised.value.code == code
        assert _located(store, *PAIRS[0]) == expected


def test_lookups_unannounced_are_not_carried(located_world: Container, sent: Sent) -> None:
    """Without hints every locate is its own statement (the baseline the
    round-trip count above is compared with)."""
    container = located_world
    require_postgresql(container)
    with UnitOfWork(container.session_factory) as uow:
        store = SqlQuotaStore(uow.session)
        driver_of(uow.session)
        sent.clear()
        for i, pair in enumerate(PAIRS, start=1):
            _located(store, *pair)
            lookups = [sql for _, sql, _ in sent.statements if sql.startswith("WITH RECURSIVE")]
            assert len(lookups) == i  # sent by this locate, alone
