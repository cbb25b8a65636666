"""`yunguan serve --workers 2` (api/server.py): connections opened at once are
split evenly over both workers (api/balance.py: the worker holding the fewest
accepts), every response
comes back at once (TCP_NODELAY), SIGTERM stops every process, and a port
another program holds fails the start with one readable line."""

from __future__ import annotations

import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from controlplane.db.engine import make_engine
from controlplane.db.migrate import upgrade
from tests.conftest import TEST_SECRET_KEY, ThrowawayDatabases

YUNGUAN = str(Path(sys.executable).with_name("yunguan"))


@pytest.fixture(scope="module")
def pg_url(databases: ThrowawayDatabases) -> str:
    """The multi-worker server is for PostgreSQL deployments (SQLite has one writer)."""
    url = databases.new_url("postgresql")
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    return url


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(tmp_path: Path, migrated_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("YUNGUAN_")}
    env.update(
        YUNGUAN_DATABASE_URL=migrated_url,
        YUNGUAN_SECRET_KEY=TEST_SECRET_KEY,
        YUNGUAN_DATA_DIR=str(tmp_path),
        YUNGUAN_LOG__LEVEL="WARNING",
    )
    return env


def _wait_ready(port: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.2)
    raise AssertionError("yunguan serve did not answer /healthz")


def _serving_pids(port: int) -> list[int]:
    out = subprocess.run(
        ["ss", "-Htnp", "state", "established", f"( sport = :{port} )"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [int(p) for p in re.findall(r"pid=(\d+)", out)]


@pytest.mark.timeout(120)
def test_two_workers_share_the_connections_and_stop_on_sigterm(tmp_path: Path, pg_url: str) -> None:
    port = _free_port()
    proc = subprocess.Popen(
        [YUNGUAN, "serve", "--port", str(port), "--workers", "2"],
        env=_env(tmp_path, pg_url),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        _wait_ready(port, time.monotonic() + 60)
        # A pool's worth of keep-alive connections, opened at once.
        conns = [http.client.HTTPConnection("127.0.0.1", port, timeout=5) for _ in range(16)]
        for c in conns:
            c.connect()
        started = time.monotonic()
        for _ in range(5):
            for c in conns:
                c.request("GET", "/healthz")
                assert c.getresponse().read() and True
        # 80 sequential keep-alive requests: with Nagle on, each would wait ~40 ms.
        assert time.monotonic() - started < 3.0
        held = Counter(pid for pid in _serving_pids(port) if pid != proc.pid)
        assert len(held) == 2, f"connections held by {held}"
        # Even, but for a worker that stood aside longer than GRACE (a busy machine).
        assert max(held.values()) - min(held.values()) <= 2, held
        for c in conns:
            c.close()
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(30)
    assert proc.returncode == 0
    left: list[str] = []
    for _ in range(50):  # multiprocessing's resource tracker follows its parent shortly
        left = subprocess.run(
            ["pgrep", "-g", str(proc.pid)], capture_output=True, text=True, check=False
        ).stdout.split()
        if not left:
            break
        time.sleep(0.2)
    assert left == [], f"processes left behind: {left}"


def test_a_port_in_use_fails_with_one_line(tmp_path: Path, pg_url: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        out = subprocess.run(
            [YUNGUAN, "serve", "--port", str(port), "--workers", "2"],
            env=_env(tmp_path, pg_url),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert out.returncode != 0
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0] == f"error: cannot listen on 127.0.0.1:{port}: Address already in use"
