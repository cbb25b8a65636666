"""What every task body needs: the database, adapters per cloud, a dispatcher.

Built once per worker process by the composition root; tests build one with
the real testbed adapters.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol

from sqlalchemy.orm import Session, sessionmaker

from controlplane.vocabulary import CloudKind
from controlplane.worker.retry import RetryPolicy
from providers.base import CloudProvider

ProviderFactory = Callable[[str, CloudKind, Mapping[str, Any]], CloudProvider]


class Dispatcher(Protocol):
    """Sends a task by name to a queue; Celery's `send_task` or the in-process pool."""

    def dispatch(
        self, task: str, args: tuple[Any, ...], *, queue: str, countdown: float = 0.0
    ) -> None: ...


def queue_for(kind: CloudKind | str) -> str:
    """One queue per provider kind, so a slow cloud never starves the others."""
    return f"provider.{CloudKind(kind).value}"


CONTROL_QUEUE = "control"


class ProviderCache:
    """One adapter per cloud, rebuilt when the cloud's connection reference changes."""

    def __init__(self, factory: ProviderFactory) -> None:
        self._factory = factory
        self._lock = threading.Lock()
        self._built: dict[str, tuple[str, CloudProvider]] = {}

    def get(self, code: str, kind: CloudKind, connection: Mapping[str, Any]) -> CloudProvider:
        key = json.dumps(connection, sort_keys=True)
        with self._lock:
            hit = self._built.get(code)
            if hit is None or hit[0] != key:
                hit = (key, self._factory(code, kind, connection))
                self._built[code] = hit
            return hit[1]


@dataclass
class WorkerContext:
    session_factory: sessionmaker[Session]
    providers: ProviderCache
    dispatcher: Dispatcher
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    drift_policy: str = "correct"  # or "report"
    # Longer than the hard time limit of a task, so only a dead worker loses it.
    lease: timedelta = timedelta(seconds=330)
