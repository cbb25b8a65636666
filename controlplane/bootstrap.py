"""The composition root: the one place that builds engines, session factories
and (in later stages) adapters and the worker from settings.

Entry points (CLI commands, the ASGI factory, tests) call `build_container()`;
nothing is built at import time.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from controlplane.db.engine import make_engine, make_session_factory
from controlplane.identity.oidc import OidcVerifier
from controlplane.settings import Settings, get_settings


@dataclass
class Container:
    settings: Settings
    engine: Engine
    session_factory: sessionmaker[Session]
    oidc: OidcVerifier | None = None

    def close(self) -> None:
        self.engine.dispose()


def build_container(settings: Settings | None = None) -> Container:
    settings = settings or get_settings()
    engine = make_engine(settings.effective_database_url)
    oidc = OidcVerifier(settings.oidc) if settings.oidc.enabled else None
    return Container(
        settings=settings, engine=engine, session_factory=make_session_factory(engine), oidc=oidc
    )
