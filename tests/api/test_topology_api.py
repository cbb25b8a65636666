"""The API skeleton: health, clouds, org tree, problem+json errors, OpenAPI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from api.app import create_app
from controlplane.bootstrap import Container
from controlplane.db.engine import make_engine, make_session_factory
from controlplane.settings import Mode, Settings


def assert_problem(resp: Any, status: int, code: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = resp.json()
    assert body["status"] == status
    assert body["code"] == code
    assert body["type"].endswith(code)
    assert body["title"] and body["detail"]
    assert body["request_id"] == resp.headers["x-request-id"]
    return body


def test_healthz_and_readyz(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok", "checks": {}}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "migrations": "ok"}


def test_readyz_is_503_before_migrations(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    engine = make_engine(url)
    container = Container(
        settings=Settings(mode=Mode.DEV, database_url=url),
        engine=engine,
        session_factory=make_session_factory(engine),
    )
    with TestClient(create_app(container)) as c:
        resp = c.get("/readyz")
    engine.dispose()
    assert resp.status_code == 503
    assert resp.json()["checks"]["migrations"].startswith("at None, head is ")


def test_list_clouds(client: TestClient) -> None:
    body = client.get("/v1/clouds").json()
    assert body["total"] == 20
    codes = {c["code"] for c in body["items"]}
    assert {"provincial", "nscc-changsha", "xinchuang", "ai-centre", "changsha", "xiangxi"} <= codes
    xc = next(c for c in body["items"] if c["code"] == "xinchuang")
    assert xc["architectures"] == ["aarch64", "loongarch64"]
    assert xc["connection"] == {"kind": "openstack", "cloud": "xinchuang"}


def test_filters(client: TestClient) -> None:
    assert client.get("/v1/clouds", params={"role": "prefecture"}).json()["total"] == 14
    assert client.get("/v1/clouds", params={"kind": "slurm"}).json()["total"] == 1
    owned = client.get("/v1/clouds", params={"owner": "changsha"}).json()
    assert [c["code"] for c in owned["items"]] == ["changsha"]


def test_bad_filter_is_a_problem(client: TestClient) -> None:
    body = assert_problem(
        client.get("/v1/clouds", params={"kind": "vmware"}), 422, "request.invalid"
    )
    assert body["errors"][0]["where"] == "query.kind"


def test_get_cloud_and_missing_cloud(client: TestClient) -> None:
    assert client.get("/v1/clouds/nscc-changsha").json()["kind"] == "slurm"
    body = assert_problem(client.get("/v1/clouds/wuhan"), 404, "cloud.not_found")
    assert body["detail"] == "no cloud 'wuhan'"


def test_org_tree(client: TestClient) -> None:
    root = client.get("/v1/org").json()
    assert (root["code"], root["level"]) == ("hunan", "province")
    prefectures = [c for c in root["children"] if c["level"] == "prefecture"]
    assert len(prefectures) == 14
    provincial = [c for c in root["children"] if c["level"] == "department"]
    assert "hn-health" in {d["code"] for d in provincial}
    changsha = next(p for p in prefectures if p["code"] == "changsha")
    cs_data = next(d for d in changsha["children"] if d["code"] == "cs-data")
    assert [p["code"] for p in cs_data["children"]] == ["cs-data-portal"]


def test_unknown_route_and_method(client: TestClient) -> None:
    assert_problem(client.get("/v1/nothing"), 404, "route.not_found")
    assert_problem(client.delete("/v1/clouds"), 405, "method.not_allowed")


def test_request_id_is_echoed_only_when_safe(client: TestClient) -> None:
    assert (
        client.get("/healthz", headers={"X-Request-ID": "abc-123"}).headers["x-request-id"]
        == "abc-123"
    )
    evil = client.get("/healthz", headers={"X-Request-ID": "a b<script>"}).headers["x-request-id"]
    assert evil != "a b<script>" and len(evil) == 32


def test_openapi_is_served(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    assert {"/v1/clouds", "/v1/clouds/{code}", "/v1/org", "/healthz", "/readyz"} <= set(
        doc["paths"]
    )
