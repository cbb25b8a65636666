"""The DB exporter's prometheus_client Collector, and the exporter built around it.

`DbCollector.collect()` reads the latest state in one read-only transaction
(REPEATABLE READ on PostgreSQL, so every series comes from one snapshot) and
never calls a provider: a scrape costs the same whether a cloud is fast, slow
or down (the openstack-exporter lesson). `build_exporter` wraps it in a
`MetricsCache`, so it runs once per change, not once per scrape.

Built by `controlplane.bootstrap.metrics_exporter`; served by
`controlplane.observability.server` (`yunguan exporter`) and by the API's
/metrics in `yunguan up`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime

from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector
from sqlalchemy.orm import Session, sessionmaker

from controlplane.db.uow import UnitOfWork
from controlplane.observability import families as f
from controlplane.observability.activity import activity_metrics
from controlplane.observability.cache import MetricsCache
from controlplane.observability.capacity import capacity_metrics
from controlplane.observability.fingerprint import DbFingerprint
from controlplane.observability.ledger import ledger_metrics
from controlplane.observability.places import Places
from controlplane.settings import MetricsSettings


def utc_today() -> date:
    return datetime.now(UTC).date()


class DbCollector(Collector):
    def __init__(
        self,
        session_factory: sessionmaker[Session],
        *,
        projects: bool = True,
        today: Callable[[], date] = utc_today,
    ) -> None:
        self._factory = session_factory
        self._projects = projects
        self._today = today
        self.renders = 0

    def collect(self) -> Iterator[Metric]:
        started, at = time.monotonic(), time.time()
        with UnitOfWork(self._factory) as uow:  # read-only: never committed
            session = uow.session
            if session.get_bind().dialect.name == "postgresql":
                session.connection(execution_options={"isolation_level": "REPEATABLE READ"})
            places = Places.read(session)
            metrics = [
                *capacity_metrics(session, places, projects=self._projects),
                *activity_metrics(session, places),
                *ledger_metrics(session, places, self._today()),
            ]
        self.renders += 1
        renders, stamp, duration = (
            f.EXPORTER_RENDERS.new(),
            f.EXPORTER_RENDER_TIME.new(),
            f.EXPORTER_READ_DURATION.new(),
        )
        renders.add((), self.renders)
        stamp.add((), at)
        duration.add((), time.monotonic() - started)
        yield renders.metric
        yield stamp.metric
        yield duration.metric
        yield from metrics


def build_exporter(
    session_factory: sessionmaker[Session],
    settings: MetricsSettings,
    *,
    today: Callable[[], date] = utc_today,
) -> MetricsCache:
    """The DB exposition, rendered when the database changed (checked at most
    every `check_interval_s`) or when it is `max_age_s` old, else served cached."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DbCollector(session_factory, projects=settings.project_series, today=today))
    return MetricsCache(
        lambda: generate_latest(registry),
        DbFingerprint(session_factory, today),
        check_interval_s=settings.check_interval_s,
        max_age_s=settings.max_age_s,
    )
