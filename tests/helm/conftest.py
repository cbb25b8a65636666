"""Fixtures for the chart tests: helm (pinned, cached) and the real kube-apiserver testbed.

Both FAIL the session when they cannot be had: a skip would hide a broken
toolchain or testbed. helm's homes are a session temp dir, so the tests never
read or write the user's ~/.config/helm.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kubernetes import config as kube_config
from kubernetes.client import ApiClient

from tests.helm.chart import REPO, Helm, install_helm
from tests.secrets_scan import register_secret

KUBE_TESTBED = REPO / "scripts" / "testbed" / "kubernetes.sh"


@pytest.fixture(scope="session")
def helm_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    home = tmp_path_factory.mktemp("helm-home")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HELM_")}
    env.update(
        HELM_CACHE_HOME=str(home / "cache"),
        HELM_CONFIG_HOME=str(home / "config"),
        HELM_DATA_HOME=str(home / "data"),
    )
    return env


@pytest.fixture(scope="session")
def helm(helm_env: dict[str, str]) -> Helm:
    return install_helm(helm_env)


@dataclass(frozen=True)
class KubeTestbed:
    kubeconfig: str
    context: str


def _testbed_env() -> dict[str, str]:
    up = subprocess.run(
        ["bash", str(KUBE_TESTBED), "up"], capture_output=True, text=True, timeout=1800, check=False
    )
    if up.returncode != 0:
        pytest.fail(
            f"Kubernetes testbed did not come up ({KUBE_TESTBED} up, exit {up.returncode}):\n"
            f"{up.stderr[-3000:]}",
            pytrace=False,
        )
    out = subprocess.run(
        ["bash", str(KUBE_TESTBED), "env"], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    values: dict[str, str] = {}
    for line in out.splitlines():
        words = shlex.split(line)
        if len(words) == 2 and words[0] == "export" and "=" in words[1]:
            name, _, value = words[1].partition("=")
            values[name] = value
    return values


@pytest.fixture(scope="session")
def kube_testbed() -> KubeTestbed:
    env = _testbed_env()
    testbed = KubeTestbed(kubeconfig=env["KUBECONFIG"], context=env["YUNGUAN_KUBE_CONTEXT_ADMIN"])
    # The testbed's bearer tokens are secrets: the session's log scan fails the
    # run if any log record contains one.
    config = json.loads(Path(testbed.kubeconfig).read_text(encoding="utf-8"))
    for user in config["users"]:
        register_secret(user["user"]["token"])
    return testbed


@pytest.fixture(scope="session")
def kube_api(kube_testbed: KubeTestbed) -> Iterator[ApiClient]:
    client = kube_config.new_client_from_config(
        config_file=kube_testbed.kubeconfig, context=kube_testbed.context
    )
    yield client
    client.close()


@pytest.fixture(scope="session")
def helm_kube(helm: Helm, kube_testbed: KubeTestbed) -> Helm:
    """helm pointed at the testbed (the same binary, homes and log of calls)."""
    env = dict(helm.env, KUBECONFIG=kube_testbed.kubeconfig, HELM_KUBECONTEXT=kube_testbed.context)
    return Helm(binary=helm.binary, env=env)
