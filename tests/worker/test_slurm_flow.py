"""Issue 7 end to end, through Yunguan's normal flow, on the real Slurm testbed.

The `nscc-changsha` cloud of the sample topology (kind slurm, pool owned by
the province) points at the testbed's slurmrestd. Everything goes through the
API with real tokens: an admin declares capacity and grants the prefecture's
and department's envelopes, a department member files a request for the
project, the admin approves it. The worker's code path then runs in-process:
`relay_outbox` turns the committed events into operations, `run_operation`
runs each one (`apply_scope` puts a prefecture's or department's grant on its
parent account, `provision` the project's on its own). Slurm then holds jobs
to those grants by itself: real `sbatch` jobs pend with slurmctld's
`AssocGrp*` reasons, and an approved raise releases them.

Each test gets a prefecture, departments and projects of its own (random
codes, so the parent accounts' limits touch no other run); teardown cancels
its jobs and deletes its accounts, deepest first. The province's account
(`yg-hunan`, no limits) is shared by every run and stays: deleting a Slurm
account deletes the associations of its whole subtree.

PostgreSQL only (`pg_container`): slurmctld schedules in 5 s cycles, so a run
costs tens of seconds; the API and the task bodies are the same on SQLite,
which tests/worker/test_kubernetes_flow.py covers.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator, Mapping
from typing import Literal

import pytest

from controlplane.bootstrap import Container
from controlplane.identity.roles import Role
from providers.slurm.client import SlurmRestClient
from providers.slurm.naming import account_name
from tests.contract.slurm.conftest import (  # noqa: F401 - fixtures used by name
    janitor,
    jobs,
    run_prefix,
    slurm_admin,
    slurm_testbed,
)
from tests.contract.slurm.testbed import (
    Janitor,
    Jobs,
    SlurmTestbed,
    ctld_grp_tres,
    new_code,
    wait_enforced,
    wait_for,
)
from tests.worker.flow import Api
from tests.worker.world import (
    Municipal,
    RecordingDispatcher,
    apply_municipal_world,
    context,
    drain,
    operations,
)

CLOUD = "nscc-changsha"


class SlurmFlow:
    """One test's world: the database, the API, the in-process worker, the cluster."""

    def __init__(
        self, c: Container, tb: SlurmTestbed, rest: SlurmRestClient, stem: str, departments: int
    ) -> None:
        self.c, self.tb, self.rest = c, tb, rest
        connection = {
            "kind": "slurm",
            "url": tb.url,
            "jwt_key_file": tb.jwt_key,
            "user": tb.user,
            "cluster": tb.cluster,
            "slurm_conf": tb.slurm_conf,
        }
        self.world: Municipal = apply_municipal_world(c, CLOUD, connection, stem, departments)
        self.api = Api(
            c,
            [("admin", Role.PROVINCE_ADMIN, "hunan")]
            + [(f"member-{d}", Role.DEPARTMENT_MEMBER, d) for d in self.world.departments],
        )
        self.ctx = context(c, RecordingDispatcher())
        self._seen = 0  # operations already reported by converge()

    # -- through the API ---------------------------------------------------------

    def declare(self, capacity: Mapping[str, int]) -> None:
        for rc, total in capacity.items():
            self.api.call("admin", "PUT", f"/v1/pools/{CLOUD}/{rc}", json={"total": total})

    def grant(self, node: str, amounts: Mapping[str, int]) -> None:
        for rc, n in amounts.items():
            self.api.call("admin", "PUT", f"/v1/grants/{CLOUD}/{node}/{rc}", json={"amount": n})

    def request(
        self, i: int, items: Mapping[str, int], how: Literal["absolute", "delta"] = "absolute"
    ) -> int:
        """The member of department i files for its project; the admin approves."""
        member = f"member-{self.world.departments[i]}"
        return self.api.request_and_approve(
            member, "admin", self.world.projects[i], CLOUD, items, how
        )

    def granted(self, node: str, rc: str) -> int:
        rows = self.api.call(
            "admin", "GET", "/v1/grants", params={"cloud": CLOUD, "resource_class": rc}
        )
        (row,) = [r for r in rows if r["node"] == node]
        return int(row["granted"])

    # -- the worker, in-process ----------------------------------------------------

    def converge(self) -> set[tuple[str, str]]:
        """Relays the outbox and runs every operation it dispatched; all must
        succeed. Returns the (kind, org code) of the operations that ran."""
        statuses = drain(self.ctx)
        ops = operations(self.c)
        assert statuses and set(statuses) == {"succeeded"}, ops
        new, self._seen = ops[self._seen :], len(ops)
        return {(kind, path.strip("/").split("/")[-1]) for _, kind, path, *_ in new}

    # -- the cluster -----------------------------------------------------------------

    def let_root_submit(self, project: str) -> str:
        """Jobs are submitted as root (munge), which needs an association with the
        project's account; Yunguan associates department users only when given."""
        account = account_name(project)
        self.rest.slurmdb(
            "POST",
            "associations",
            body={"associations": [{"account": account, "cluster": self.tb.cluster,
                                    "user": "root"}]},
        )  # fmt: skip

        def known() -> bool:
            out = subprocess.run(
                [self.tb.tool("scontrol"), "-o", "show", "assoc_mgr", f"accounts={account}",
                 "users=root", "flags=assoc"],
                capture_output=True, text=True, env=self.tb.command_env(), timeout=30, check=False,
            ).stdout  # fmt: skip
            return any(
                f"Account={account} " in line and "UserName=root" in line
                for line in out.splitlines()
            )

        wait_for(f"slurmctld to know root on {account}", lambda: known() or None, 20)
        return account


