"""End to end: `yunguan exporter` → Debian's Prometheus 2.42 with the shipped rules →
Alertmanager 0.25.

The test starts the exporter (the real CLI, in a subprocess) on a free port,
points the observability testbed at it and at deploy/prometheus/rules/*.yml
(1 s scrape and evaluation), grants 97.5 % of the provincial cloud's
allocatable vCPU and waits for YunguanCloudGrantedCritical to reach
Alertmanager's /api/v2/alerts; then takes the grant back and waits for the
alert to resolve (leave /api/v2/alerts).

Time: the production rule's `for: 1m` is the floor (no test copy of the
rules: the shipped file is what is tested). First scrape ~5 s after the
reload, 60 s pending, ~1 s to Alertmanager, ~2 s to resolve: about 75 s.
Every wait is bounded and polls; nothing asserts a duration. The testbed's
previous prometheus.yml is restored at the end.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from controlplane.bootstrap import Container
from controlplane.db.engine import make_engine, make_session_factory
from controlplane.db.migrate import upgrade
from controlplane.settings import Mode, Settings
from controlplane.topology.apply import apply_topology
from controlplane.topology.document import load_document
from quotas import service
from tests.conftest import SAMPLE, TEST_SECRET_KEY
from tests.db.quota_world import ADMIN, World
from tests.observability.conftest import DEPLOY, get_json, run_testbed, wait_for

YUNGUAN = str(Path(sys.executable).with_name("yunguan"))
ALERT = "YunguanCloudGrantedCritical"
SELECTOR = 'cloud="provincial",resource_class="vcpu"'


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    """Its own SQLite file: this test is about Prometheus, and the exporter (another
    process) reads the same file while the test writes it."""
    url = f"sqlite:///{tmp_path / 'e2e.db'}"
    engine = make_engine(url)
    upgrade(engine)
    settings = Settings(
        mode=Mode.DEV, database_url=url, data_dir=tmp_path, secret_key=TEST_SECRET_KEY
    )
    c = Container(settings=settings, engine=engine, session_factory=make_session_factory(engine))
    apply_topology(c.session_factory, load_document(SAMPLE), source=str(SAMPLE))
    yield World(c)
    engine.dispose()


@pytest.fixture
def exporter(world: World, tmp_path: Path) -> Iterator[str]:
    """`yunguan exporter` on a free port; yields host:port. Stopped by its PID."""
    log = tmp_path / "exporter.log"
    env = {
        **os.environ,
        "YUNGUAN_DATABASE_URL": str(world.container.engine.url),
        "YUNGUAN_MODE": "production",
    }
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [YUNGUAN, "exporter", "--port", "0", "--check-interval", "0.5"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=out,
        )
    try:

        def bound() -> str | None:
            if proc.poll() is not None:
                pytest.fail(f"yunguan exporter exited: {log.read_text()}", pytrace=False)
            m = re.search(r"http://(127\.0\.0\.1:\d+)/metrics", log.read_text())
            return m.group(1) if m else None

        yield wait_for("the exporter to listen", bound, timeout=30)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def scrape(target: str) -> bytes:
    req = urllib.request.Request(f"http://{target}/metrics", headers={"Accept-Encoding": "gzip"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.headers["Content-Encoding"] == "gzip"
        import gzip

        return gzip.decompress(resp.read())


def grant(w: World, amount: int) -> None:
    w.run(lambda s: service.set_grant(s, ADMIN, "changsha", "provincial", "vcpu", amount))


def test_critical_grant_alert_reaches_alertmanager_and_resolves(
    world: World, exporter: str, testbed: dict[str, str], promtool: str
) -> None:
    world.run(lambda s: service.set_capacity(s, ADMIN, "provincial", "vcpu", 1000))  # → 4000
    grant(world, 2000)  # 50 %
    lint = subprocess.run(
        [promtool, "check", "metrics"], check=False, input=scrape(exporter), capture_output=True
    )
    assert lint.returncode == 0 and not lint.stdout and not lint.stderr, lint

    prom, am = testbed["PROMETHEUS_URL"], testbed["ALERTMANAGER_URL"]
    config = Path(testbed["PROMETHEUS_CONFIG"])
    saved = config.read_text(encoding="utf-8")
    job = f"yunguan-e2e-{uuid.uuid4().hex[:8]}"
    try:
        run_testbed(
            "reload",
            env={
                **os.environ,
                "OBS_SCRAPE_TARGETS": exporter,
                "OBS_RULE_FILES": str(DEPLOY / "prometheus" / "rules" / "*.yml"),
                "OBS_SCRAPE_INTERVAL": "1s",
                "OBS_EVAL_INTERVAL": "1s",
                "OBS_JOB_NAME": job,
            },
        )

        def granted() -> float | None:
            q = f'yunguan_capacity_granted_units{{{SELECTOR},job="{job}"}}'
            result = get_json(f"{prom}/api/v1/query", query=q)["data"]["result"]
            return float(result[0]["value"][1]) if result else None

        def prom_alert_states() -> list[str]:
            alerts = get_json(f"{prom}/api/v1/alerts")["data"]["alerts"]
            return [
                a["state"]
                for a in alerts
                if a["labels"].get("alertname") == ALERT and a["labels"].get("job") == job
            ]

        def am_alerts() -> list[dict[str, Any]]:
            filters = [f'alertname="{ALERT}"', f'job="{job}"']
            found: list[dict[str, Any]] = get_json(f"{am}/api/v2/alerts", filter=filters)
            return found

        assert wait_for("the first scrape", lambda: granted() == 2000, timeout=30)
        assert prom_alert_states() == []  # 50 %: the rule is inactive
        wait_for(
            "the rules to load",
            lambda: any(
                r["name"] == ALERT and r["health"] == "ok"
                for g in get_json(f"{prom}/api/v1/rules")["data"]["groups"]
                for r in g["rules"]
            ),
            timeout=30,
        )

        grant(world, 3900)  # 97.5 % of 4000
        wait_for("the new grant in Prometheus", lambda: granted() == 3900, timeout=30)
        wait_for("the alert to be pending", prom_alert_states, timeout=30)
        active = wait_for(
            f"{ALERT} in Alertmanager",
            lambda: [a for a in am_alerts() if a["status"]["state"] == "active"],
            timeout=110,
        )
        alert = active[0]
        assert {k: alert["labels"][k] for k in ("severity", "cloud", "prefecture")} == {
            "severity": "critical",
            "cloud": "provincial",
            "prefecture": "hunan",
        }
        assert alert["labels"]["resource_class"] == "vcpu"
        assert alert["annotations"]["summary"] == (
            "provincial: 97.5% of allocatable vcpu is granted"
        )
        assert alert["annotations"]["runbook_url"].endswith("/runbooks/" + ALERT)

        grant(world, 1000)  # released: 25 %
        wait_for("the alert to resolve", lambda: am_alerts() == [], timeout=60)
        assert prom_alert_states() == []
    finally:
        config.write_text(saved, encoding="utf-8")
        req = urllib.request.Request(f"{prom}/-/reload", data=b"", method="POST")
        with urllib.request.urlopen(req, timeout=10) as resp:
            resp.read()
