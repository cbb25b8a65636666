"""The Celery application: production workers and beat (`yunguan worker`, `yunguan beat`).

Thin by design: each Celery task looks up its body in `tasks.TASKS` and runs
it with the process's WorkerContext. Settings follow the house rules:
`acks_late` + `reject_on_worker_lost` (a killed worker's message is delivered
again), prefetch 1 (a slow task never holds others hostage), JSON only,
explicit names, one queue per provider kind plus `control`, and a Redis
visibility timeout above the longest retry countdown plus the hard time limit
(else Redis would hand a message that is merely waiting to a second worker).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from celery import Celery
from kombu.entity import Queue

from controlplane.settings import Settings
from controlplane.vocabulary import CloudKind
from controlplane.worker.context import CONTROL_QUEUE, WorkerContext, queue_for
from controlplane.worker.tasks import PERIODIC, TASKS

QUEUES = [CONTROL_QUEUE, *(queue_for(k) for k in CloudKind)]


class CeleryDispatcher:
    def __init__(self, app: Celery) -> None:
        self._app = app

    def dispatch(
        self, task: str, args: tuple[Any, ...], *, queue: str, countdown: float = 0.0
    ) -> None:
        self._app.send_task(task, args=list(args), queue=queue, countdown=countdown or None)


def make_celery(settings: Settings, context_factory: Callable[[Celery], WorkerContext]) -> Celery:
    if not settings.broker_url:
        raise ValueError("YUNGUAN_BROKER_URL is not set (Redis or RabbitMQ)")
    w = settings.worker
    app = Celery("yunguan", broker=settings.broker_url, set_as_current=False)
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_ignore_result=True,
        task_default_queue=CONTROL_QUEUE,
        task_queues=[Queue(q) for q in QUEUES],  # type: ignore[no-untyped-call]
        task_time_limit=w.task_hard_time_limit_s,
        task_soft_time_limit=w.task_soft_time_limit_s,
        broker_transport_options={
            "visibility_timeout": int(w.max_countdown_s + w.task_hard_time_limit_s + 60)
        },
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        beat_schedule={
            name: {"task": name, "schedule": period, "options": {"queue": queue}}
            for name, (queue, period) in PERIODIC.items()
        },
        beat_schedule_filename=str(settings.data_dir / "celerybeat-schedule"),
    )
    lock = threading.Lock()
    holder: dict[str, WorkerContext] = {}

    def context() -> WorkerContext:
        # Built on first use inside the worker process (after fork), never at import.
        with lock:
            if "ctx" not in holder:
                holder["ctx"] = context_factory(app)
            return holder["ctx"]

    for name, body in TASKS.items():
        _register(app, name, body, context)
    return app


def _register(
    app: Celery, name: str, body: Callable[..., Any], context: Callable[[], WorkerContext]
) -> None:
    def run(*args: Any) -> None:
        body(context(), *args)

    run.__name__ = name.rsplit(".", 1)[-1]
    app.task(name=name)(run)