@pytest.fixture
def make_flow(
    pg_container: Container,
    slurm_testbed: SlurmTestbed,
    slurm_admin: SlurmRestClient,
    run_prefix: str,
    janitor: Janitor,
    jobs: Jobs,
) -> Iterator[Callable[[int], SlurmFlow]]:
    stems: list[str] = []

    def make(departments: int) -> SlurmFlow:
        stems.append(new_code(run_prefix, "w"))
        return SlurmFlow(pg_container, slurm_testbed, slurm_admin, stems[-1], departments)

    try:
        yield make
    finally:
        jobs.cancel_all()  # before the accounts: an account with live jobs cannot go
        for stem in stems:
            janitor.sweep(account_name(stem))  # every account under the stem, deepest first


def test_project_grant_holds_jobs_and_an_approved_raise_releases_them(
    make_flow: Callable[[int], SlurmFlow], jobs: Jobs, slurm_testbed: SlurmTestbed
) -> None:
    f = make_flow(1)
    pref, (dept,), (project,) = f.world.prefecture, f.world.departments, f.world.projects
    f.declare({"hpc_cpu": 64, "hpc_gpu": 8})
    f.grant(pref, {"hpc_cpu": 8, "hpc_gpu": 4})
    # The department's envelope is exactly the first request, so the raise below
    # must lift it too (the approval draws on the prefecture's headroom).
    f.grant(dept, {"hpc_cpu": 2, "hpc_gpu": 1})
    request_id = f.request(0, {"hpc_cpu": 2, "hpc_gpu": 1})

    ran = f.converge()
    assert ran == {("apply_scope", pref), ("apply_scope", dept), ("provision", project)}
    assert f.api.call("admin", "GET", f"/v1/requests/{request_id}")["state"] == "applied"
    account = account_name(project)
    wait_enforced(slurm_testbed, account_name(pref), {"cpu": "8", "gres/gpu": "4"})
    wait_enforced(slurm_testbed, account_name(dept), {"cpu": "2", "gres/gpu": "1"})
    wait_enforced(slurm_testbed, account, {"cpu": "2", "gres/gpu": "1"})

    f.let_root_submit(project)
    too_many_cpus = jobs.submit(account, cpus=3)
    too_many_gpus = jobs.submit(account, cpus=1, gpus=2)
    fits = jobs.submit(account, cpus=1, gpus=1)
    jobs.wait_running(fits, timeout=60)
    assert jobs.wait_pending_on(too_many_cpus, "GrpCpuLimit") == "AssocGrpCpuLimit"
    assert jobs.wait_pending_on(too_many_gpus, "GrpGRES") == "AssocGrpGRES"

    # A second request, +2 CPUs, approved: the project and its department rise to 4.
    raise_id = f.request(0, {"hpc_cpu": 2}, how="delta")
    assert (f.granted(project, "hpc_cpu"), f.granted(dept, "hpc_cpu")) == (4, 4)
    # The approval lifted the department's grant too: its account follows.
    assert {("provision", project), ("apply_scope", dept)} <= f.converge()
    assert f.api.call("admin", "GET", f"/v1/requests/{raise_id}")["state"] == "applied"
    wait_enforced(slurm_testbed, account, {"cpu": "4", "gres/gpu": "1"})
    wait_enforced(slurm_testbed, account_name(dept), {"cpu": "4", "gres/gpu": "1"})
    jobs.wait_running(too_many_cpus, timeout=60)
    # The GPU grant did not change: that job is still held by a limit.
    state, reason = jobs.state(too_many_gpus)
    assert state == "PENDING" and reason.startswith("AssocGrp"), reason
    assert jobs.state(fits)[0] == "RUNNING"


