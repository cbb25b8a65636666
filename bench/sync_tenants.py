"""One full quota + usage + capacity sync of 1,000 tenants on the OpenStack testbed.

    .venv/bin/python bench/sync_tenants.py --tenants 1000 [--db URL]

Setup (not timed): a throwaway database, the provincial cloud pointed at the
testbed (`scripts/testbed/openstack.sh up`), N projects with grants, each
provisioned through the real task body (Keystone project + Nova, Cinder and
Neutron quotas). Timed: `sync_capacity` + `sync_quotas` for the cloud — every
tenant's limits and usage read, drift checked, observations and usage stored —
exactly what the beat runs each cycle. HTTP calls to the cloud are counted
per service, and the CPU seconds each testbed service, the databases and
this process spent during the timed sync are printed (where the time goes).
The line before the last is the same-run baseline: one tenant's
`read_quota`, timed alone, times N (what a sequential sync would cost).
Last line:

    tenants=<int> seconds=<float> calls=<int>
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import shlex
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
import yaml
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from controlplane.db.engine import make_engine, make_session_factory  # noqa: E402
from controlplane.db.migrate import upgrade  # noqa: E402
from controlplane.db.tables import Cloud, OrgNode  # noqa: E402
from controlplane.db.uow import UnitOfWork  # noqa: E402
from controlplane.quotastore.store import SqlQuotaStore  # noqa: E402
from controlplane.topology.apply import apply_topology  # noqa: E402
from controlplane.topology.document import parse_document  # noqa: E402
from controlplane.vocabulary import CloudKind  # noqa: E402
from controlplane.worker import operations as ops  # noqa: E402
from controlplane.worker import sync  # noqa: E402
from controlplane.worker.context import ProviderCache, WorkerContext  # noqa: E402
from controlplane.worker.provisioning import run_operation  # noqa: E402
from controlplane.worker.retry import RetryPolicy  # noqa: E402
from controlplane.worker.sync import _bindings, sync_capacity, sync_quotas  # noqa: E402
from providers.registry import build_provider  # noqa: E402
from quotas import service  # noqa: E402
from quotas.model import Actor  # noqa: E402

CLOUD, DEPARTMENT = "provincial", "hn-data"
# The testbed's ports (scripts/testbed/openstack.sh), to count calls per service.
PORTS = {
    15000: "keystone",
    18774: "nova-api",
    18776: "cinder-api",
    19696: "neutron-api",
    18778: "placement",
    19292: "glance-api",
}
TESTBED_RUN = Path.home() / ".cache" / "yunguan" / "testbed" / "openstack" / "run"
_calls: Counter[str] = Counter()  # HTTP requests made while the sync is timed
_lock = threading.Lock()
_original = requests.Session.request


def _counting(self: requests.Session, method: str, url: str, *a: Any, **kw: Any) -> Any:
    service = PORTS.get(urlsplit(url).port or 0, "other")
    with _lock:
        _calls[service] += 1
    return _original(self, method, url, *a, **kw)


def _processes() -> dict[int, tuple[int, str, float]]:
    """pid -> (parent pid, name, CPU seconds) for every process on the machine."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        out[int(entry.name)] = (int(fields[1]), name, (int(fields[11]) + int(fields[12])) / tick)
    return out


def cpu_by_service() -> Counter[str]:
    """CPU seconds so far of each testbed service (its recorded PID and every
    descendant: uWSGI workers), of MariaDB, PostgreSQL and RabbitMQ, and of
    this process."""
    procs = _processes()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in procs.items():
        children.setdefault(ppid, []).append(pid)
    out: Counter[str] = Counter()
    owned: set[int] = set()
    for pidfile in TESTBED_RUN.glob("*.pid"):
        try:
            todo = [int(pidfile.read_text().split()[0])]
        except (OSError, ValueError, IndexError):
            continue
        while todo:
            pid = todo.pop()
            if pid in procs and pid not in owned:
                owned.add(pid)
                out[pidfile.stem] += procs[pid][2]
                todo.extend(children.get(pid, []))
    for pid, (_, name, cpu) in procs.items():
        if pid in owned:
            continue
        if name.startswith("mariadbd") or name.startswith("mysqld"):
            out["mariadb"] += cpu
        elif name.startswith("postgres"):
            out["postgresql"] += cpu
        elif name.startswith("beam.smp"):
            out["rabbitmq"] += cpu
    out["this process (the sync)"] = time.process_time()
    return out


