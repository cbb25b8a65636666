"""Request-scoped dependencies: the container and a unit of work per request."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request

from controlplane.bootstrap import Container
from controlplane.db.uow import UnitOfWork


async def get_container(request: Request) -> Container:
    # A coroutine: FastAPI runs sync dependencies in the thread pool.
    container: Container = request.app.state.container
    return container


def get_uow(container: Annotated[Container, Depends(get_container)]) -> Iterator[UnitOfWork]:
    with UnitOfWork(container.session_factory) as uow:
        yield uow


UoW = Annotated[UnitOfWork, Depends(get_uow)]


def get_secret_key(container: Annotated[Container, Depends(get_container)]) -> str:
    return container.settings.effective_secret_key


SecretKey = Annotated[str, Depends(get_secret_key)]
