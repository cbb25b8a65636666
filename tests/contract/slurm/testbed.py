"""Test-side helpers for the real Slurm testbed (scripts/testbed/slurm.sh).

What the adapter must never do but a test must: submit and cancel jobs as
root (sbatch/scancel with munge), watch job states and slurmctld's cached
limits, and delete the throwaway accounts and users a test created.
Everything a test creates carries the session's random prefix.
"""

from __future__ import annotations

import os
import secrets
import shlex
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from providers.base import ProviderError
from providers.slurm.client import SlurmRestClient, data_unchanged, nothing_found
from providers.slurm.tokens import KeyFileTokens

REPO = Path(__file__).resolve().parents[3]
SCRIPT = REPO / "scripts" / "testbed" / "slurm.sh"
T = TypeVar("T")


@dataclass(frozen=True)
class SlurmTestbed:
    env: Mapping[str, str]

    @property
    def url(self) -> str:
        return self.env["SLURMRESTD_URL"]

    @property
    def jwt_key(self) -> str:
        return self.env["SLURM_JWT_KEY"]

    @property
    def slurm_conf(self) -> str:
        return self.env["SLURM_CONF"]

    @property
    def user(self) -> str:
        return self.env["SLURM_USER"]

    @property
    def cluster(self) -> str:
        return self.env["SLURM_CLUSTER"]

    def connection(self, **overrides: Any) -> dict[str, Any]:
        conn: dict[str, Any] = {
            "kind": "slurm",
            "url": self.url,
            "jwt_key_file": self.jwt_key,
            "user": self.user,
            "slurm_conf": self.slurm_conf,
        }
        conn.update(overrides)
        return conn

    def tool(self, name: str) -> str:
        return self.env.get(f"SLURM_{name.upper()}", f"/usr/bin/{name}")

    def command_env(self) -> dict[str, str]:
        """Slurm commands of the tests authenticate with munge, as root."""
        env = {k: v for k, v in os.environ.items() if k != "SLURM_JWT"}
        env["SLURM_CONF"] = self.slurm_conf
        return env


def new_code(run_prefix: str, what: str = "p") -> str:
    """A fresh org code under the session's prefix."""
    return f"{run_prefix}-{what}{secrets.token_hex(3)}"


def bring_up() -> SlurmTestbed:
    """`slurm.sh up` (idempotent, ~1 s when running), then its `env`. A testbed
    that cannot start fails the session: a skip would hide a broken testbed."""
    up = subprocess.run(["bash", str(SCRIPT), "up"], capture_output=True, text=True,
                        timeout=600, check=False)
    if up.returncode != 0:
        pytest.fail(f"Slurm testbed did not come up (rc={up.returncode}):\n{up.stderr[-3000:]}",
                    pytrace=False)
    out = subprocess.run(["bash", str(SCRIPT), "env"], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    env: dict[str, str] = {}
    for line in out.splitlines():
        words = shlex.split(line)
        if len(words) == 2 and words[0] == "export" and "=" in words[1]:
            key, _, value = words[1].partition("=")
            env[key] = value
    return SlurmTestbed(env)


def admin_client(tb: SlurmTestbed) -> SlurmRestClient:
    tokens = KeyFileTokens(tb.jwt_key, tb.user, cloud="testbed")
    return SlurmRestClient(tb.url, tb.user, tokens, cloud="testbed", timeout=30)


def wait_for(what: str, probe: Callable[[], T | None], timeout: float, step: float = 0.25) -> T:
    """Polls until `probe` returns something truthy; fails naming `what` and
    the last value otherwise. Generous bounds, never a timing assertion."""
    deadline = time.monotonic() + timeout
    last: T | None = None
    while True:
        last = probe()
        if last:
            return last
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what} (last: {last!r})",
                        pytrace=False)
        time.sleep(step)