class _PhaseLog(logging.Handler):
    """Keeps the sync's own summary line (read vs record time)."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage().startswith("quota sync of"):
            self.lines.append(record.getMessage())


class _Quiet:
    def dispatch(self, *a: Any, **kw: Any) -> None:
        return None


def testbed_env() -> dict[str, str]:
    script = REPO / "scripts" / "testbed" / "openstack.sh"
    subprocess.run(
        ["bash", str(script), "up", "--db-quotas"], check=True, stdout=subprocess.DEVNULL
    )
    out = subprocess.run(
        ["bash", str(script), "env"], check=True, capture_output=True, text=True
    ).stdout
    env = {}
    for line in out.splitlines():
        words = shlex.split(line)
        if len(words) == 2 and "=" in words[1]:
            k, _, v = words[1].partition("=")
            env[k] = v
    return env


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tenants", type=int, default=1000)
    ap.add_argument("--setup-threads", type=int, default=16)
    ap.add_argument("--parallel", type=int, default=sync.PARALLEL_READS,
                    help="requests in flight during the sync (default: the sync's own)")
    ap.add_argument(
        "--db",
        default=os.environ.get(
            "YUNGUAN_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
        ),
    )
    args = ap.parse_args()
    sync.PARALLEL_READS = args.parallel
    env = testbed_env()
    prefix = f"ygb{secrets.token_hex(3)}"
    connection = {
        "kind": "openstack",
        "cloud": env["OS_CLOUD"],
        "clouds_yaml": env["OS_CLIENT_CONFIG_FILE"],
        "system_cloud": "testbed-admin-system",
        "quota_model": "db",
        "domain_prefix": prefix,
    }

    admin_db = create_engine(args.db, isolation_level="AUTOCOMMIT")
    name = f"yg_bench_sync_{uuid.uuid4().hex[:8]}"
    with admin_db.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(args.db).set(database=name).render_as_string(hide_password=False)
    engine = make_engine(url)
    factory = make_session_factory(engine)
    cache = ProviderCache(lambda c, k, conn: build_provider(c, k, conn, timeout=60))
    ctx = WorkerContext(factory, cache, _Quiet(), retry=RetryPolicy(base_s=0.2, cap_s=2))
    try:
        upgrade(engine)
        data = yaml.safe_load((REPO / "examples" / "hunan.yaml").read_text(encoding="utf-8"))
        for c in data["clouds"]:
            if c["code"] == CLOUD:
                c["connection"] = connection
        codes = [f"{prefix}-{i:04d}" for i in range(args.tenants)]
        data["projects"] += [{"code": p, "name": p, "department": DEPARTMENT} for p in codes]
        apply_topology(factory, parse_document(data, "bench"), source="bench")
        admin = Actor("bench")
        with UnitOfWork(factory) as uow:
            store = SqlQuotaStore(uow.session)
            for rc in ("vcpu", "memory_mib", "instances", "disk_gib", "floating_ips"):
                service.set_capacity(store, admin, CLOUD, rc, 10**9)
                service.set_grant(store, admin, DEPARTMENT, CLOUD, rc, 10**8)
            uow.commit()
        op_ids = []
        with UnitOfWork(factory) as uow:
            s = uow.session
            cloud_id = s.query(Cloud.id).filter(Cloud.code == CLOUD).scalar()
            nodes = {n.code: n for n in s.query(OrgNode).filter(OrgNode.code.in_(codes))}
            store = SqlQuotaStore(s)
            for code in codes:
                service.set_grant(store, admin, code, CLOUD, "vcpu", 4)
                op = ops.create(
                    s,
                    kind=ops.OpKind.PROVISION,
                    cloud_id=cloud_id,
                    node_id=nodes[code].id,
                    scope_path=nodes[code].path,
                    generation=0,
                    reason="manual",
                )
                op_ids.append(op.id)
            uow.commit()
        started = time.monotonic()
        with ThreadPoolExecutor(args.setup_threads) as pool:
            results = list(pool.map(lambda i: run_operation(ctx, i).status, op_ids))
        failed = sum(r != "succeeded" for r in results)
        print(
            f"setup: {len(op_ids)} tenants provisioned in {time.monotonic() - started:.0f}s "
            f"({failed} failed)"
        )

        provider = cache.get(CLOUD, CloudKind.OPENSTACK, connection)
        with UnitOfWork(factory) as uow:
            sample = _bindings(uow.session, cloud_id)[:20]
        single = []
        for b in sample:
            t0 = time.perf_counter()
            provider.read_quota(b.ref)
            single.append(time.perf_counter() - t0)
        phases = _PhaseLog()
        sync_log = logging.getLogger("yunguan.sync")
        sync_log.addHandler(phases)
        sync_log.setLevel(logging.INFO)
        cpu_before, load_before = cpu_by_service(), os.getloadavg()[0]
        requests.Session.request = _counting  # type: ignore[method-assign]
        t0 = time.monotonic()
        sync_capacity(ctx, CLOUD)
        sync_quotas(ctx, CLOUD)
        seconds = time.monotonic() - t0
        requests.Session.request = _original  # type: ignore[method-assign]
        cpu = cpu_by_service() - cpu_before
        for line in phases.lines:
            print(line)
        print("calls: " + ", ".join(f"{k} {v}" for k, v in _calls.most_common()))
        print(
            f"cpu seconds during the sync ({seconds:.1f} s x {os.cpu_count()} cores; load "
            f"{load_before:.2f} -> {os.getloadavg()[0]:.2f}): "
            + ", ".join(f"{k} {v:.1f}" for k, v in cpu.most_common() if v >= 0.05)
        )
        print(
            f"baseline: one tenant read alone {statistics.median(single) * 1000:.1f} ms "
            f"x {args.tenants} = {statistics.median(single) * args.tenants:.1f}s sequential"
        )
        print(f"tenants={args.tenants} seconds={seconds:.1f} calls={sum(_calls.values())}")
    finally:
        engine.dispose()
        with admin_db.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin_db.dispose()
        # To stderr, so the figure stays the last line of stdout.
        subprocess.run(
            [sys.executable, str(REPO / "bench" / "purge_openstack.py"), prefix],
            check=False,
            stdout=sys.stderr,
        )


if __name__ == "__main__":
    main()
