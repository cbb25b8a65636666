"""Scrape cost of `yunguan exporter` against prometheus_client rendering the same series.

    .venv/bin/python bench/metrics_scrape.py --clouds 16 --projects 2000 --classes 8 [--db URL]

Seeds a throwaway database (an SQLite file by default; `--db` names a
PostgreSQL admin URL to create one on) with `bench/metrics_seed.py`: 14
prefecture clouds and the rest owned by the province, the projects spread
over 34 departments, each project holding grants (and observed usage) on the
province's clouds and its own prefecture's, in `--classes` resource classes,
plus syncs, observations, operations, requests and a migration ledger.

Then, in the same run:

  scrape    `yunguan exporter --check-interval 0` in a subprocess: every scrape runs
            the change check (one statement) and, nothing having changed, sends
            the cached gzip — GET /metrics over HTTP with `Accept-Encoding: gzip`,
            as Prometheus does it; the median of `--scrapes` scrapes.
  baseline  `prometheus_client.generate_latest` over a plain CollectorRegistry
            holding the same series as gauges (same names, label names and
            values, parsed from the exporter's output): what rendering on every
            scrape costs at the least; the median of 5 renders.

It also prints the cost of a scrape that finds a change (a grant is touched
first), i.e. a full read and render. The last line:

    series=<int> scrape_ms=<float> baseline_ms=<float> ratio=<float>

Not a test: it prints a figure. The database is removed at the end.
"""

from __future__ import annotations

import argparse
import gzip
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, select, text, update
from sqlalchemy.engine import make_url

from bench.metrics_seed import Seeder
from controlplane.db.engine import make_engine
from controlplane.db.migrate import upgrade
from controlplane.db.quota_tables import QuotaGrant

YUNGUAN = str(Path(sys.executable).with_name("yunguan"))


# -- the database ---------------------------------------------------------------


@contextmanager
def database(admin_url: str | None) -> Iterator[str]:
    if admin_url is None:
        with tempfile.TemporaryDirectory(prefix="yunguan-bench-") as tmp:
            yield f"sqlite:///{tmp}/bench.db"
        return
    name = f"yg_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# -- measuring ----------------------------------------------------------------


def scrape(url: str) -> tuple[float, bytes]:
    req = urllib.request.Request(url, headers={"Accept-Encoding": "gzip"})
    started = time.perf_counter()
    with urllib.request.urlopen(req, timeout=120) as resp:
        body = resp.read()
    return (time.perf_counter() - started) * 1000, body


def baseline_registry(exposition: str) -> tuple[CollectorRegistry, int]:
    """The same series as plain gauges: names, label names and values as scraped
    (every family of the exporter has one sample name and one set of label names)."""
    registry = CollectorRegistry(auto_describe=False)
    n = 0
    for family in text_string_to_metric_families(exposition):
        if not family.samples:
            continue
        first = family.samples[0]
        names = tuple(first.labels)
        gauge = Gauge(first.name, family.documentation, names, registry=registry)
        for s in family.samples:
            (gauge.labels(**s.labels) if names else gauge).set(s.value)
            n += 1
    return registry, n


def median_ms(fn: Any, runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clouds", type=int, default=16)
    parser.add_argument("--projects", type=int, default=2000)
    parser.add_argument("--classes", type=int, default=8, choices=range(1, 11))
    parser.add_argument("--scrapes", type=int, default=30)
    parser.add_argument("--db", help="a PostgreSQL admin URL (default: an SQLite file)")
    args = parser.parse_args()

    with database(args.db) as url:
        engine = make_engine(url)
        upgrade(engine)
        t0 = time.perf_counter()
        seeder = Seeder(engine, args.clouds, args.projects, args.classes)
        seeder.run()
        print(
            f"seeded {engine.url.get_backend_name()}: {len(seeder.cloud_rows)} clouds, "
            f"{len(seeder.projects)} projects, {len(seeder.classes)} classes, "
            f"{seeder.n_grants} grant rows, {seeder.n_usage} usage rows "
            f"in {time.perf_counter() - t0:.1f} s",
            flush=True,
        )
        env = {**os.environ, "YUNGUAN_DATABASE_URL": url, "YUNGUAN_MODE": "production"}
        with tempfile.TemporaryFile() as log:
            proc = subprocess.Popen(
                [YUNGUAN, "exporter", "--port", "0", "--check-interval", "0"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
            try:
                target = wait_for_exporter(proc, log)
                _, body = scrape(target)  # warm: connection pool, statement cache
                text_body = gzip.decompress(body).decode()
                scrape_ms = statistics.median(scrape(target)[0] for _ in range(args.scrapes))
                with engine.begin() as conn:  # a change: the next scrape renders
                    first = conn.execute(select(QuotaGrant.id).limit(1)).scalar_one()
                    conn.execute(
                        update(QuotaGrant)
                        .where(QuotaGrant.id == first)
                        .values(generation=QuotaGrant.generation + 1, updated_at=datetime.now(UTC))
                    )
                render_ms, _ = scrape(target)
            finally:
                proc.terminate()
                proc.wait(timeout=30)
        engine.dispose()

    registry, series = baseline_registry(text_body)
    generate_latest(registry)  # warm
    baseline_ms = median_ms(lambda: generate_latest(registry), 5)
    lines = sum(1 for line in text_body.splitlines() if line and not line.startswith("#"))
    assert lines == series, (lines, series)
    print(f"exposition: {len(text_body) / 1e6:.1f} MB text, {len(body) / 1e6:.2f} MB gzip")
    print(f"scrape after a change (read + render + gzip): {render_ms:.1f} ms")
    print(
        f"series={series} scrape_ms={scrape_ms:.1f} baseline_ms={baseline_ms:.1f} "
        f"ratio={scrape_ms / baseline_ms:.3f}"
    )
    return 0


def wait_for_exporter(proc: subprocess.Popen[bytes], log: Any) -> str:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log.seek(0)
            raise SystemExit(f"yunguan exporter exited: {log.read().decode()}")
        log.seek(0)
        m = re.search(rb"http://([0-9.]+:\d+)/metrics", log.read())
        if m:
            return f"http://{m.group(1).decode()}/metrics"
        time.sleep(0.1)
    raise SystemExit("yunguan exporter did not start in 300 s")


if __name__ == "__main__":
    sys.exit(main())
