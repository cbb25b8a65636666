"""The `yunguan` command as an admin runs it: real processes, real databases."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import SAMPLE
from tests.secrets_scan import register_secret

YUNGUAN = str(Path(sys.executable).with_name("yunguan"))


def yunguan(*args: str, url: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "YUNGUAN_DATABASE_URL": url}
    return subprocess.run(
        [YUNGUAN, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def test_apply_dry_run_show_and_idempotence(migrated_url: str, backend: str) -> None:
    dry = yunguan("topology", "apply", str(SAMPLE), "--dry-run", url=migrated_url)
    assert dry.returncode == 0, dry.stderr
    assert "+ cloud provincial" in dry.stdout
    assert dry.stdout.strip().endswith("would change 64 objects")
    shown = yunguan("topology", "show", url=migrated_url)
    assert "no topology yet" in shown.stdout

    done = yunguan("topology", "apply", str(SAMPLE), url=migrated_url)
    assert done.returncode == 0, done.stderr
    again = yunguan("topology", "apply", str(SAMPLE), url=migrated_url)
    assert again.stdout.strip() == f"{SAMPLE}: no changes"
    shown = yunguan("topology", "show", url=migrated_url)
    assert "湘西土家族苗族自治州" in shown.stdout and "20 clouds" in shown.stdout

    bad = Path(str(migrated_url).rsplit("/", 1)[-1] + ".bad.yaml")
    try:
        bad.write_text(
            SAMPLE.read_text(encoding="utf-8").replace("kind: slurm", "kind: lsf"), encoding="utf-8"
        )
        failed = yunguan("topology", "apply", str(bad), url=migrated_url)
    finally:
        bad.unlink()
    assert failed.returncode == 2
    assert failed.stderr.startswith(f"error: {bad}: clouds[1].kind: unknown value 'lsf'")
    assert "Traceback" not in failed.stderr
    # one readable line per problem (here the kind and the connection's kind)
    assert all(line.startswith("error: ") for line in failed.stderr.strip().splitlines())
    # the database is untouched
    assert (
        yunguan("topology", "apply", str(SAMPLE), url=migrated_url)
        .stdout.strip()
        .endswith("no changes")
    )
    # leave the shared database as the other tests expect it: empty
    yunguan("db", "downgrade", "base", url=migrated_url)
    assert yunguan("db", "upgrade", url=migrated_url).returncode == 0


def test_errors_are_one_line_unless_debug(tmp_path: Path) -> None:
    url = "postgresql+psycopg://nobody@127.0.0.1:1/none"
    quiet = yunguan("db", "current", url=url)
    assert quiet.returncode == 1
    assert quiet.stderr.startswith("error: database unreachable: ")
    assert len(quiet.stderr.strip().splitlines()) == 1
    loud = yunguan("--debug", "db", "current", url=url)
    assert "Traceback" in loud.stderr


def test_missing_file_and_usage_errors(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'y.db'}"
    missing = yunguan("topology", "apply", str(tmp_path / "none.yaml"), url=url)
    assert missing.returncode == 2
    assert missing.stderr.strip() == f"error: {tmp_path / 'none.yaml'}: no such file"
    usage = yunguan("topology", "frobnicate", url=url)
    assert usage.returncode == 2


def test_serve_refuses_production_without_secret(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("YUNGUAN_")}
    out = subprocess.run(
        [YUNGUAN, "serve"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 2
    assert out.stderr.startswith("error: refusing to start in production mode: YUNGUAN_SECRET_KEY")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.timeout(120)
def test_up_serves_the_sample_topology_within_60s(tmp_path: Path) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("YUNGUAN_")}
    env["XDG_DATA_HOME"] = str(tmp_path)
    started = time.monotonic()
    proc = subprocess.Popen(
        [YUNGUAN, "up", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,  # a full pipe would block the server
        stderr=subprocess.DEVNULL,
    )
    try:
        body = None
        token_file = tmp_path / "yunguan" / "dev-admin.token"
        while time.monotonic() - started < 60 and proc.poll() is None:
            try:
                token = token_file.read_text(encoding="utf-8").strip()
                register_secret(token)
                req = urllib.request.Request(
                    f"http://127.0.0.1:{port}/v1/clouds",
                    headers={"Authorization": f"Bearer {token}"},
                )
                with urllib.request.urlopen(req, timeout=2) as r:
                    body = json.load(r)
                break
            except OSError:
                time.sleep(0.25)
        assert body is not None, "API did not answer within 60 s"
        assert body["total"] == 20
        assert (tmp_path / "yunguan" / "yunguan.db").exists()
        assert token_file.stat().st_mode & 0o077 == 0
        # without the token: 401
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/clouds", timeout=2)
            raise AssertionError("anonymous request was served")
        except urllib.error.HTTPError as exc:
            assert exc.code == 401
    finally:
        proc.terminate()
        proc.wait(timeout=30)
