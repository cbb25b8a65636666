#!/usr/bin/env python3
"""End-to-end smoke test of the observability testbed (stdlib only).

It proves that observability.sh gives tests what they need:

1. ``observability.sh up`` (idempotent) and ``env`` for the URLs and promtool;
2. a tiny exporter with one gauge (``yunguan_smoke_value``) on a free 127.0.0.1 port;
3. a rule file with an alert on that gauge, checked with promtool;
4. ``OBS_SCRAPE_TARGETS=... OBS_RULE_FILES=... observability.sh reload``;
5. the gauge is scraped, the alert fires and reaches Alertmanager's /api/v2/alerts,
   then the gauge drops and the alert resolves (it leaves /api/v2/alerts).

Afterwards the previous prometheus.yml is put back and reloaded, so the servers keep
running as they were. Prints the time each step took; exit status 0 on success.

    python3 scripts/testbed/observability_smoke.py [--timeout SECONDS]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent / "observability.sh"
METRIC = "yunguan_smoke_value"
ALERT = "YunguanSmokeValueHigh"
THRESHOLD = 40

RULES = """\
groups:
  - name: yunguan-smoke
    rules:
      - alert: {alert}
        expr: {metric} > {threshold}
        for: 2s
        labels:
          severity: page
          smoke_run: "{run_id}"
        annotations:
          summary: "{metric} is {{{{ $value }}}} on {{{{ $labels.instance }}}}"
