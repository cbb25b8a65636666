"""Optional OIDC: JWTs from a JWKS file map to a user and to roles from a claim."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient
from jwt.algorithms import RSAAlgorithm

from api.app import create_app
from controlplane.bootstrap import Container
from controlplane.identity.oidc import OidcVerifier
from controlplane.settings import OidcSettings
from controlplane.topology.apply import apply_topology
from controlplane.topology.document import load_document
from tests.conftest import SAMPLE
from tests.secrets_scan import register_secret

ISSUER = "https://sso.hunan.gov.cn/realms/gov"


@pytest.fixture
def keys() -> tuple[rsa.RSAPrivateKey, rsa.RSAPrivateKey]:
    return (
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
    )


@pytest.fixture
def sso(container: Container, keys: Any, tmp_path: Path) -> Iterator[TestClient]:
    good, _ = keys
    jwk = json.loads(RSAAlgorithm.to_jwk(good.public_key()))
    jwk.update(kid="k1", use="sig", alg="RS256")
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [jwk]}), encoding="utf-8")
    cfg = OidcSettings(enabled=True, jwks_file=jwks, issuer=ISSUER, audience="yunguan")
    container.oidc = OidcVerifier(cfg)
    apply_topology(container.session_factory, load_document(SAMPLE), source="s")
    with TestClient(create_app(container), raise_server_exceptions=False) as c:
        yield c


def _token(key: Any, **claims: Any) -> str:
    now = int(time.time())
    body = {
        "iss": ISSUER,
        "aud": "yunguan",
        "iat": now,
        "exp": now + 300,
        "preferred_username": "zhang.san",
        "name": "张三",
        "yunguan_roles": ["department-member@cs-data", "wizard@hunan", "prefecture-admin@nowhere"],
    }
    body.update(claims)
    return register_secret(jwt.encode(body, key, algorithm="RS256", headers={"kid": "k1"}))


def test_sso_token_maps_to_user_and_roles(sso: TestClient, keys: Any) -> None:
    token = _token(keys[0])
    me = sso.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200, me.text
    assert me.json() == {
        "login": "zhang.san",
        "via": "oidc",
        "roles": [{"role": "department-member", "scope": "cs-data"}],
    }
    clouds = sso.get("/v1/clouds", headers={"Authorization": f"Bearer {token}"}).json()
    assert "zhuzhou" not in {c["code"] for c in clouds["items"]}


@pytest.mark.parametrize(
    ("claims", "signer", "code"),
    [
        ({"exp": int(time.time()) - 3600}, 0, "auth.expired"),
        ({}, 1, "auth.invalid"),
        ({"aud": "someone-else"}, 0, "auth.invalid"),
        ({"iss": "https://evil.example"}, 0, "auth.invalid"),
    ],
    ids=["expired", "wrong key", "wrong audience", "wrong issuer"],
)
def test_bad_sso_tokens(
    sso: TestClient, keys: Any, claims: dict[str, Any], signer: int, code: str
) -> None:
    resp = sso.get("/v1/me", headers={"Authorization": f"Bearer {_token(keys[signer], **claims)}"})
    assert resp.status_code == 401
    assert resp.json()["code"] == code


def test_garbage_bearer_with_oidc_on(sso: TestClient) -> None:
    resp = sso.get("/v1/me", headers={"Authorization": "Bearer not.a.jwt"})
    assert resp.status_code == 401
    assert resp.json()["code"] == "auth.malformed"
