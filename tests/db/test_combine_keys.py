"""Idempotency-Key claims in a staged batch (controlplane.db.combine with
controlplane.db.idempotency; the claims are deferred on PostgreSQL), on both
backends: the same key twice in one batch applies once and replays once; a key
completed earlier replays, and reused with another body is refused.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from controlplane.bootstrap import Container
from controlplane.db import idempotency, pipeline
from controlplane.db.combine import Combiner, Done
from controlplane.db.outbox import add_outbox
from controlplane.db.uow import UnitOfWork
from controlplane.vocabulary import ConflictError
from tests.db.combine_batches import on_postgresql, one_batch, outbox_topics

# -- Idempotency-Key claims in a batch ------------------------------------------

ACTOR = "idem-caller"
DIGEST = idempotency.request_hash("POST", "/things", {"n": 1})

Answer = tuple[str, Any]  # ("applied" or "replayed", the answer's body)


class _Keyed:
    """A staged call in the shape of api.routes.quota_common.mutate_staged: the
    claim in `prepare`, the effect (an outbox row) and the stored answer in
    `finish`. Records what each claim returned."""

    def __init__(self, key: str, name: str, digest: str = DIGEST) -> None:
        self.key, self.name, self.digest = key, name, digest
        self.claims: list[idempotency.StoredResponse | None] = []

    def prepare(self, session: Session) -> Done[Answer] | None:
        stored = idempotency.claim(session, ACTOR, self.key, self.digest)
        self.claims.append(stored)
        if stored is not None:
            return Done(("replayed", stored.response))
        return None

    def finish(self, session: Session, _state: None) -> Answer:
        body = {"by": self.name}
        add_outbox(session, "applied", "call", self.name, body)
        pipeline.defer(session, idempotency.completion(ACTOR, self.key, 201, body))
        return ("applied", body)


def test_the_same_key_twice_in_one_batch_applies_once(
    container: Container, request: pytest.FixtureRequest
) -> None:
    combiner = Combiner(container.session_factory)
    first, second = _Keyed("k-1", "first"), _Keyed("k-1", "second")

    results = one_batch(
        combiner,
        [
            lambda: combiner.run_staged(first.prepare, first.finish),
            lambda: combiner.run_staged(second.prepare, second.finish),
        ],
    )

    assert results == [("applied", {"by": "first"}), ("replayed", {"by": "first"})], results
    assert outbox_topics(container) == ["applied"]
    stored = idempotency.StoredResponse(201, {"by": "first"})
    if on_postgresql(container):
        # Deferred in the batch (no answer), then the re-run's claim found the stored one.
        assert second.claims == [None, stored]
    else:
        # SQLite saw the first call's claim in the batch and asked for the re-run.
        assert second.claims == [stored]
    assert first.claims == [None, None]


def test_a_key_completed_earlier_replays_in_a_batch(container: Container) -> None:
    combiner = Combiner(container.session_factory)
    earlier = _Keyed("k-old", "earlier")
    assert combiner.run_staged(earlier.prepare, earlier.finish) == ("applied", {"by": "earlier"})

    again, fresh = _Keyed("k-old", "again"), _Keyed("k-new", "fresh")
    other_body = _Keyed("k-old", "reused", idempotency.request_hash("POST", "/things", {"n": 2}))
    results = one_batch(
        combiner,
        [
            lambda: combiner.run_staged(fresh.prepare, fresh.finish),
            lambda: combiner.run_staged(again.prepare, again.finish),
            lambda: combiner.run_staged(other_body.prepare, other_body.finish),
        ],
    )

    assert results[0] == ("applied", {"by": "fresh"})
    assert results[1] == ("replayed", {"by": "earlier"})
    assert isinstance(results[2], ConflictError) and results[2].code == "idempotency.key_reused"
    assert again.claims[-1] == idempotency.StoredResponse(201, {"by": "earlier"})
    assert outbox_topics(container) == ["applied", "applied"]  # "earlier" and "fresh", once each
    with UnitOfWork(container.session_factory) as uow:
        keys = uow.session.execute(
            select(idempotency.IdempotencyKey.key, idempotency.IdempotencyKey.status_code)
        ).all()
    assert sorted((k, s) for k, s in keys) == [("k-new", 201), ("k-old", 201)]
