"""Staged and one-stage submissions from asyncio (controlplane.db.combine:
`submit`, `submit_staged`), on both backends: coroutines on two event loops at
once share a batch and each get their own answers; a lone staged call is one
plain transaction.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from controlplane.bootstrap import Container
from controlplane.db.combine import Combiner, Done, combined
from controlplane.db.outbox import OutboxEvent, add_outbox
from controlplane.db.retry import run_in_transaction
from controlplane.vocabulary import ConflictError, NotFoundError
from tests.db.combine_batches import WAIT_S, Gate, outbox_topics, prepare_outbox

# -- submissions from asyncio ----------------------------------------------------


def test_submissions_from_asyncio(container: Container) -> None:
    """Coroutines on two event loops await staged and one-stage submissions that
    share a batch (re-run one job at a time: one finish fails); each loop gets
    its own values and exceptions. Debug mode: resolving a future from another
    thread than its loop's would raise."""
    combiner = Combiner(container.session_factory)
    batched: list[bool] = []

    def work(name: str) -> Callable[[Session], str]:
        def one(session: Session) -> str:
            batched.append(combined(session))
            add_outbox(session, name, "t", name, {})
            return name

        return one

    def refuse(_session: Session) -> str:
        raise NotFoundError("no such thing", code="thing.not_found")

    def finish(session: Session, name: str) -> str:
        add_outbox(session, f"{name}-finished", "t", name, {})
        if name == "doomed":
            raise ConflictError("no", code="thing.conflict")
        return f"{name} done"

    def replay(_session: Session) -> Done[str]:
        return Done("replayed")

    other_results: list[Any] = []
    other_queued = threading.Event()

    async def other_loop() -> None:
        futures = [combiner.submit(work("c")), combiner.submit(refuse)]
        other_queued.set()
        gathered = asyncio.gather(*futures, return_exceptions=True)
        other_results.extend(await asyncio.wait_for(gathered, WAIT_S))

    async def main() -> list[Any]:
        gate = Gate()
        held = combiner.submit(gate.hold)
        assert await asyncio.to_thread(gate.started.wait, WAIT_S)
        futures = [
            held,
            combiner.submit(work("a")),
            combiner.submit(refuse),
            combiner.submit_staged(prepare_outbox("staged"), finish),
            combiner.submit_staged(replay, finish),
            combiner.submit_staged(prepare_outbox("doomed"), finish),
        ]
        other = threading.Thread(target=lambda: asyncio.run(other_loop(), debug=True), daemon=True)
        other.start()
        assert await asyncio.to_thread(other_queued.wait, WAIT_S)
        futures.append(combiner.submit(work("b")))
        gate.open()
        results = await asyncio.wait_for(asyncio.gather(*futures, return_exceptions=True), WAIT_S)
        await asyncio.to_thread(other.join, WAIT_S)
        assert not other.is_alive()
        return results

    results = asyncio.run(main(), debug=True)

    assert results[0] == "gate" and results[1] == "a"
    assert isinstance(results[2], NotFoundError)
    assert results[3] == "staged done" and results[4] == "replayed"
    assert isinstance(results[5], ConflictError) and results[5].code == "thing.conflict"
    assert results[6] == "b"
    assert other_results[0] == "c" and isinstance(other_results[1], NotFoundError)
    assert True in batched  # the first attempt was one batch
    assert outbox_topics(container) == ["a", "b", "c", "staged-finished", "staged-prepared"]


def test_a_lone_submission_is_plain_run_in_transaction(container: Container) -> None:
    """Under no load a staged call is one transaction, like run_in_transaction."""
    combiner = Combiner(container.session_factory)
    seen: list[bool] = []

    def first(session: Session) -> int:
        seen.append(combined(session))
        return 41

    def second(session: Session, value: int) -> int:
        seen.append(combined(session))
        add_outbox(session, "alone", "t", "1", {})
        return value + 1

    assert combiner.run_staged(first, second) == 42
    assert seen == [False, False]
    assert run_in_transaction(container.session_factory, _count_outbox) == 1


def _count_outbox(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(OutboxEvent)) or 0)
