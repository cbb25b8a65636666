"""Configuration: environment (`YUNGUAN_*`, nested with `__`), an optional YAML file, defaults.

Precedence, highest first: explicit arguments, environment, the file named by
`YUNGUAN_CONFIG_FILE`, defaults. Built by `get_settings()` when asked, never at
import. Secrets have no default outside dev mode: `check_production_ready()`
refuses to start a production process with a missing or dev secret.
"""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from controlplane.vocabulary import InvalidInputError

# Public on purpose: dev mode uses it, production refuses it.
DEV_SECRET_KEY = "yunguan-dev-insecure-secret-key-do-not-use-in-production"  # noqa: S105


class Mode(StrEnum):
    DEV = "dev"
    PRODUCTION = "production"


def _default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "yunguan"


class ApiSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    workers: int = Field(default=1, ge=1)
    # Requests served at once per process (the thread pool running the route
    # bodies). Mutations wait in the group commit (controlplane.db.combine),
    # which batches what is waiting: enough threads for a full batch, not so
    # many that they fight over the GIL (bench/quota_http.py: 16 per process
    # at 32 connections doubled the throughput of 8).
    threads: int = Field(default=16, ge=1, le=200)
    # Trusted reverse proxies whose X-Forwarded-For is believed (audit source address).
    forwarded_allow_ips: str = "127.0.0.1"


class PoolSettings(BaseModel):
    """Connections per process to PostgreSQL (SQLite ignores this).

    Small on purpose: every quota admission locks the same few ancestor rows,
    so more concurrent transactions per process only queue on those row locks
    while their threads fight for the GIL, which stretches the time each lock
    is held. Waiting for a pooled connection is cheaper and fairer
    (bench/quota_http.py: p99 halved going from 30 to 4 connections at the
    same throughput)."""

    size: int = Field(default=4, ge=1, le=200)
    max_overflow: int = Field(default=4, ge=0, le=200)
    timeout_s: float = Field(default=30.0, gt=0, description="wait for a free connection")


class AuthSettings(BaseModel):
    # Seconds an API process answers a bearer from memory after resolving it;
    # a revoked token keeps working that long (0 = look up every request).
    principal_cache_s: float = Field(default=5.0, ge=0, le=300)


class OidcSettings(BaseModel):
    """Government single sign-on: JWT bearer tokens checked against a JWKS file."""

    enabled: bool = False
    jwks_file: Path | None = None
    issuer: str | None = None
    audience: str | None = None
    algorithms: list[str] = Field(default_factory=lambda: ["RS256", "ES256"])
    login_claim: str = "preferred_username"
    name_claim: str = "name"
    # A list of "role@scope" strings, e.g. ["prefecture-admin@changsha"].
    roles_claim: str = "yunguan_roles"
    leeway_seconds: int = Field(default=30, ge=0, le=300)


class WorkerSettings(BaseModel):
    """Celery workers and the in-process pool of `yunguan up`."""

    task_hard_time_limit_s: int = Field(default=300, ge=10)
    task_soft_time_limit_s: int = Field(default=270, ge=5)
    max_countdown_s: float = Field(default=120.0, gt=0, description="retry backoff cap")
    max_attempts: int = Field(default=8, ge=1, description="for retryable provider errors")
    drift_policy: Literal["correct", "report"] = "correct"
    embedded_threads: int = Field(default=4, ge=1, le=64)
    provider_timeout_s: float = Field(default=15.0, gt=0)
    lease_s: int | None = Field(
        default=None, ge=1, description="default: the hard time limit + 30 s"
    )

    @property
    def effective_lease_s(self) -> int:
        """Longer than any live attempt, so only a dead worker's lease runs out."""
        return self.lease_s or self.task_hard_time_limit_s + 30


class MetricsSettings(BaseModel):
    """The Prometheus exporter (`yunguan exporter`, and /metrics in `yunguan up`)."""

    host: str = "127.0.0.1"
    port: int = Field(default=9464, ge=0, le=65535)
    # Projects × clouds × classes series (×2: granted and used); off for a very
    # large province where per-department series are enough.
    project_series: bool = True
    check_interval_s: float = Field(
        default=5.0, ge=0, description="how often a scrape may look for DB changes"
    )
    max_age_s: float = Field(
        default=300.0, gt=0, description="re-render at least this often, changed or not"
    )


class LogSettings(BaseModel):
    level: str = "INFO"
    json_format: bool = False


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="YUNGUAN_",
        env_nested_delimiter="__",
        extra="forbid",
    )

    mode: Mode = Mode.PRODUCTION
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; the embedded SQLite file when absent in dev"
    )
    data_dir: Path = Field(default_factory=_default_data_dir)
    database_pool: PoolSettings = Field(default_factory=PoolSettings)
    secret_key: SecretStr | None = None
    broker_url: str | None = None
    topology_file: Path | None = None
    api: ApiSettings = Field(default_factory=ApiSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    oidc: OidcSettings = Field(default_factory=OidcSettings)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    log: LogSettings = Field(default_factory=LogSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get("YUNGUAN_CONFIG_FILE")
        if config_file:
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=config_file))
        return tuple(sources)

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'yunguan.db'}"

    @property
    def effective_secret_key(self) -> str:
        if self.secret_key is not None:
            return self.secret_key.get_secret_value()
        if self.mode is Mode.DEV:
            return DEV_SECRET_KEY
        raise InvalidInputError(
            "YUNGUAN_SECRET_KEY is not set (only dev mode has a default)", code="config.invalid"
        )

    def check_production_ready(self) -> None:
        """Refuses insecure defaults before a long-running production process starts."""
        if self.mode is Mode.DEV:
            return
        secret = self.secret_key.get_secret_value() if self.secret_key else None
        if not secret or secret == DEV_SECRET_KEY:
            raise InvalidInputError(
                "refusing to start in production mode: YUNGUAN_SECRET_KEY is unset or the "
                "dev default; set a random value of at least 32 characters "
                "(or YUNGUAN_MODE=dev for a local trial)",
                code="config.insecure",
            )
        if len(secret) < 32:
            raise InvalidInputError(
                "refusing to start in production mode: YUNGUAN_SECRET_KEY is shorter than "
                "32 characters",
                code="config.insecure",
            )
        if not self.database_url:
            raise InvalidInputError(
                "refusing to start in production mode: YUNGUAN_DATABASE_URL is not set",
                code="config.invalid",
            )


def get_settings(**overrides: Any) -> Settings:
    """Builds settings from the environment (and the config file), with overrides on top."""
    from pydantic import ValidationError

    try:
        return Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InvalidInputError(
            f"invalid configuration: {where}: {first['msg']}", code="config.invalid"
        ) from exc
