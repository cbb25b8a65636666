"""Bursts of concurrent `POST /v1/requests`, as the API's group commit
(controlplane.db.combine) batches them, on both backends:

- forty filings for three projects under an auto-approval policy, with
  headroom for thirty: every one is filed, exactly thirty are approved at
  filing, the trees stay sound and the audit chain intact;
- one Idempotency-Key sent twice in the same burst: one request, one answer
  for both; the key with another body afterwards: 409;
- good filings mixed with bad ones: each bad one gets its own problem, each
  good one its 201, and nothing of the bad ones is stored.

The requests run concurrently on one event loop (httpx over ASGI) inside the
app's lifespan; the app shares the `world` fixture's container, its users and
tokens (tests/api/conftest.py).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from api.app import create_app
from controlplane.db.idempotency import IdempotencyKey
from controlplane.db.identity_tables import AuditEntry
from controlplane.db.quota_tables import QuotaRequestRow
from controlplane.db.retry import run_in_transaction
from controlplane.db.tables import OrgNode
from controlplane.db.uow import UnitOfWork
from controlplane.identity import audit
from controlplane.identity.roles import Role
from controlplane.quotastore import SqlQuotaStore
from controlplane.topology.apply import apply_topology
from controlplane.topology.document import parse_document
from quotas import service
from tests.api.conftest import World
from tests.db.quota_world import topology

CLOUD = "changsha"  # owned by the prefecture: pool → department → project
HEADROOM = {"cs-data": 15, "cs-health": 15}  # vcpu each department may still hand out
# project -> who files for it (a member of its department)
FILERS = {
    "cs-data-portal": "cs-member",
    "cs-data-burst": "cs-member",
    "cs-health-his": "csh-member",
}
PROBLEM_JSON = "application/problem+json"


@dataclass(frozen=True)
class Filing:
    login: str
    body: dict[str, Any]
    key: str | None = None


def _filing(
    project: str,
    reason: str,
    *,
    delta: int = 1,
    key: str | None = None,
    login: str | None = None,
    cloud: str = CLOUD,
) -> Filing:
    body = {
        "project": project,
        "cloud": cloud,
        "reason": reason,
        "items": [{"resource_class": "vcpu", "delta": delta}],
    }
    return Filing(login or FILERS.get(project, "cs-member"), body, key)


async def _post_all(w: World, filings: Sequence[Filing]) -> list[httpx.Response]:
    app = create_app(w.container)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://yunguan.test") as client:

            def post(f: Filing) -> Any:
                headers = w.headers(f.login)
                if f.key is not None:
                    headers["Idempotency-Key"] = f.key
                return client.post("/v1/requests", json=f.body, headers=headers)

            return list(await asyncio.gather(*(post(f) for f in filings)))


def burst(w: World, filings: Sequence[Filing]) -> list[httpx.Response]:
    """All filings at once; the answers in the filings' order."""
    return asyncio.run(_post_all(w, filings))


def _stored_requests(w: World) -> list[tuple[int, str, str]]:
    """(id, project code, reason) of every request row."""
    with UnitOfWork(w.container.session_factory) as uow:
        rows = uow.session.execute(
            select(QuotaRequestRow.id, OrgNode.code, QuotaRequestRow.reason).join(
                OrgNode, OrgNode.id == QuotaRequestRow.project_id
            )
        ).all()
    return sorted((r[0], r[1], r[2]) for r in rows)


def _invariants(w: World) -> list[str]:
    return run_in_transaction(
        w.container.session_factory,
        lambda s: service.check_invariants(SqlQuotaStore(s), CLOUD),
    )


@pytest.fixture
def quota(world: World) -> World:
    """The sample topology plus a second cs-data project, a member of
    cs-health, the pool, each department's headroom and an auto-approval
    policy covering +1 vcpu."""
    doc = parse_document(topology({"cs-data": ["cs-data-burst"]}), "test.yaml")
    apply_topology(world.container.session_factory, doc, source="test.yaml")
    world.add_user("csh-member", Role.DEPARTMENT_MEMBER, "cs-health", "cs-health")
    setup = [
        (f"/v1/pools/{CLOUD}/vcpu", {"total": 100}),
        *((f"/v1/grants/{CLOUD}/{d}/vcpu", {"amount": n}) for d, n in HEADROOM.items()),
        (f"/v1/auto-approval/{CLOUD}", {"limits": {"vcpu": 4}}),
    ]
    for url, body in setup:
        resp = world.call("cs-admin", "PUT", url, json=body)
        assert resp.status_code == 200, resp.text
    return world