def test_prefecture_grant_caps_its_departments_together(
    make_flow: Callable[[int], SlurmFlow], jobs: Jobs, slurm_testbed: SlurmTestbed
) -> None:
    """Yunguan's ledger keeps every level's grants within its parent's, so the
    prefecture's account limit binds where usage outlives grants: lowering a grant
    never stops a running job (Slurm only holds new ones). The prefecture's CPUs
    move from one department to another while the first one's job still runs;
    a job that fits the second project and its department pends on the
    prefecture until the prefecture's grant is raised."""
    f = make_flow(2)
    pref, (d1, d2), (p1, p2) = f.world.prefecture, f.world.departments, f.world.projects
    f.declare({"hpc_cpu": 64})
    f.grant(pref, {"hpc_cpu": 2})
    f.grant(d1, {"hpc_cpu": 2})
    f.request(0, {"hpc_cpu": 2})
    assert f.converge() == {("apply_scope", pref), ("apply_scope", d1), ("provision", p1)}
    wait_enforced(slurm_testbed, account_name(pref), {"cpu": "2"})
    first = jobs.submit(f.let_root_submit(p1), cpus=2)
    jobs.wait_running(first, timeout=60)

    # The prefecture's two CPUs go to the second department's project.
    f.grant(p1, {"hpc_cpu": 0})
    f.grant(d1, {"hpc_cpu": 0})
    f.request(1, {"hpc_cpu": 1})
    assert {("provision", p1), ("apply_scope", d1), ("provision", p2)} <= f.converge()
    assert (f.granted(pref, "hpc_cpu"), f.granted(d2, "hpc_cpu")) == (2, 1)
    account = f.let_root_submit(p2)
    wait_enforced(slurm_testbed, account, {"cpu": "1"})
    wait_enforced(slurm_testbed, account_name(d2), {"cpu": "1"})  # lifted by the approval
    wait_enforced(slurm_testbed, account_name(p1), {"cpu": "0"})

    # 1 CPU fits the project (1) and its department (1), not the prefecture:
    # 2 in use under it by the first department's job, + 1 > 2.
    second = jobs.submit(account, cpus=1)
    assert "GrpCpuLimit" in jobs.wait_pending_on(second, "GrpCpuLimit")
    assert jobs.state(first)[0] == "RUNNING"
    assert ctld_grp_tres(slurm_testbed, account_name(pref))["cpu"] == "2"

    # Raising the prefecture's envelope (a top-level grant) releases it.
    f.grant(pref, {"hpc_cpu": 3})
    assert f.converge() == {("apply_scope", pref)}
    wait_enforced(slurm_testbed, account_name(pref), {"cpu": "3"})
    jobs.wait_running(second, timeout=60)
