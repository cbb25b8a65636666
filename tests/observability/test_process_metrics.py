"""The API's request metrics, the worker's task metrics, /metrics on the API,
and multiprocess mode across real processes."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

from fastapi.testclient import TestClient

from api.app import create_app
from controlplane.bootstrap import Container, metrics_exporter
from controlplane.observability.process import render_process_metrics
from controlplane.worker.tasks import TASK_EXPIRE_RESERVATIONS, TASKS
from tests.conftest import REPO
from tests.db.quota_world import make_world
from tests.observability.conftest import samples, series

HTTP = "yunguan_http_requests_total"


def _count(text: str, name: str, **labels: str) -> float:
    parsed = samples(text)
    key = (name, tuple(sorted(labels.items())))
    return parsed.get(key, 0.0)


def test_requests_are_counted_by_route_template_and_status_class(container: Container) -> None:
    make_world(container)
    client = TestClient(create_app(container))
    before = render_process_metrics().decode()
    for path in ("/v1/clouds/provincial", "/v1/clouds/changsha", "/healthz", "/no/such/thing"):
        client.get(path)
    client.request("BREW", "/healthz")
    after = render_process_metrics().decode()

    def delta(**labels: str) -> float:
        return _count(after, HTTP, **labels) - _count(before, HTTP, **labels)

    # two different clouds, one series: the template, not the path
    assert delta(method="GET", route="/v1/clouds/{code}", status_class="4xx") == 2
    assert delta(method="GET", route="/healthz", status_class="2xx") == 1
    assert delta(method="GET", route="unmatched", status_class="4xx") == 1
    assert delta(method="other", route="/healthz", status_class="4xx") == 1  # 405
    assert not series(samples(after), HTTP, route="/no/such/thing")
    hist = samples(after)
    assert any(
        k[0] == "yunguan_http_request_duration_seconds_count"
        and dict(k[1]).get("route") == "/v1/clouds/{code}"
        for k in hist
    )


def test_api_metrics_route_serves_process_and_db_metrics(container: Container) -> None:
    make_world(container)
    production = TestClient(create_app(container))
    text = production.get("/metrics").text
    assert HTTP in text and "yunguan_capacity_" not in text  # the DB series: `yunguan exporter`

    embedded = TestClient(create_app(container, metrics=metrics_exporter(container)))
    embedded.get("/healthz")
    plain = embedded.get("/metrics", headers={"Accept-Encoding": "identity"})
    assert plain.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert "content-encoding" not in plain.headers
    assert "yunguan_cloud_info{" in plain.text and HTTP in plain.text
    zipped = embedded.get("/metrics", headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["content-encoding"] == "gzip"
    # httpx decodes only the first gzip member: both parts must be in one
    assert "yunguan_cloud_info{" in zipped.text and HTTP in zipped.text


def test_task_runs_are_counted_with_their_outcome(container: Container) -> None:
    class Ctx:
        session_factory = container.session_factory

    name = TASK_EXPIRE_RESERVATIONS
    before = render_process_metrics().decode()
    TASKS[name](Ctx())
    with contextlib.suppress(AttributeError):
        TASKS[name](object())  # no session factory: the body raises
    after = render_process_metrics().decode()
    tasks = "yunguan_worker_tasks_total"
    for outcome in ("ok", "error"):
        ran = _count(after, tasks, task=name, outcome=outcome)
        assert ran - _count(before, tasks, task=name, outcome=outcome) == 1, outcome


_CHILD = """
from controlplane.observability.process import observe_request, observe_task
observe_request("GET", "/v1/clouds", 200, 0.01)
with observe_task("yunguan.sync_cloud"):
    pass
"""


def test_multiprocess_mode_adds_up_every_process(tmp_path: Path) -> None:
    """Two processes write to PROMETHEUS_MULTIPROC_DIR; a third renders the sum."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    for _ in range(2):
        subprocess.run([sys.executable, "-c", _CHILD], env=env, cwd=REPO, check=True)
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from controlplane.observability.process import render_process_metrics;"
            "sys.stdout.buffer.write(render_process_metrics())",
        ],
        env=env,
        cwd=REPO,
        check=True,
        capture_output=True,
    ).stdout.decode()
    assert _count(out, HTTP, method="GET", route="/v1/clouds", status_class="2xx") == 2
    assert _count(out, "yunguan_worker_tasks_total", task="yunguan.sync_cloud", outcome="ok") == 2
