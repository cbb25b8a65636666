from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from controlplane.bootstrap import Container
from controlplane.topology.apply import apply_topology
from controlplane.topology.document import load_document
from tests.conftest import SAMPLE


@pytest.fixture
def client(container: Container) -> Iterator[TestClient]:
    apply_topology(container.session_factory, load_document(SAMPLE), source=str(SAMPLE))
    with TestClient(create_app(container), raise_server_exceptions=False) as c:
        yield c
