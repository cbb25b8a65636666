"""Fixtures of the metrics tests: promtool/amtool, the observability testbed, parsing.

promtool, amtool, Prometheus and Alertmanager come from Debian's `prometheus`
and `prometheus-alertmanager` packages (scripts/test.sh installs them;
`scripts/testbed/observability.sh up` does too). A missing binary or a
testbed that does not start fails the test: a skip must never hide it.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any, TypeVar

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import REPO

T = TypeVar("T")
TESTBED = REPO / "scripts" / "testbed" / "observability.sh"
DEPLOY = REPO / "deploy"


def _binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"{name} is not installed: apt-get install prometheus prometheus-alertmanager "
            "(scripts/test.sh and scripts/testbed/observability.sh up do it)",
            pytrace=False,
        )
    return path


@pytest.fixture(scope="session")
def promtool() -> str:
    return _binary("promtool")


@pytest.fixture(scope="session")
def amtool() -> str:
    return _binary("amtool")


def run_testbed(*args: str, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        ["bash", str(TESTBED), *args],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if proc.returncode != 0:
        pytest.fail(
            f"observability.sh {' '.join(args)} failed (rc {proc.returncode}):\n{proc.stderr}",
            pytrace=False,
        )
    return proc.stdout


@pytest.fixture(scope="session")
def testbed() -> dict[str, str]:
    """Prometheus and Alertmanager on 127.0.0.1 (started when not running; left
    running, like every testbed): PROMETHEUS_URL, ALERTMANAGER_URL, …"""
    run_testbed("up")
    out: dict[str, str] = {}
    for line in run_testbed("env").splitlines():
        words = shlex.split(line)
        if len(words) == 2 and words[0] == "export":
            key, _, value = words[1].partition("=")
            out[key] = value
    return out


def get_json(url: str, **params: str | list[str]) -> Any:
    """GET a JSON API; a list value repeats the parameter (`filter=a&filter=b`)."""
    query = urllib.parse.urlencode(params, doseq=True)
    try:
        with urllib.request.urlopen(f"{url}?{query}" if query else url, timeout=10) as resp:
            return json.load(resp)
    except urllib.error.HTTPError as exc:  # Prometheus answers 400 with a JSON error body
        return json.load(exc)


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """{(name, sorted labels): value} of an exposition."""
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


Parsed = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def value(parsed: Parsed, name: str, **labels: str) -> float:
    key = (name, tuple(sorted(labels.items())))
    assert key in parsed, f"no sample {name}{labels}; have: " + ", ".join(
        str(dict(k[1])) for k in parsed if k[0] == name
    )
    return parsed[key]


def series(parsed: Parsed, name: str, **labels: str) -> list[dict[str, str]]:
    """Label sets of `name` whose labels include `labels`."""
    return [
        dict(k[1])
        for k in parsed
        if k[0] == name and all(dict(k[1]).get(n) == v for n, v in labels.items())
    ]


def wait_for(what: str, check: Callable[[], T | None], timeout: float, interval: float = 0.2) -> T:
    """Polls `check` until it returns something truthy; bounded, never a fixed sleep."""
    import time

    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
            last = result
        except OSError as exc:
            last = exc
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")
