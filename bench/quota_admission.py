"""Admission throughput on PostgreSQL against the raw-SQL floor, in the same run.

    .venv/bin/python bench/quota_admission.py --clients 32 --seconds 10 [--db URL]

Creates a throwaway database on the server named by --db (an admin URL;
default $YUNGUAN_TEST_POSTGRES_URL or postgresql+psycopg://postgres@127.0.0.1:5432/postgres),
migrates it and builds a 4-level tree: the provincial cloud's vcpu pool, one
prefecture and one department shared by every client, one project per client.
Then N processes run, alternately:

  admissions  `quotas.service.raise_grant(project, +1 vcpu, draw_from=province)`
              through `run_in_transaction` and `SqlQuotaStore`: the full service
              path — resolve the cloud and the chain, lock pool → prefecture →
              department → project, check, cascade, write 4 rows and an
              outbox row, commit (retry on a lost race).
  raw SQL     the minimal equivalent: one transaction of 4 conditional
              `UPDATE bench_chain SET used = used + 1 WHERE id = :id AND used + 1 <= cap`
              on a 4-row chain (pool, prefecture, department, own project), with psycopg.

Afterwards every invariant of the tree is checked (and the derived sums
against the rows they sum), and the raw chain against its caps. The last line:

    admissions_per_s=<float> raw_sql_per_s=<float> ratio=<float> oversubscribed=<int>

Not a test: it prints a figure. The database is dropped at the end.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import resource
import sys
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bench.proc_stat import process_cpu
from controlplane.db.engine import make_engine, make_session_factory
from controlplane.db.migrate import upgrade
from controlplane.db.retry import run_in_transaction
from controlplane.quotastore import SqlQuotaStore
from controlplane.topology.apply import apply_topology
from controlplane.topology.document import parse_document
from controlplane.vocabulary import YunguanError
from quotas import service
from quotas.model import Actor

DEFAULT_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
HUGE = 10**12
ROUNDS = 2  # raw, ours, raw, ours: drift on a shared machine hits both alike


def topology(clients: int) -> dict[str, Any]:
    return {
        "province": {"code": "hunan", "name": "湖南省"},
        "prefectures": [{"code": "changsha", "name": "长沙市"}],
        "departments": [{"code": "cs-data", "name": "长沙市数据资源管理局", "parent": "changsha"}],
        "projects": [
            {"code": f"bench-{i:03d}", "name": f"bench {i}", "department": "cs-data"}
            for i in range(clients)
        ],
        "clouds": [
            {
                "code": "provincial",
                "name": "湖南省政务云",
                "kind": "openstack",
                "role": "provincial",
                "owner": "hunan",
                "architectures": ["x86_64"],
                "region": "hunan-1",
                "connection": {"kind": "openstack", "cloud": "provincial"},
                "overcommit": {"vcpu": 1.0},
            }
        ],
    }


def setup(url: str, clients: int) -> None:
    engine = make_engine(url)
    upgrade(engine)
    factory = make_session_factory(engine)
    apply_topology(factory, parse_document(topology(clients), "bench"), source="bench")
    run_in_transaction(
        factory,
        lambda s: service.set_capacity(
            SqlQuotaStore(s), Actor("bench"), "provincial", "vcpu", HUGE
        ),
    )
    with engine.begin() as conn:
        conn.execute(
            text("CREATE TABLE bench_chain (id int PRIMARY KEY, used bigint NOT NULL, cap bigint)")
        )
        rows = [{"id": i, "cap": HUGE} for i in (1, 2, 3)]
        rows += [{"id": 100 + i, "cap": HUGE} for i in range(clients)]
        conn.execute(text("INSERT INTO bench_chain VALUES (:id, 0, :cap)"), rows)
    engine.dispose()


def admissions(url: str, client: int, start: Any, seconds: float, out: Any) -> None:
    engine = make_engine(url)
    factory = make_session_factory(engine)
    actor, project = Actor(f"bench-{client}"), f"bench-{client:03d}"

    def admit(session: Any) -> None:
        service.raise_grant(
            SqlQuotaStore(session), actor, project, "provincial", {"vcpu": 1}, draw_from="hunan"
        )

    ok = failed = 0
    run_in_transaction(factory, admit)  # warm up: connect, compile statements (not counted)
    with engine.connect() as conn:  # the pool's one connection: the one the loop uses
        backend = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
    start.wait()
    server0 = backend_cpu_s(backend)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            run_in_transaction(factory, admit)
            ok += 1
        except YunguanError:
            failed += 1
    out.put(("admissions", ok, failed, backend_cpu_s(backend) - server0))
    engine.dispose()


def raw_sql(url: str, client: int, start: Any, seconds: float, out: Any) -> None:
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    chain = (1, 2, 3, 100 + client)
    ok = failed = 0
    with psycopg.connect(dsn) as conn:
        backend = conn.info.backend_pid  # and warm up:
        conn.execute("SELECT 1")
        conn.commit()
        start.wait()
        server0 = backend_cpu_s(backend)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            with conn.cursor() as cur:
                for row_id in chain:
                    cur.execute(
                        "UPDATE bench_chain SET used = used + %s "
                        "WHERE id = %s AND used + %s <= cap",
                        (1, row_id, 1),
                    )
                    if cur.rowcount != 1:
                        conn.rollback()
                        failed += 1
                        break
                else:
                    conn.commit()
                    ok += 1
        server = backend_cpu_s(backend) - server0
    out.put(("raw", ok, failed, server))


def backend_cpu_s(pid: int) -> float:
    """CPU seconds used so far by one PostgreSQL backend, read by the client it
    serves before it disconnects (a backend's CPU is nobody's child: it is
    gone once it exits). 0 when the server is not on this machine."""
    found = process_cpu(pid)
    return found.cpu_s if found is not None and found.command == "postgres" else 0.0


def children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def phase(
    target: Any, url: str, clients: int, seconds: float
) -> tuple[int, int, float, float, float]:
    """(ok, refused, seconds, client CPU s, server CPU s) of one phase; the
    clients' CPU includes their start and warm-up, the same for both kinds."""
    ctx = mp.get_context("fork")
    client0 = children_cpu_s()
    start, out = ctx.Barrier(clients + 1), ctx.Queue()
    procs = [ctx.Process(target=target, args=(url, i, start, seconds, out)) for i in range(clients)]
    for p in procs:
        p.start()
    start.wait()
    began = time.monotonic()
    results = [out.get(timeout=seconds + 120) for _ in procs]
    elapsed = time.monotonic() - began
    for p in procs:
        p.join()
    client, server = children_cpu_s() - client0, sum(r[3] for r in results)
    return sum(r[1] for r in results), sum(r[2] for r in results), elapsed, client, server


