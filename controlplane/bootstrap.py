"""The composition root: the one place that builds engines, session factories
and (in later stages) adapters and the worker from settings.

Entry points (CLI commands, the ASGI factory, tests) call `build_container()`;
nothing is built at import time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from celery import Celery
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from controlplane.db.combine import Combiner
from controlplane.db.engine import make_engine, make_session_factory
from controlplane.identity.cache import PrincipalCache
from controlplane.identity.oidc import OidcVerifier
from controlplane.observability.cache import MetricsCache
from controlplane.observability.collector import build_exporter
from controlplane.settings import Settings, get_settings
from controlplane.vocabulary import CloudKind
from controlplane.worker.celery_app import CeleryDispatcher, make_celery
from controlplane.worker.context import Dispatcher, ProviderCache, WorkerContext
from controlplane.worker.embedded import EmbeddedWorker
from controlplane.worker.retry import RetryPolicy
from providers.base import CloudProvider
from providers.registry import build_provider


@dataclass
class Container:
    settings: Settings
    engine: Engine
    session_factory: sessionmaker[Session]
    oidc: OidcVerifier | None = None
    principals: PrincipalCache = field(default_factory=lambda: PrincipalCache(0))
    combiner: Combiner | None = None  # the API's group commit; built if not given

    def __post_init__(self) -> None:
        if self.combiner is None:
            self.combiner = Combiner(self.session_factory)

    def close(self) -> None:
        self.engine.dispose()


def build_container(settings: Settings | None = None) -> Container:
    settings = settings or get_settings()
    engine = make_engine(settings.effective_database_url, pool=settings.database_pool)
    oidc = OidcVerifier(settings.oidc) if settings.oidc.enabled else None
    return Container(
        settings=settings,
        engine=engine,
        session_factory=make_session_factory(engine),
        oidc=oidc,
        principals=PrincipalCache(settings.auth.principal_cache_s),
    )


def worker_context(container: Container, dispatcher: Dispatcher) -> WorkerContext:
    """The context every task body runs with: adapters from the registry, the
    retry and drift policies from settings."""
    w = container.settings.worker

    def factory(code: str, kind: CloudKind, connection: Mapping[str, Any]) -> CloudProvider:
        return build_provider(code, kind, connection, timeout=w.provider_timeout_s)

    return WorkerContext(
        session_factory=container.session_factory,
        providers=ProviderCache(factory),
        dispatcher=dispatcher,
        retry=RetryPolicy(max_attempts_retryable=w.max_attempts, cap_s=w.max_countdown_s),
        drift_policy=w.drift_policy,
        lease=timedelta(seconds=w.effective_lease_s),
    )


def embedded_worker(container: Container) -> EmbeddedWorker:
    """`yunguan up`'s in-process worker (no broker)."""
    return EmbeddedWorker(
        lambda worker: worker_context(container, worker),
        threads=container.settings.worker.embedded_threads,
    )


def celery_app(container: Container) -> Celery:
    """The Celery app of `yunguan worker` / `yunguan beat` (needs YUNGUAN_BROKER_URL)."""
    return make_celery(
        container.settings, lambda app: worker_context(container, CeleryDispatcher(app))
    )


def metrics_exporter(container: Container) -> MetricsCache:
    """The DB exporter (`yunguan exporter`, and /metrics in `yunguan up`)."""
    return build_exporter(container.session_factory, container.settings.metrics)