"""


class Gauge:
    """One float behind a lock: set by the test thread, read by the HTTP handler."""

    def __init__(self, value: float) -> None:
        self._lock = threading.Lock()
        self._value = value

    def set(self, value: float) -> None:
        with self._lock:
            self._value = value

    def get(self) -> float:
        with self._lock:
            return self._value


def exposition(value: float) -> bytes:
    return (
        f"# HELP {METRIC} Value set by the observability smoke test.\n"
        f"# TYPE {METRIC} gauge\n"
        f"{METRIC} {value}\n"
    ).encode()


def start_exporter(gauge: Gauge) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?", 1)[0] != "/metrics":
                self.send_error(404)
                return
            body = exposition(gauge.get())
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:  # scrapes every 2 s: keep quiet
            pass

    # Port 0: the kernel picks a free port, so parallel runs never collide.
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def run_script(*args: str, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        [str(SCRIPT), *args], env=env, stdout=subprocess.PIPE, stderr=sys.stderr, text=True
    )
    if proc.returncode != 0:
        raise SystemExit(f"observability.sh {' '.join(args)} failed with rc {proc.returncode}")
    return proc.stdout


def parse_env(text: str) -> dict[str, str]:
    """Reads the `export K=V` lines that `observability.sh env` prints."""
    out = {}
    for line in text.splitlines():
        words = shlex.split(line)
        if len(words) == 2 and words[0] == "export" and "=" in words[1]:
            key, _, value = words[1].partition("=")
            out[key] = value
    return out


def get_json(url: str) -> object:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.load(resp)


def post(url: str) -> None:
    req = urllib.request.Request(url, data=b"", method="POST")
    with urllib.request.urlopen(req, timeout=10) as resp:
        resp.read()


def wait_for(what: str, check, timeout: float, interval: float = 0.1):
    """Polls check() until it returns something truthy; the first scrape after a
    reload lags ~5 s (Prometheus applies target updates on a 5 s tick), so a
    fixed sleep would be either flaky or slow."""
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except OSError as exc:  # URLError, connection refused, timeouts
            last_error = exc
        time.sleep(interval)
    raise SystemExit(f"timed out after {timeout:.0f}s waiting for {what} (last error: {last_error})")


def expect(condition: bool, detail: object) -> None:
    # Not `assert`: the check must also run under python -O.
    if not condition:
        raise SystemExit(f"unexpected alert: {detail!r}")


class Timer:
    def __init__(self) -> None:
        self.start = self.mark = time.monotonic()

    def step(self, label: str) -> None:
        now = time.monotonic()
        print(f"  {label:<52} {now - self.mark:6.2f}s", flush=True)
        self.mark = now


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=30.0, help="per-step timeout (s)")
    opts = parser.parse_args()

    timer = Timer()
    print("observability smoke test")
    run_script("up")
    timer.step("observability.sh up")

    env = parse_env(run_script("env"))
    prom, am, promtool = env["PROMETHEUS_URL"], env["ALERTMANAGER_URL"], env["PROMTOOL"]
    prom_config = Path(env["PROMETHEUS_CONFIG"])
    saved_config = prom_config.read_text()

    gauge = Gauge(10)
    exporter = start_exporter(gauge)
    target = f"127.0.0.1:{exporter.server_address[1]}"
    run_id = f"{os.getpid()}-{int(time.time())}"

    with tempfile.TemporaryDirectory(prefix="yunguan-obs-smoke-") as tmp:
        try:
            rules = Path(tmp, "smoke.rules.yml")
            rules.write_text(
                RULES.format(alert=ALERT, metric=METRIC, threshold=THRESHOLD, run_id=run_id)
            )
            subprocess.run([promtool, "check", "rules", str(rules)], check=True,
                           stdout=subprocess.DEVNULL)
            # promtool also lints what the exporter serves.
            subprocess.run([promtool, "check", "metrics"], input=exposition(10), check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            timer.step("promtool check rules + check metrics")

            reload_env = dict(os.environ, OBS_SCRAPE_TARGETS=target,
                              OBS_RULE_FILES=str(Path(tmp, "*.rules.yml")))
            run_script("reload", env=reload_env)
            timer.step(f"observability.sh reload (target {target})")

            query = urllib.parse.urlencode({"query": f'{METRIC}{{instance="{target}"}}'})

            def scraped_value():
                data = get_json(f"{prom}/api/v1/query?{query}")["data"]["result"]
                return data and data[0]["value"][1]

            wait_for("the first scrape", lambda: scraped_value() == "10", opts.timeout)
            timer.step("gauge=10 readable through PromQL")

            def rule_loaded():
                groups = get_json(f"{prom}/api/v1/rules")["data"]["groups"]
                return any(r["name"] == ALERT and r["health"] == "ok"
                           for g in groups for r in g["rules"])

            wait_for("the alert rule to load", rule_loaded, opts.timeout)

            am_query = urllib.parse.urlencode(
                [("filter", f'alertname="{ALERT}"'), ("filter", f'smoke_run="{run_id}"')]
            )

            def am_alerts():
                return get_json(f"{am}/api/v2/alerts?{am_query}")

            gauge.set(50)
            alerts = wait_for(
                "the alert in Alertmanager",
                lambda: [a for a in am_alerts() if a["status"]["state"] == "active"],
                opts.timeout,
            )
            timer.step("gauge=50 -> alert active in /api/v2/alerts")
            alert = alerts[0]
            expect(alert["labels"].get("severity") == "page", alert)
            expect(alert["labels"].get("instance") == target, alert)
            expect(alert["annotations"].get("summary") == f"{METRIC} is 50 on {target}", alert)

            gauge.set(5)
            # Alertmanager drops resolved alerts (endsAt in the past) from /api/v2/alerts.
            wait_for("the alert to resolve", lambda: am_alerts() == [], opts.timeout)
            timer.step("gauge=5 -> alert resolved (gone from /api/v2/alerts)")
        finally:
            # Put the previous config back, as a test that rewrites the file would.
            prom_config.write_text(saved_config)
            post(f"{prom}/-/reload")
            exporter.shutdown()
            exporter.server_close()
    timer.step("previous prometheus.yml restored + POST /-/reload")
    print(f"  {'total':<52} {time.monotonic() - timer.start:6.2f}s")
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
