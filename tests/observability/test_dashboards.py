"""The Grafana dashboards: valid JSON, the expected panels, up to date with their
generator, reading only series Yunguan serves — and every panel's query (and
every template variable's selector) parses in the testbed's real Prometheus."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.observability.conftest import DEPLOY, get_json
from tests.observability.test_rules import exported_names

DASHBOARDS = DEPLOY / "grafana" / "dashboards"
GENERATOR = DEPLOY / "grafana" / "generate.py"
PROCESS_SERIES = {
    "yunguan_http_requests_total",
    "yunguan_http_request_duration_seconds",
    "yunguan_worker_tasks_total",
    "yunguan_worker_task_duration_seconds",
}
# Values Grafana would substitute, so that Prometheus sees what it would get.
VARIABLES = {
    "$__rate_interval": "1m",
    "$resource_class": "vcpu",
    "$prefecture": "changsha",
    "$cloud": "nscc-changsha",
}
EXPECTED = {
    "yunguan-capacity-overview.json": {
        "Granted / allocatable by cloud ($resource_class)",
        "Used / allocatable by cloud ($resource_class)",
        "Capacity by cloud ($resource_class)",
        "Provider up",
        "Stale syncs (> 15 min)",
    },
    "yunguan-prefecture.json": {
        "Envelopes on provincial clouds: used / granted",
        "Departments: granted and used ($resource_class)",
        "Projects closest to their grant ($resource_class)",
        "Pending quota requests",
        "应上尽上 rate",
    },
    "yunguan-supercomputing.json": {
        "Core-hours: granted and used",
        "Granted / allocatable",
        "Accounts (departments): granted and used",
    },
    "yunguan-migration.json": {
        "应上尽上 rate (province)",
        "Rate by prefecture",
        "Systems by state (non-classified)",
        "Rooms retired",
        "Assets retired or disposed",
        "Systems behind plan",
        "Waves",
    },
}


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DASHBOARDS / name).read_text(encoding="utf-8"))
    return data


def queries(board: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, PromQL) of every panel target and every query variable's selector."""
    out = [
        (f"panel {p['title']!r} target {t['refId']}", t["expr"])
        for p in board["panels"]
        for t in p["targets"]
    ]
    for var in board["templating"]["list"]:
        if var["type"] == "query":
            m = re.fullmatch(r"label_values\((.+), *\w+\)", var["definition"])
            assert m, var["definition"]
            out.append((f"variable {var['name']}", m.group(1)))
    return out


def substituted(expr: str) -> str:
    for name, value in VARIABLES.items():
        expr = expr.replace(name, value)
    assert "$" not in expr, f"unsubstituted variable in {expr}"
    return expr


def test_the_four_dashboards_exist_and_are_current() -> None:
    assert sorted(p.name for p in DASHBOARDS.glob("*.json")) == sorted(EXPECTED)
    proc = subprocess.run(
        [sys.executable, str(GENERATOR), "--check"], check=False, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_dashboard_structure(name: str) -> None:
    board = load(name)
    assert board["uid"] and board["title"].startswith("Yunguan")
    titles = [p["title"] for p in board["panels"]]
    assert EXPECTED[name] <= set(titles), EXPECTED[name] - set(titles)
    assert len({p["id"] for p in board["panels"]}) == len(titles)
    for panel in board["panels"]:
        assert panel["targets"], panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24
    names = {v["name"] for v in board["templating"]["list"]}
    assert "datasource" in names
    if name == "yunguan-prefecture.json":
        assert "prefecture" in names  # the one-prefecture dashboard is templated


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_dashboards_read_only_series_yunguan_serves(name: str) -> None:
    known = exported_names() | PROCESS_SERIES
    for where, expr in queries(load(name)):
        used = set(re.findall(r"yunguan_[a-z0-9_]+", expr))
        assert used, where
        assert used <= known, f"{where}: {used - known}"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_query_parses_in_prometheus(name: str, testbed: dict[str, str]) -> None:
    url = f"{testbed['PROMETHEUS_URL']}/api/v1/query"
    failures = []
    for where, expr in queries(load(name)):
        answer = get_json(url, query=substituted(expr))
        if answer.get("status") != "success":
            failures.append(f"{where}: {answer.get('error')}  [{expr}]")
    assert not failures, "\n".join(failures)


def test_json_files_are_valid_utf8_json(tmp_path: Path) -> None:
    for path in DASHBOARDS.glob("*.json"):
        json.loads(path.read_bytes().decode("utf-8"))