def test_a_burst_is_approved_exactly_as_far_as_the_headroom_goes(quota: World) -> None:
    """Forty +1 vcpu filings, twenty per department, under a policy that covers
    them: all are filed (201, distinct ids), fifteen per department are
    approved at filing, the other ten stay pending; invariants hold and the
    audit chain verifies."""
    projects = ["cs-data-portal", "cs-data-burst", "cs-health-his", "cs-health-his"]
    filings = [_filing(projects[i % 4], f"burst {i}") for i in range(40)]

    answers = burst(quota, filings)

    assert [a.status_code for a in answers] == [201] * 40, [a.text for a in answers]
    bodies = [a.json() for a in answers]
    assert [b["reason"] for b in bodies] == [f.body["reason"] for f in filings]
    assert len({b["id"] for b in bodies}) == 40
    outcome = Counter((b["auto_approved"], b["state"]) for b in bodies)
    assert outcome == {(True, "approved"): 30, (False, "pending"): 10}
    department = {
        "cs-data-portal": "cs-data",
        "cs-data-burst": "cs-data",
        "cs-health-his": "cs-health",
    }
    approved = Counter(department[b["project"]] for b in bodies if b["auto_approved"])
    assert approved == HEADROOM

    assert sorted(r[0] for r in _stored_requests(quota)) == sorted(b["id"] for b in bodies)
    assert _invariants(quota) == []
    tree = quota.call("cs-admin", "GET", f"/v1/grants?cloud={CLOUD}").json()
    allocated = {r["node"]: r["allocated"] for r in tree if r["node"] in HEADROOM}
    assert allocated == HEADROOM
    with UnitOfWork(quota.container.session_factory) as uow:
        verified = audit.verify(uow.session)
        assert verified.ok, verified
        actions = Counter(
            uow.session.scalars(
                select(AuditEntry.action).where(AuditEntry.object_type == "quota_request")
            )
        )
    assert actions == {"quota.request.file": 40, "quota.request.approve": 30}


def test_one_idempotency_key_twice_in_a_burst_files_once(quota: World) -> None:
    """The same key with the same body twice among other filings: one request
    row, and both callers get the same answer (201, the same body). The key
    with another body afterwards is refused."""
    same = _filing("cs-data-portal", "once only", key="dup-1")
    others = [_filing("cs-health-his", f"other {i}", key=f"other-{i}") for i in range(8)]
    filings = [*others[:4], same, *others[4:], same]

    answers = burst(quota, filings)

    assert [a.status_code for a in answers] == [201] * len(filings), [a.text for a in answers]
    first, second = answers[4].json(), answers[-1].json()
    assert first == second
    stored = _stored_requests(quota)
    assert [r for r in stored if r[2] == "once only"] == [
        (first["id"], "cs-data-portal", "once only")
    ]
    assert len(stored) == 1 + len(others)

    reused = quota.call(
        "cs-member",
        "POST",
        "/v1/requests",
        headers={"Idempotency-Key": "dup-1"},
        json={**same.body, "reason": "another body"},
    )
    assert reused.status_code == 409, reused.text
    assert reused.headers["content-type"] == PROBLEM_JSON
    assert reused.json()["code"] == "idempotency.key_reused"
    assert len(_stored_requests(quota)) == len(stored)


def test_bad_filings_in_a_burst_fail_alone_and_leave_nothing(quota: World) -> None:
    """Good filings interleaved with bad ones (an unknown project, another
    department's project, an unknown cloud, a negative delta): each bad one
    gets its own problem answer, each good one its 201; only the good ones
    are stored, with their Idempotency-Keys, and audited."""
    good = [
        _filing(p, f"good {i}", key=f"good-{i}")
        for i, p in enumerate(["cs-data-portal", "cs-health-his"] * 6)
    ]
    bad: list[tuple[Filing, int, str, str]] = []  # filing, status, code, its own name in detail
    for i in range(3):
        bad += [
            (
                _filing(f"no-such-project-{i}", f"bad {i}", key=f"bad-unknown-{i}"),
                404,
                "org.not_found",
                f"no-such-project-{i}",
            ),
            (
                _filing("zz-data-portal", f"bad {i}", key=f"bad-foreign-{i}", login="cs-member"),
                404,
                "org.not_found",
                "zz-data-portal",
            ),
            (
                _filing("cs-data-portal", f"bad {i}", key=f"bad-cloud-{i}", cloud=f"no-cloud-{i}"),
                404,
                "cloud.not_found",
                f"no-cloud-{i}",
            ),
            (
                _filing("cs-health-his", f"bad {i}", key=f"bad-amount-{i}", delta=-(i + 1)),
                422,
                "quota.invalid_amount",
                f"amount {-(i + 1)}",
            ),
        ]
    filings: list[Filing] = []
    for i, f in enumerate(good):  # one bad one after every good one
        filings.append(f)
        if i < len(bad):
            filings.append(bad[i][0])
    filings += [b[0] for b in bad[len(good) :]]

    answers = {f.key: a for f, a in zip(filings, burst(quota, filings), strict=True)}

    for f in good:
        assert answers[f.key].status_code == 201, answers[f.key].text
        assert answers[f.key].json()["reason"] == f.body["reason"]
    for f, status, code, name in bad:
        answer = answers[f.key]
        assert answer.status_code == status, (f, answer.text)
        assert answer.headers["content-type"] == PROBLEM_JSON
        assert answer.json()["code"] == code
        assert name in answer.json()["detail"], answer.json()

    stored = _stored_requests(quota)
    assert sorted(r[0] for r in stored) == sorted(answers[f.key].json()["id"] for f in good)
    assert Counter(r[1] for r in stored) == Counter(f.body["project"] for f in good)
    with UnitOfWork(quota.container.session_factory) as uow:
        keys = set(uow.session.scalars(select(IdempotencyKey.key)))
        filed = Counter(
            uow.session.scalars(
                select(AuditEntry.action).where(AuditEntry.object_type == "quota_request")
            )
        )
        assert audit.verify(uow.session).ok
    assert keys == {f.key for f in good}
    assert filed["quota.request.file"] == len(good)
    assert _invariants(quota) == []