def verify(url: str, admitted: int, raw_ok: int) -> int:
    """Count broken invariants; lost updates show up as derived sums that disagree."""
    engine = make_engine(url)
    factory = make_session_factory(engine)
    problems = run_in_transaction(
        factory, lambda s: service.check_invariants(SqlQuotaStore(s), "provincial")
    )
    with engine.connect() as conn:
        granted = conn.execute(
            text(
                "SELECT COALESCE(SUM(g.granted), 0) FROM quota_grants g "
                "JOIN org_nodes n ON n.id = g.node_id WHERE n.level = 'project'"
            )
        ).scalar_one()
        over_cap = conn.execute(
            text("SELECT count(*) FROM bench_chain WHERE used > cap")
        ).scalar_one()
        raw_used = conn.execute(
            text("SELECT COALESCE(SUM(used), 0) FROM bench_chain WHERE id >= 100")
        ).scalar_one()
        stats = conn.execute(
            text(
                "SELECT relname, n_tup_upd, n_tup_hot_upd, pg_relation_size(relid) "
                "FROM pg_stat_user_tables WHERE relname IN ('quota_grants', 'bench_chain')"
            )
        ).all()
    engine.dispose()
    for name, upd, hot, size in stats:
        print(f"{name}: {upd} updates, {hot} HOT, {size // 8192} pages")
    if granted != admitted:
        problems.append(f"projects hold {granted} vcpu but {admitted} admissions succeeded")
    if raw_used != raw_ok:
        problems.append(f"raw projects used {raw_used} but {raw_ok} transactions committed")
    for p in problems:
        print(f"VIOLATION: {p}")
    return len(problems) + int(over_cap)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--db", default=os.environ.get("YUNGUAN_TEST_POSTGRES_URL", DEFAULT_ADMIN))
    args = parser.parse_args()

    name = f"yg_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(args.db, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(args.db).set(database=name).render_as_string(hide_password=False)
    try:
        setup(url, args.clients)
        totals = {"admissions": [0, 0, 0.0], "raw": [0, 0, 0.0]}
        for _ in range(ROUNDS):
            for label, target in (("raw", raw_sql), ("admissions", admissions)):
                ok, failed, elapsed, client, server = phase(
                    target, url, args.clients, args.seconds / ROUNDS
                )
                totals[label][0] += ok
                totals[label][1] += failed
                totals[label][2] += elapsed
                per = 1000 / max(1, ok)
                print(
                    f"{label:>10}: {ok} ok, {failed} refused in {elapsed:.1f} s; CPU per "
                    f"transaction: clients {client * per:.2f} ms, PostgreSQL {server * per:.2f} ms"
                )
        adm_rate = totals["admissions"][0] / totals["admissions"][2]
        raw_rate = totals["raw"][0] / totals["raw"][2]
        warmups = args.clients * ROUNDS  # one uncounted admission per client and round
        oversubscribed = verify(url, int(totals["admissions"][0]) + warmups, int(totals["raw"][0]))
        print(
            f"clients={args.clients} seconds={args.seconds} server={make_url(args.db).host} "
            f"cpus={os.cpu_count()}"
        )
        print(
            f"admissions_per_s={adm_rate:.1f} raw_sql_per_s={raw_rate:.1f} "
            f"ratio={adm_rate / raw_rate:.3f} oversubscribed={oversubscribed}"
        )
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
