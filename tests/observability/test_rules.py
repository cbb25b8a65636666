"""The shipped alert rules and Alertmanager config, checked with the real tools.

`promtool check rules` and `promtool test rules` on deploy/prometheus; every
alert has unit tests that expect it firing and not firing, a severity,
a runbook; every series a rule reads is one the exporter serves;
`amtool check-config` and the routing by prefecture and severity.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from controlplane.observability import families
from tests.observability.conftest import DEPLOY

RULES = sorted((DEPLOY / "prometheus" / "rules").glob("*.yml"))
RULE_TESTS = sorted((DEPLOY / "prometheus" / "tests").glob("*.yml"))
ALERTMANAGER = DEPLOY / "alertmanager" / "alertmanager.yml"
RUNBOOKS = DEPLOY / "prometheus" / "runbooks.md"


def exported_names() -> set[str]:
    names = set()
    for f in vars(families).values():
        if isinstance(f, families.Family):
            names.add(f.exposed_name)
    return names


def alerts() -> dict[str, dict[str, Any]]:
    out = {}
    for path in RULES:
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    out[rule["alert"]] = rule
    return out


def run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=120)


def test_the_issue_asks_for_these_alerts() -> None:
    assert set(alerts()) == {
        "YunguanCloudGrantedHigh",
        "YunguanCloudGrantedCritical",
        "YunguanCloudUsedHigh",
        "YunguanPrefectureNearGrant",
        "YunguanDepartmentNearGrant",
        "YunguanProviderDown",
        "YunguanSyncStale",
        "YunguanProvisioningFailures",
        "YunguanDriftPersisting",
        "YunguanApprovalsWaiting",
        "YunguanMigrationWaveBehindPlan",
    }
    granted = alerts()
    assert granted["YunguanCloudGrantedHigh"]["expr"].endswith("> 0.85")
    assert granted["YunguanCloudGrantedCritical"]["expr"].endswith("> 0.95")
    used = granted["YunguanCloudUsedHigh"]
    assert used["expr"].endswith("> 0.9") and used["for"] == "15m"


def test_promtool_check_rules(promtool: str) -> None:
    proc = run(promtool, "check", "rules", *map(str, RULES))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_promtool_test_rules(promtool: str) -> None:
    proc = run(promtool, "test", "rules", *map(str, RULE_TESTS))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("SUCCESS") == len(RULE_TESTS)


def test_promtool_test_rules_fails_on_a_wrong_expectation(promtool: str, tmp_path: Path) -> None:
    """The harness can fail: a test expecting a non-firing alert to fire is FAILED."""
    src = DEPLOY / "prometheus" / "tests" / "migration.test.yml"
    broken = yaml.safe_load(src.read_text(encoding="utf-8"))
    broken["rule_files"] = [str(DEPLOY / "prometheus" / "rules" / "migration.yml")]
    checks = broken["tests"][0]["alert_rule_test"]
    checks[0]["exp_alerts"] = checks[1]["exp_alerts"]
    path = tmp_path / "broken.test.yml"
    path.write_text(yaml.safe_dump(broken), encoding="utf-8")
    proc = run(promtool, "test", "rules", str(path))
    assert proc.returncode == 1 and "FAILED" in proc.stdout + proc.stderr


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    fired: set[str] = set()
    quiet: set[str] = set()
    for path in RULE_TESTS:
        for case in yaml.safe_load(path.read_text(encoding="utf-8"))["tests"]:
            for check in case.get("alert_rule_test", []):
                (fired if check.get("exp_alerts") else quiet).add(check["alertname"])
    assert set(alerts()) - fired == set(), "alerts never expected to fire"
    assert set(alerts()) - quiet == set(), "alerts never expected to stay quiet"


@pytest.mark.parametrize("name", sorted(alerts()))
def test_every_alert_has_severity_annotations_and_a_runbook(name: str) -> None:
    rule = alerts()[name]
    assert rule["labels"]["severity"] in {"warning", "critical"}
    annotations = rule["annotations"]
    assert {"summary", "description", "runbook_url"} <= set(annotations)
    assert annotations["runbook_url"].endswith(f"/runbooks/{name}")
    assert f"\n## {name}\n" in RUNBOOKS.read_text(encoding="utf-8")


@pytest.mark.parametrize("name", sorted(alerts()))
def test_rules_read_only_series_the_exporter_serves(name: str) -> None:
    used = set(re.findall(r"yunguan_[a-z0-9_]+", alerts()[name]["expr"]))
    assert used and used <= exported_names(), used - exported_names()
    # Alertmanager routes on prefecture: every alert keeps it (or sums by it).
    expr = alerts()[name]["expr"]
    assert "sum by" not in expr or "prefecture" in expr


def test_alertmanager_config_is_valid(amtool: str) -> None:
    proc = run(amtool, "check-config", str(ALERTMANAGER))
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize(
    ("labels", "receivers"),
    [
        (["prefecture=changsha", "severity=critical"], "hunan-oncall,changsha-ops"),
        (["prefecture=changsha", "severity=warning"], "changsha-ops"),
        (["prefecture=xiangxi", "severity=warning"], "xiangxi-ops"),
        (["prefecture=hunan", "severity=warning"], "hunan-ops"),
        (["prefecture=hunan", "severity=critical"], "hunan-oncall,hunan-ops"),
    ],
)
def test_alertmanager_routes_by_prefecture_and_severity(
    amtool: str, labels: list[str], receivers: str
) -> None:
    proc = run(amtool, "config", "routes", "test", f"--config.file={ALERTMANAGER}", *labels)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == receivers
