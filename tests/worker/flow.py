"""The API side of an end-to-end flow: the real app behind a TestClient, users
with real tokens bound to roles, requests filed by a department member and
approved by an admin, exactly as people do it."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from fastapi.testclient import TestClient

from api.app import create_app
from controlplane.bootstrap import Container
from controlplane.db.uow import UnitOfWork
from controlplane.identity.roles import Role
from controlplane.identity.store import IdentityStore
from tests.secrets_scan import register_secret


class Api:
    """`users`: (login, role, scope code) triples, each bound and given a token."""

    def __init__(self, c: Container, users: Iterable[tuple[str, Role, str]]) -> None:
        self.client = TestClient(create_app(c), raise_server_exceptions=False)
        self.tokens: dict[str, str] = {}
        with UnitOfWork(c.session_factory) as uow:
            ids = IdentityStore(uow.session)
            for login, role, scope in users:
                user = ids.create_user(login, login, scope)
                ids.bind(user, role, scope)
                token = ids.issue_token(c.settings.effective_secret_key, user, "t", 1).plaintext
                self.tokens[login] = register_secret(token)
            uow.commit()

    def call(self, who: str, method: str, url: str, **kw: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.tokens[who]}", **kw.pop("headers", {})}
        resp = self.client.request(method, url, headers=headers, **kw)
        assert resp.status_code < 400, f"{method} {url} as {who}: {resp.status_code} {resp.text}"
        return resp.json()

    def request_and_approve(
        self,
        filer: str,
        approver: str,
        project: str,
        cloud: str,
        items: Mapping[str, int],
        how: Literal["absolute", "delta"] = "absolute",
    ) -> int:
        """`filer` files a request for `project` on `cloud`, `approver` approves it;
        returns the request id."""
        body = {
            "project": project,
            "cloud": cloud,
            "reason": "上云",
            "items": [{"resource_class": k, how: v} for k, v in items.items()],
        }
        req = self.call(
            filer, "POST", "/v1/requests", json=body, headers={"Idempotency-Key": uuid.uuid4().hex}
        )
        approved = self.call(approver, "POST", f"/v1/requests/{req['id']}/approve", json={})
        assert approved["state"] == "approved", approved
        return int(req["id"])
