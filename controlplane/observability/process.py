"""The processes' own metrics: HTTP requests of the API, task runs of the workers.

These are per-process counters, unlike the DB exporter's series. With several
processes — `yunguan serve --workers N`, a prefork Celery worker — set
`PROMETHEUS_MULTIPROC_DIR` to an empty directory before starting them:
prometheus_client then writes every value to a file there, and
`render_process_metrics()` aggregates the files of all processes (multiprocess
mode). Without it the values live in this process's registry. Either way the
metrics are built on first use, never at import.

    yunguan_http_requests_total{method, route, status_class}     counter
    yunguan_http_request_duration_seconds{method, route}         histogram
    yunguan_worker_tasks_total{task, outcome}                    counter
    yunguan_worker_task_duration_seconds{task}                   histogram

`route` is the route template (`/v1/clouds/{code}`), `unmatched` for paths no
route knows (so scanners cannot blow up the label set); `method` is one of
the HTTP verbs or `other`; `status_class` is `2xx` … `5xx`.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest, start_http_server
from prometheus_client.multiprocess import MultiProcessCollector

from controlplane.vocabulary import InvalidInputError

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_TASK_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


@dataclass(frozen=True)
class ProcessMetrics:
    registry: CollectorRegistry
    http_requests: Counter
    http_duration: Histogram
    tasks: Counter
    task_duration: Histogram


@functools.cache
def process_metrics() -> ProcessMetrics:
    registry = CollectorRegistry(auto_describe=False)
    return ProcessMetrics(
        registry=registry,
        http_requests=Counter(
            "yunguan_http_requests",
            "HTTP requests served by the API, by route template and status class.",
            ("method", "route", "status_class"),
            registry=registry,
        ),
        http_duration=Histogram(
            "yunguan_http_request_duration_seconds",
            "Time to answer an API request, by route template.",
            ("method", "route"),
            registry=registry,
        ),
        tasks=Counter(
            "yunguan_worker_tasks",
            "Task runs by name and outcome (ok, or error when the body raised).",
            ("task", "outcome"),
            registry=registry,
        ),
        task_duration=Histogram(
            "yunguan_worker_task_duration_seconds",
            "Time a task body took.",
            ("task",),
            buckets=_TASK_BUCKETS,
            registry=registry,
        ),
    )


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


def render_process_metrics() -> bytes:
    """This process's metrics, or every process's in multiprocess mode."""
    if multiprocess_dir():
        registry = CollectorRegistry(auto_describe=False)
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(process_metrics().registry)


def clear_multiprocess_dir() -> None:
    """Called once by the parent before it starts the processes: values left by
    an earlier run would otherwise be added to this one's."""
    directory = multiprocess_dir()
    if directory is None:
        return
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink()


def serve_process_metrics(host: str, port: int) -> None:
    """`yunguan worker --metrics-port`: a thread of the Celery parent serving the task
    metrics of every pool process (they are forked later and write their files)."""
    if multiprocess_dir() is None:
        raise InvalidInputError(
            f"--metrics-port needs {MULTIPROC_ENV} (an empty directory): the prefork "
            "pool's processes count in files that this endpoint adds up",
            code="config.invalid",
        )
    clear_multiprocess_dir()
    registry = CollectorRegistry(auto_describe=False)
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    start_http_server(port, addr=host, registry=registry)


def observe_request(method: str, route: str | None, status: int, seconds: float) -> None:
    m = process_metrics()
    verb = method if method in _METHODS else "other"
    template = route or "unmatched"
    m.http_requests.labels(verb, template, f"{status // 100}xx").inc()
    m.http_duration.labels(verb, template).observe(seconds)


@contextmanager
def observe_task(name: str) -> Iterator[None]:
    m = process_metrics()
    started = time.perf_counter()
    outcome = "error"
    try:
        yield
        outcome = "ok"
    finally:
        m.tasks.labels(name, outcome).inc()
        m.task_duration.labels(name).observe(time.perf_counter() - started)
