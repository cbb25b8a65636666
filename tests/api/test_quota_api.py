"""The quota routes: a request filed, auto-approved or approved, ETags and
Idempotency-Key, and every kind of bad input a clear 4xx with nothing written."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from controlplane.db.identity_tables import AuditEntry
from controlplane.db.outbox import OutboxEvent
from controlplane.db.quota_tables import QuotaGrant, QuotaRequestRow
from controlplane.db.uow import UnitOfWork
from tests.api.conftest import World

CLOUD = "changsha"  # owned by the prefecture: pool → cs-data → cs-data-portal


def _counts(w: World) -> tuple[int, ...]:
    with UnitOfWork(w.container.session_factory) as uow:
        s = uow.session
        return tuple(
            int(s.scalar(select(func.count()).select_from(t)) or 0)
            for t in (QuotaGrant, QuotaRequestRow, OutboxEvent, AuditEntry)
        )


@pytest.fixture
def quota(world: World) -> World:
    for url, body in ((f"/v1/pools/{CLOUD}/vcpu", {"total": 100}),
                      (f"/v1/grants/{CLOUD}/cs-data/vcpu", {"amount": 20}),
                      (f"/v1/grants/{CLOUD}/cs-data-portal/vcpu", {"amount": 4})):
        resp = world.call("cs-admin", "PUT", url, json=body)
        assert resp.status_code == 200, resp.text
    return world


def _file(w: World, who: str = "cs-member", **over: Any) -> Any:
    body = {"project": "cs-data-portal", "cloud": CLOUD, "reason": "扩容",
            "items": [{"resource_class": "vcpu", "delta": 2}], **over}
    return w.call(who, "POST", "/v1/requests", json=body)


def test_file_approve_with_etags(quota: World) -> None:
    filed = _file(quota)
    assert filed.status_code == 201, filed.text
    req = filed.json()
    assert req["state"] == "pending" and filed.headers["etag"] == '"1"'
    stale = quota.call("cs-admin", "POST", f"/v1/requests/{req['id']}/approve", json={},
                       headers={"If-Match": '"9"'})
    assert stale.status_code == 409
    ok = quota.call("cs-admin", "POST", f"/v1/requests/{req['id']}/approve", json={},
                    headers={"If-Match": '"1"'})
    assert ok.status_code == 200, ok.text
    assert ok.json()["state"] == "approved"
    tree = quota.call("cs-member", "GET", f"/v1/grants?cloud={CLOUD}").json()
    project = next(r for r in tree if r["node"] == "cs-data-portal")
    assert project["granted"] == 6
    twice = quota.call("cs-admin", "POST", f"/v1/requests/{req['id']}/approve", json={})
    assert twice.status_code == 409
    assert twice.headers["content-type"] == "application/problem+json"


def test_department_manager_approves_within_the_department(quota: World) -> None:
    req = _file(quota).json()
    ok = quota.call("cs-mgr", "POST", f"/v1/requests/{req['id']}/approve", json={})
    assert ok.status_code == 200, ok.text
    big = _file(quota, items=[{"resource_class": "vcpu", "delta": 50}]).json()
    refused = quota.call("cs-mgr", "POST", f"/v1/requests/{big['id']}/approve", json={})
    assert refused.status_code == 409
    body = refused.json()
    assert body["code"] == "quota.exceeded"
    assert "requested" in str(body) and "free" in str(body)


def test_auto_approval(quota: World) -> None:
    assert quota.call("cs-admin", "PUT", f"/v1/auto-approval/{CLOUD}",
                      json={"limits": {"vcpu": 4}}).status_code == 200
    filed = _file(quota)
    assert filed.status_code == 201
    assert filed.json()["auto_approved"] is True
    assert filed.json()["state"] == "approved"


def test_idempotency_key_replays(quota: World) -> None:
    headers = {"Idempotency-Key": "abc-1"}
    body = {"project": "cs-data-portal", "cloud": CLOUD, "reason": "x",
            "items": [{"resource_class": "vcpu", "delta": 1}]}
    first = quota.call("cs-member", "POST", "/v1/requests", json=body, headers=headers)
    before = _counts(quota)
    again = quota.call("cs-member", "POST", "/v1/requests", json=body, headers=headers)
    assert again.status_code == 201 and again.json()["id"] == first.json()["id"]
    assert _counts(quota) == before
    other = quota.call("cs-member", "POST", "/v1/requests", json={**body, "reason": "y"},
                       headers=headers)
    assert other.status_code == 409 and other.json()["code"] == "idempotency.key_reused"


@pytest.mark.parametrize(
    ("who", "body", "status", "code"),
    [
        ("cs-member", {"items": [{"resource_class": "vcpu", "delta": -3}]}, 422, None),
        ("cs-member", {"items": [{"resource_class": "teraflops", "delta": 1}]}, 422, None),
        ("cs-member", {"items": [{"resource_class": "pods", "delta": 1}]}, 422,
         "quota.unsupported_class"),
        ("cs-member", {"cloud": "wuhan"}, 404, "cloud.not_found"),
        ("cs-member", {"project": "no-such-project"}, 404, None),
        ("zz-member", {}, 404, None),  # another department's project: invisible
    ],
    ids=["negative", "unknown class", "unsupported class", "unknown cloud", "unknown project",
         "another department"],
)
def test_bad_requests_write_nothing(quota: World, who: str, body: dict[str, Any], status: int,
                                    code: str | None) -> None:
    before = _counts(quota)
    resp = _file(quota, who=who, **body)
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    if code:
        assert resp.json()["code"] == code
    assert _counts(quota) == before


def test_malformed_json_and_negative_grant(quota: World) -> None:
    before = _counts(quota)
    bad = quota.call("cs-member", "POST", "/v1/requests", content=b"{not json",
                     headers={"Content-Type": "application/json"})
    assert bad.status_code == 422 and bad.json()["code"] == "request.invalid"
    neg = quota.call("cs-admin", "PUT", f"/v1/grants/{CLOUD}/cs-data/vcpu", json={"amount": -1})
    assert neg.status_code == 422
    over = quota.call("cs-admin", "PUT", f"/v1/grants/{CLOUD}/cs-data/vcpu",
                      json={"amount": 1000})
    assert over.status_code == 409 and over.json()["code"] == "quota.exceeded"
    assert _counts(quota) == before
