"""Quota admissions over HTTP, against the web stack's own ceiling, in one run.

    .venv/bin/python bench/quota_http.py --connections 32 --seconds 15 [--db URL]

Yunguan: `yunguan serve --workers 2` on PostgreSQL; each connection files
`POST /v1/requests` (+1 vcpu) for its own project under one shared department
and prefecture of the provincial cloud, and the prefecture's auto-approval
policy approves it at once — bearer authentication, the 4-level locked check
(pool → prefecture → department → project), the audit entries and the outbox
row are all in each request. Baseline: a bare FastAPI app (bench/bare_app.py)
with the same uvicorn worker count on the same server, whose POST does one
conditional UPDATE on a single hot row. Same client, same machine, same run.
Last line (one line; wrapped here):

    http_admissions_per_s=<float> bare_per_s=<float> ratio=<float>
    p99_ms=<float> oversubscribed=<int>
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from controlplane.db.engine import make_engine, make_session_factory  # noqa: E402
from controlplane.db.migrate import upgrade  # noqa: E402
from controlplane.db.uow import UnitOfWork  # noqa: E402
from controlplane.identity.roles import Role  # noqa: E402
from controlplane.identity.store import IdentityStore  # noqa: E402
from controlplane.quotastore.store import SqlQuotaStore  # noqa: E402
from controlplane.topology.apply import apply_topology  # noqa: E402
from controlplane.topology.document import parse_document  # noqa: E402
from quotas import service  # noqa: E402
from quotas.model import Actor  # noqa: E402

CLOUD, PREFECTURE, DEPARTMENT = "provincial", "changsha", "cs-data"
SECRET = secrets.token_hex(32)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def seed(url: str, connections: int) -> tuple[list[str], list[str]]:
    import yaml

    engine = make_engine(url)
    upgrade(engine)
    factory = make_session_factory(engine)
    data = yaml.safe_load((REPO / "examples" / "hunan.yaml").read_text(encoding="utf-8"))
    projects = [f"bench-{i:03d}" for i in range(connections)]
    data["projects"] += [{"code": p, "name": p, "department": DEPARTMENT} for p in projects]
    apply_topology(factory, parse_document(data, "bench"), source="bench")
    admin = Actor("bench")
    tokens = []
    with UnitOfWork(factory) as uow:
        store = SqlQuotaStore(uow.session)
        service.set_capacity(store, admin, CLOUD, "vcpu", 10**12)
        service.set_grant(store, admin, PREFECTURE, CLOUD, "vcpu", 10**11)
        service.set_grant(store, admin, DEPARTMENT, CLOUD, "vcpu", 10**10)
        service.set_auto_approval(store, admin, PREFECTURE, {"vcpu": 10})
        ids = IdentityStore(uow.session)
        for i in range(connections):
            user = ids.create_user(f"bench-{i:03d}", "bench", DEPARTMENT)
            ids.bind(user, Role.DEPARTMENT_MEMBER, DEPARTMENT)
            tokens.append(ids.issue_token(SECRET, user, "bench", 1).plaintext)
        uow.commit()
    engine.dispose()
    return projects, tokens


def wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise TimeoutError(url)


async def drive(base: str, seconds: float, bodies: list[dict[str, object]],
                tokens: list[str]) -> tuple[int, int, list[float]]:
    ok = failed = 0
    latencies: list[float] = []
    stop = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=len(bodies), max_keepalive_connections=len(bodies))
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:

        async def one(i: int) -> None:
            nonlocal ok, failed
            headers = {"Authorization": f"Bearer {tokens[i]}"}
            while time.monotonic() < stop:
                started = time.perf_counter()
                resp = await client.post("/v1/requests", json=bodies[i],
                                         headers={**headers, "Idempotency-Key": uuid.uuid4().hex})
                latencies.append(time.perf_counter() - started)
                if resp.status_code == 201:
                    ok += 1
                else:
                    failed += 1

        await asyncio.gather(*(one(i) for i in range(len(bodies))))
    return ok, failed, latencies


def serve(cmd: list[str], env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    wait_http(f"http://127.0.0.1:{port}/healthz" if "yunguan" in cmd[0] else
              f"http://127.0.0.1:{port}/docs")
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=15)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--db", default=os.environ.get(
        "YUNGUAN_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"))
    args = ap.parse_args()

    admin = create_engine(args.db, isolation_level="AUTOCOMMIT")
    name = f"yg_bench_http_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(args.db).set(database=name).render_as_string(hide_password=False)
    bin_dir = Path(sys.executable).parent
    try:
        projects, tokens = seed(url, args.connections)
        bodies: list[dict[str, object]] = [
            {"project": p, "cloud": CLOUD, "reason": "bench",
             "items": [{"resource_class": "vcpu", "delta": 1}]} for p in projects]
        hot = create_engine(url)
        with hot.begin() as conn:
            conn.execute(
                text("CREATE TABLE bare_hot (id int primary key, used bigint, cap bigint)")
            )
            conn.execute(text("INSERT INTO bare_hot VALUES (1, 0, 1000000000000)"))
        hot.dispose()

        env = {k: v for k, v in os.environ.items() if not k.startswith("YUNGUAN_")}
        env.update(YUNGUAN_DATABASE_URL=url, YUNGUAN_SECRET_KEY=SECRET, BARE_DB_URL=url,
                   YUNGUAN_LOG__LEVEL="WARNING")
        results = {}
        for label in ("bare", "yunguan"):
            port = free_port()
            if label == "yunguan":
                cmd = [str(bin_dir / "yunguan"), "serve", "--port", str(port),
                       "--workers", str(args.workers)]
            else:
                cmd = [str(bin_dir / "uvicorn"), "--factory", "bench.bare_app:create_app",
                       "--port", str(port), "--workers", str(args.workers), "--log-level",
                       "warning"]
            proc = serve(cmd, {**env, "PYTHONPATH": str(REPO)}, port)
            try:
                asyncio.run(drive(f"http://127.0.0.1:{port}", 2, bodies, tokens))  # warm up
                started = time.monotonic()
                ok, failed, lat = asyncio.run(
                    drive(f"http://127.0.0.1:{port}", args.seconds, bodies, tokens))
                elapsed = time.monotonic() - started
            finally:
                stop(proc)
            lat.sort()
            p99 = lat[int(len(lat) * 0.99) - 1] * 1000 if lat else float("nan")
            results[label] = (ok / elapsed, failed, p99)
            print(f"{label}: {ok} ok, {failed} failed in {elapsed:.1f}s, p99 {p99:.1f} ms")

        engine = make_engine(url)
        with UnitOfWork(make_session_factory(engine)) as uow:
            broken = service.check_invariants(SqlQuotaStore(uow.session), CLOUD)
        engine.dispose()
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    ours, bare = results["yunguan"][0], results["bare"][0]
    print(f"http_admissions_per_s={ours:.1f} bare_per_s={bare:.1f} ratio={ours / bare:.3f} "
          f"p99_ms={results['yunguan'][2]:.1f} oversubscribed={len(broken)}")


if __name__ == "__main__":
    main()
