"""The in-process worker of `yunguan up`: the same task bodies, fed by the same
outbox, run by a small thread pool instead of Celery (no broker needed).

Not Celery's eager mode: tasks still go through dispatch (with countdowns),
run on worker threads, and the periodic table drives the relay and syncs.
Queues collapse into one here — a single-machine trial has no slow clouds to
isolate — but every dispatch is logged with its queue name.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from controlplane.worker.context import WorkerContext
from controlplane.worker.tasks import PERIODIC, TASKS

log = logging.getLogger("yunguan.embedded")


class EmbeddedWorker:
    name = "worker"

    def __init__(
        self, context_factory: Callable[[EmbeddedWorker], WorkerContext], threads: int = 4
    ) -> None:
        self._context_factory = context_factory
        self._ctx: WorkerContext | None = None
        self._threads = threads
        self._heap: list[tuple[float, int, str, tuple[Any, ...]]] = []
        self._seq = itertools.count()
        self._cv = threading.Condition()
        self._stop = threading.Event()
        self._pool: ThreadPoolExecutor | None = None
        self._loop: threading.Thread | None = None

    # -- Dispatcher ------------------------------------------------------
    def dispatch(
        self, task: str, args: tuple[Any, ...], *, queue: str, countdown: float = 0.0
    ) -> None:
        if task not in TASKS:
            raise KeyError(f"unknown task {task!r}")
        with self._cv:
            heapq.heappush(self._heap, (time.monotonic() + countdown, next(self._seq), task, args))
            self._cv.notify()
        log.debug("queued %s%s on %s in %.1fs", task, args, queue, countdown)

    # -- BackgroundService ----------------------------------------------
    def start(self) -> None:
        self._ctx = self._context_factory(self)
        self._pool = ThreadPoolExecutor(self._threads, thread_name_prefix="yunguan-worker")
        now = time.monotonic()
        for name, (queue, _period) in PERIODIC.items():
            self.dispatch(name, (), queue=queue)
        self._next_periodic = {name: now + period for name, (_q, period) in PERIODIC.items()}
        self._loop = threading.Thread(target=self._run, name="yunguan-scheduler", daemon=True)
        self._loop.start()

    def stop(self, timeout: float) -> None:
        self._stop.set()
        with self._cv:
            self._cv.notify_all()
        if self._loop:
            self._loop.join(timeout)
        if self._pool:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic()
            for name, due in list(self._next_periodic.items()):
                if due <= now:
                    queue, period = PERIODIC[name]
                    self.dispatch(name, (), queue=queue)
                    self._next_periodic[name] = now + period
            with self._cv:
                ready = []
                while self._heap and self._heap[0][0] <= now:
                    ready.append(heapq.heappop(self._heap))
                if not ready:
                    wait = (
                        min([*self._next_periodic.values(), *(e[0] for e in self._heap[:1])]) - now
                    )
                    self._cv.wait(max(0.05, min(wait, 1.0)))
                    continue
            for _due, _seq, task, args in ready:
                assert self._pool is not None
                self._pool.submit(self._execute, task, args)

    def _execute(self, task: str, args: tuple[Any, ...]) -> None:
        assert self._ctx is not None
        try:
            TASKS[task](self._ctx, *args)
        except Exception:
            log.exception("task %s%s failed", task, args)
