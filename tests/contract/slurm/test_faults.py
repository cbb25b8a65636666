"""Faults against real software: nothing here is mocked.

- slurmrestd unreachable: a provider pointed at a closed port on 127.0.0.1
  (the shared daemon keeps running for everyone else);
- a bad JWT: a provider whose key file holds another key;
- slurmctld down behind a live slurmrestd: a private slurmrestd started for
  this module whose slurm.conf names a closed controller port. slurmctld's
  reply to a bad token and to its own absence is the same HTTP 500 body, so
  this is the only honest test of how the client tells the two apart;
- the command runner against an unreachable slurmdbd / controller.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from controlplane.vocabulary import CloudKind, ResourceClass
from providers.base import (
    ProviderAuthError,
    ProviderNotFound,
    ProviderRejected,
    ProviderUnavailable,
    TenantRef,
    TenantSpec,
)
from providers.registry import build_provider
from providers.slurm.adapter import SlurmProvider
from providers.slurm.commands import SlurmCommands
from providers.slurm.errors import SlurmReplyError
from tests.contract.slurm.testbed import SlurmTestbed, wait_for


@pytest.fixture(scope="module")
def closed_port() -> Iterator[int]:
    """A port bound but not listening: connects are refused, nobody else can take it."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    yield sock.getsockname()[1]
    sock.close()


def _provider(tb: SlurmTestbed, timeout: float = 10, **conn: str) -> SlurmProvider:
    provider = build_provider("nscc-faults", CloudKind.SLURM, tb.connection(**conn),
                              timeout=timeout)
    assert isinstance(provider, SlurmProvider)
    return provider


