"""An API client over the sample topology, with one user per role in two prefectures.

Department A is `cs-data` (长沙市), department B is `zz-data` (株洲市): every
role exists on both sides, so each route can be called on an own-scope and a
foreign-scope object.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from controlplane.bootstrap import Container
from controlplane.db.uow import UnitOfWork
from controlplane.identity.roles import Role
from controlplane.identity.store import IdentityStore
from controlplane.topology.apply import apply_topology
from controlplane.topology.document import load_document
from tests.conftest import SAMPLE
from tests.secrets_scan import register_secret

# login -> (role, scope, home)
USERS: dict[str, tuple[Role | None, str, str]] = {
    "prov-admin": (Role.PROVINCE_ADMIN, "hunan", "hunan"),
    "cs-admin": (Role.PREFECTURE_ADMIN, "changsha", "changsha"),
    "zz-admin": (Role.PREFECTURE_ADMIN, "zhuzhou", "zhuzhou"),
    "cs-mgr": (Role.DEPARTMENT_MANAGER, "cs-data", "cs-data"),
    "zz-mgr": (Role.DEPARTMENT_MANAGER, "zz-data", "zz-data"),
    "cs-member": (Role.DEPARTMENT_MEMBER, "cs-data", "cs-data"),
    "zz-member": (Role.DEPARTMENT_MEMBER, "zz-data", "zz-data"),
    "cs-ops": (Role.OPS_VIEWER, "changsha", "changsha"),
    "prov-auditor": (Role.AUDITOR, "hunan", "hunan"),
    "cs-auditor": (Role.AUDITOR, "changsha", "changsha"),
    "nobody": (None, "cs-data", "cs-data"),
}


@dataclass
class World:
    client: TestClient
    container: Container
    tokens: dict[str, str] = field(default_factory=dict)

    def headers(self, login: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[login]}"}

    def call(self, login: str | None, method: str, url: str, **kw: Any) -> Any:
        headers = kw.pop("headers", {})
        if login is not None:
            headers = {**self.headers(login), **headers}
        return self.client.request(method, url, headers=headers, **kw)

    def add_user(self, login: str, role: Role | None, scope: str, home: str) -> str:
        with UnitOfWork(self.container.session_factory) as uow:
            store = IdentityStore(uow.session)
            user = store.create_user(login, login, home)
            if role is not None:
                store.bind(user, role, scope)
            issued = store.issue_token(self.container.settings.effective_secret_key, user, "t", 30)
            uow.commit()
        self.tokens[login] = register_secret(issued.plaintext)
        return issued.plaintext


@pytest.fixture
def world(container: Container) -> Iterator[World]:
    apply_topology(container.session_factory, load_document(SAMPLE), source=str(SAMPLE))
    with TestClient(create_app(container), raise_server_exceptions=False) as client:
        w = World(client, container)
        for login, (role, scope, home) in USERS.items():
            w.add_user(login, role, scope, home)
        yield w


@pytest.fixture
def client(world: World) -> TestClient:
    """A client that sends the province admin's token on every request."""
    world.client.headers.update(world.headers("prov-admin"))
    return world.client