class Jobs:
    """sbatch/scancel for one test; every job is cancelled in teardown."""

    def __init__(self, tb: SlurmTestbed, rest: SlurmRestClient, prefix: str) -> None:
        self._tb, self._rest, self._prefix = tb, rest, prefix
        self.ids: list[str] = []

    def submit(self, account: str, *, cpus: int, gpus: int = 0) -> str:
        argv = [self._tb.tool("sbatch"), "--parsable", f"--account={account}",
                f"--cpus-per-task={cpus}", "--mem-per-cpu=256", f"--job-name=yg-{self._prefix}",
                "--output=/dev/null", "--chdir=/tmp", "--time=5"]
        if gpus:
            argv.append(f"--gres=gpu:{gpus}")
        done = subprocess.run([*argv, "--wrap", "sleep 300"], capture_output=True, text=True,
                              env=self._tb.command_env(), timeout=30, check=False)
        assert done.returncode == 0, done.stderr
        job_id = done.stdout.strip().split(";")[0]
        self.ids.append(job_id)
        return job_id

    def state(self, job_id: str) -> tuple[str, str]:
        jobs = self._rest.slurm("GET", f"job/{job_id}").body.get("jobs") or [{}]
        return str(jobs[0].get("job_state")), str(jobs[0].get("state_reason"))

    def wait_running(self, job_id: str, timeout: float = 30) -> None:
        wait_for(f"job {job_id} RUNNING",
                 lambda: self.state(job_id)[0] == "RUNNING" or None, timeout)

    def wait_pending_on(self, job_id: str, reason_part: str, timeout: float = 30) -> str:
        def probe() -> str | None:
            state, reason = self.state(job_id)
            return reason if state == "PENDING" and reason_part in reason else None
        return wait_for(f"job {job_id} PENDING on *{reason_part}*", probe, timeout)

    def cancel_all(self) -> None:
        if not self.ids:
            return
        subprocess.run([self._tb.tool("scancel"), *self.ids], env=self._tb.command_env(),
                       capture_output=True, timeout=30, check=False)

        def settled() -> bool:
            return all(self.state(j)[0] not in ("RUNNING", "COMPLETING", "PENDING")
                       for j in self.ids)
        wait_for("cancelled jobs to finish", lambda: settled() or None, 30)


def ctld_grp_tres(tb: SlurmTestbed, account: str) -> dict[str, str]:
    """GrpTRES limits slurmctld enforces right now for the account ({} if not cached)."""
    out = subprocess.run([tb.tool("scontrol"), "-o", "show", "assoc_mgr", f"accounts={account}",
                          "flags=assoc"], capture_output=True, text=True,
                         env=tb.command_env(), timeout=30, check=False).stdout
    for line in out.splitlines():
        fields = dict(p.partition("=")[::2] for p in line.split(" ") if "=" in p)
        if fields.get("Account") == account and not fields.get("UserName"):
            items = fields.get("GrpTRES", "").split(",")
            return {k: v.split("(")[0] for k, _, v in (i.partition("=") for i in items)}
    return {}


def wait_enforced(
    tb: SlurmTestbed, account: str, limits: Mapping[str, str], timeout: float = 20
) -> None:
    """Association changes reach slurmctld asynchronously (~1 s here)."""
    def probe() -> bool | None:
        seen = ctld_grp_tres(tb, account)
        return all(seen.get(k) == v for k, v in limits.items()) or None
    wait_for(f"slurmctld to enforce {dict(limits)} on {account}", probe, timeout)


class Janitor:
    """Removes what a test created. Only tests delete Slurm accounts."""

    def __init__(self, rest: SlurmRestClient, cluster: str) -> None:
        self._rest, self._cluster = rest, cluster

    def delete_users(self, users: Iterable[str]) -> None:
        for user in users:
            self._rest.slurmdb("DELETE", f"user/{user}", tolerate=data_unchanged)

    def delete_account(self, name: str, timeout: float = 30) -> None:
        """Retries: an account whose jobs are still completing cannot go yet."""
        def gone() -> bool | None:
            try:
                self._rest.slurmdb("DELETE", f"account/{name}", tolerate=data_unchanged)
            except ProviderError:
                return None
            reply = self._rest.slurmdb("GET", f"account/{name}", tolerate=nothing_found)
            return reply.empty or None
        wait_for(f"account {name} to be deleted", gone, timeout, step=0.5)

    def sweep(self, account_prefix: str) -> None:
        """Deletes every account whose name starts with the prefix, deepest first."""
        reply = self._rest.slurmdb("GET", "associations", params={"cluster": self._cluster},
                                   tolerate=nothing_found)
        parents = {str(a["account"]): a.get("parent_account") for a in
                   reply.body.get("associations") or () if not a.get("user")}

        def depth(name: str) -> int:
            d, cur = 0, parents.get(name)
            while cur and d < 20:
                d, cur = d + 1, parents.get(str(cur))
            return d
        mine = [n for n in parents if n.startswith(account_prefix)]
        for name in sorted(mine, key=depth, reverse=True):
            self.delete_account(name)