@pytest.fixture(scope="module")
def wrong_key_file(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("slurm-key") / "wrong_hs256.key"
    path.write_bytes(secrets.token_bytes(32))
    return str(path)


@pytest.fixture(scope="module")
def fault_dir() -> Iterator[Path]:
    # slurmrestd drops to the `slurmrest` user before reading its slurm.conf,
    # which therefore cannot live under pytest's 0700 tmp dirs.
    path = Path(tempfile.mkdtemp(prefix="yg-slurm-fault-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _conf_with(tb: SlurmTestbed, target: Path, **settings: str | int) -> str:
    """The testbed's slurm.conf with some settings replaced (or added)."""
    text = Path(tb.slurm_conf).read_text(encoding="utf-8")
    for key, value in settings.items():
        line = f"{key}={value}"
        text, n = re.subn(rf"(?m)^{key}=.*$", line, text)
        if not n:
            text += f"\n{line}\n"
    target.write_text(text, encoding="utf-8")
    target.chmod(0o644)
    return str(target)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def controller_down_url(
    slurm_testbed: SlurmTestbed, fault_dir: Path, closed_port: int
) -> Iterator[str]:
    """A private slurmrestd whose slurmctld is unreachable (slurmdbd is the
    testbed's). Short Message/TCP timeouts keep each failing call ~1 s."""
    conf = _conf_with(slurm_testbed, fault_dir / "slurm.conf", SlurmctldPort=closed_port,
                      MessageTimeout=2, TCPTimeout=1)
    port = _free_port()
    log = (fault_dir / "slurmrestd.log").open("wb")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "SLURM_JWT": "daemon",
           "SLURM_CONF": conf}
    proc = subprocess.Popen(
        ["/usr/sbin/slurmrestd", "-a", "rest_auth/jwt", "-u", "slurmrest", "-g", "slurmrest",
         f"127.0.0.1:{port}"],
        env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
    )
    try:
        def listening() -> bool | None:
            assert proc.poll() is None, (fault_dir / "slurmrestd.log").read_text()
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", port)) == 0 or None
        wait_for("the private slurmrestd to listen", listening, 15)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()  # ours, by PID
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()


# -- slurmrestd unreachable -------------------------------------------------------


def test_unreachable_slurmrestd_is_down_and_unavailable(
    slurm_testbed: SlurmTestbed, closed_port: int, tenant_spec: TenantSpec
) -> None:
    provider = _provider(slurm_testbed, timeout=3, url=f"http://127.0.0.1:{closed_port}")
    report = provider.check_health()  # never raises for "down"
    assert not report.up
    assert report.checks["slurmctld"].startswith("down: provider.unavailable")
    assert report.checks["slurmdbd"].startswith("down: provider.unavailable")
    with pytest.raises(ProviderUnavailable) as info:
        provider.read_capacity()
    assert isinstance(info.value.__cause__, httpx.ConnectError)
    assert info.value.retryable
    with pytest.raises(ProviderUnavailable):
        provider.ensure_tenant(tenant_spec)
    with pytest.raises(ProviderUnavailable):
        provider.list_inventory()


# -- bad credentials ----------------------------------------------------------------


def test_bad_jwt_is_an_auth_error_not_a_500(
    slurm_testbed: SlurmTestbed,
    wrong_key_file: str,
    provider: SlurmProvider,
    tenant_spec: TenantSpec,
    retire_after: list[TenantRef],
) -> None:
    tenant = provider.ensure_tenant(tenant_spec)  # exists, so only auth can fail
    retire_after.append(tenant)
    bad = _provider(slurm_testbed, jwt_key_file=wrong_key_file, cluster=slurm_testbed.cluster)

    report = bad.check_health()
    assert not report.up
    assert report.checks["slurmctld"].startswith("down: provider.auth"), report.checks
    assert report.checks["slurmdbd"].startswith("down: provider.auth"), report.checks
    # slurmctld endpoint: HTTP 500 / error -1, told apart by asking slurmdbd.
    with pytest.raises(ProviderAuthError) as info:
        bad.read_capacity()
    cause = info.value.__cause__
    assert isinstance(cause, SlurmReplyError) and cause.status == 500
    assert not info.value.retryable
    with pytest.raises(ProviderAuthError):  # slurmdbd endpoint: error 1007
        bad.read_quota(tenant)
    with pytest.raises(ProviderAuthError):  # sacctmgr with the same token in SLURM_JWT
        bad.set_quota(tenant, {ResourceClass.HPC_CPU: 1})
    with pytest.raises(ProviderAuthError):
        bad.ensure_tenant(tenant_spec)


def test_missing_key_file_is_an_auth_error(slurm_testbed: SlurmTestbed) -> None:
    bad = _provider(slurm_testbed, jwt_key_file="/nonexistent/yunguan/slurm.key")
    with pytest.raises(ProviderAuthError, match="cannot read the Slurm JWT key file"):
        bad.read_capacity()
    assert not bad.check_health().up


# -- slurmctld down behind a live slurmrestd -------------------------------------------


def test_controller_down_is_unavailable_not_auth(
    slurm_testbed: SlurmTestbed, controller_down_url: str
) -> None:
    provider = _provider(slurm_testbed, url=controller_down_url, cluster=slurm_testbed.cluster)
    report = provider.check_health()
    assert not report.up
    assert report.checks["slurmctld"].startswith("down: provider.unavailable"), report.checks
    assert report.checks["slurmdbd"] == "up"
    with pytest.raises(ProviderUnavailable, match="slurmdbd accepts our token"):
        provider.read_capacity()


def test_controller_down_with_bad_token_is_still_auth(
    slurm_testbed: SlurmTestbed, controller_down_url: str, wrong_key_file: str
) -> None:
    provider = _provider(slurm_testbed, url=controller_down_url, jwt_key_file=wrong_key_file)
    with pytest.raises(ProviderAuthError):
        provider.list_inventory()


# -- the command runner ---------------------------------------------------------------


def test_runner_unreachable_slurmdbd_is_unavailable(
    slurm_testbed: SlurmTestbed, fault_dir: Path, closed_port: int
) -> None:
    conf = _conf_with(slurm_testbed, fault_dir / "dbd-down.conf",
                      AccountingStoragePort=closed_port)
    cli = SlurmCommands(cloud="t", timeout=20, slurm_conf=conf)
    with pytest.raises(ProviderUnavailable, match="Connection refused"):
        cli.sacctmgr("modify", "account", "where", "name=yg-nobody", "set", "GrpTRES=cpu=1")


def test_runner_timeout_is_unavailable(
    slurm_testbed: SlurmTestbed, fault_dir: Path, closed_port: int
) -> None:
    # Default timeouts: scontrol keeps retrying the absent controller for ~9 s.
    conf = _conf_with(slurm_testbed, fault_dir / "ctld-down.conf", SlurmctldPort=closed_port)
    cli = SlurmCommands(cloud="t", timeout=0.5, slurm_conf=conf)
    with pytest.raises(ProviderUnavailable, match="did not finish") as info:
        cli.scontrol("-o", "show", "assoc_mgr", "accounts=root", "flags=assoc")
    assert isinstance(info.value.__cause__, subprocess.TimeoutExpired)
    # `scontrol ping` answers at once, with a banner rather than an error.
    with pytest.raises(ProviderUnavailable, match="DOWN"):
        cli.scontrol("ping")


def test_runner_maps_refusals_and_missing_objects(slurm_testbed: SlurmTestbed) -> None:
    cli = SlurmCommands(cloud="t", timeout=20, slurm_conf=slurm_testbed.slurm_conf)
    with pytest.raises(ProviderRejected, match="Unknown option"):
        cli.sacctmgr("modify", "account", "where", "name=root", "set", "GrpTRES=bogus=1")
    with pytest.raises(ProviderNotFound, match="Nothing modified"):
        cli.sacctmgr("modify", "account", "where", "name=yg-nobody-0000", "set",
                     "GrpTRES=cpu=1")
    assert "yunguan" in cli.sacctmgr("--noheader", "--parsable2", "list", "cluster",
                                     "format=cluster")


def test_runner_refuses_what_it_should_not_run(tmp_path: Path) -> None:
    cli = SlurmCommands(cloud="t", timeout=5, slurm_conf=str(tmp_path / "missing.conf"))
    with pytest.raises(ProviderRejected, match="does not exist"):
        cli.scontrol("ping")  # instead of Slurm's 60 s retry loop on a missing file
    with pytest.raises(ValueError, match="not a Slurm command"):
        cli.run("sbatch", ["--wrap", "true"])
    with pytest.raises(ValueError, match="multi-line"):
        cli.scontrol("show", "assoc_mgr\nflags=assoc")
    missing_tools = SlurmCommands(cloud="t", timeout=5, search_path=str(tmp_path))
    with pytest.raises(ProviderRejected, match="not found"):
        missing_tools.scontrol("ping")
