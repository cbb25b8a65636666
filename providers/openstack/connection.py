"""One OpenStack cloud's connection settings and its lazily opened SDK sessions.

`ConnectionSettings.parse` reads Yunguan's connection reference (never a
secret: credentials stay in the clouds.yaml entry it names)::

    {kind: openstack, cloud: ENTRY, clouds_yaml: PATH?,   # the entry and its file
     system_cloud: ENTRY?,          # a system-scoped entry: Keystone accepts limit
                                    # writes only from one (unified limits)
     quota_model: db|unified?,      # skip detection (see quotas.py)
     domain_prefix: yg?}            # Keystone domains are "<prefix>-<scope>"

`CloudSession` opens the openstacksdk Connection on first use, not when the
adapter is built, so registering twenty clouds costs nothing and a broken one
fails only its own calls. Every request carries `api_timeout` (keystoneauth's
session timeout, which also covers authentication and version discovery), so
one slow cloud cannot hold a worker that serves another. All traffic goes
through `CloudSession.call`: JSON in, JSON out, errors translated.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from openstack import config as os_config
from openstack import connection as os_connection
from openstack import exceptions as sdk_exc

from providers.base import ProviderAuthError, ProviderError, ProviderUnavailable
from providers.openstack.errors import translated

DEFAULT_DOMAIN_PREFIX = "yg"
KNOWN_KEYS = frozenset(
    {"kind", "cloud", "clouds_yaml", "system_cloud", "quota_model", "domain_prefix"}
)


class QuotaModel(StrEnum):
    """Where a cloud keeps Nova's quota: Nova's own tables or Keystone's /v3/limits."""

    DB = "db"
    UNIFIED = "unified"


class Service(StrEnum):
    """Catalog services the adapter talks to; values are openstacksdk proxy names."""

    IDENTITY = "identity"
    COMPUTE = "compute"
    PLACEMENT = "placement"
    VOLUME = "block_storage"
    NETWORK = "network"
    IMAGE = "image"


@dataclass(frozen=True)
class ConnectionSettings:
    cloud: str  # Yunguan's cloud code
    entry: str
    clouds_yaml: str | None
    system_entry: str | None
    quota_model: QuotaModel | None
    domain_prefix: str
    timeout: float

    @classmethod
    def parse(cls, cloud: str, connection: Mapping[str, Any], timeout: float) -> ConnectionSettings:
        def bad(why: str) -> ProviderAuthError:
            return ProviderAuthError(f"connection reference: {why}", cloud=cloud)

        if connection.get("kind", "openstack") != "openstack":
            raise bad(f"kind is {connection.get('kind')!r}, not 'openstack'")
        unknown = sorted(set(connection) - KNOWN_KEYS)
        if unknown:
            raise bad(f"unknown keys {', '.join(unknown)}")
        entry = connection.get("cloud")
        if not isinstance(entry, str) or not entry:
            raise bad("'cloud' must name a clouds.yaml entry")
        model = connection.get("quota_model")
        if model is not None and model not in {m.value for m in QuotaModel}:
            raise bad(f"quota_model must be 'db' or 'unified', not {model!r}")
        if timeout <= 0:
            raise bad("timeout must be positive")
        return cls(
            cloud=cloud,
            entry=entry,
            clouds_yaml=_optional_str(connection, "clouds_yaml", bad),
            system_entry=_optional_str(connection, "system_cloud", bad),
            quota_model=QuotaModel(model) if model is not None else None,
            domain_prefix=_optional_str(connection, "domain_prefix", bad) or DEFAULT_DOMAIN_PREFIX,
            timeout=timeout,
        )


def _optional_str(
    connection: Mapping[str, Any], key: str, bad: Callable[[str], ProviderAuthError]
) -> str | None:
    value = connection.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise bad(f"{key!r} must be a non-empty string")
    return value


class CloudSession:
    """The SDK connections of one cloud (project scope, and system scope when
    configured), opened on first use and reused; `call` is the only way out."""

    def __init__(self, settings: ConnectionSettings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._connections: dict[str, os_connection.Connection] = {}

    @property
    def cloud(self) -> str:
        return self.settings.cloud

    def call(
        self,
        service: Service,
        method: str,
        path: str,
        *,
        action: str,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        microversion: str | None = None,
        system: bool = False,
        forbidden: type[ProviderError] = ProviderAuthError,
    ) -> Any:
        """One request; returns the decoded JSON body (None when empty).

        `system=True` sends it with the system-scoped entry (Keystone limits).
        """
        conn = self._connection(system=system)
        with translated(self.cloud, action, forbidden=forbidden):
            adapter = getattr(conn, service.value)
            kwargs: dict[str, Any] = {"params": dict(params or {})}
            if json is not None:
                kwargs["json"] = json
            if microversion is not None:
                kwargs["microversion"] = microversion
            response = adapter.request(path, method, **kwargs)
            sdk_exc.raise_from_response(response)
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError as exc:  # a proxy's HTML page, a truncated body: try again later
            raise ProviderUnavailable(
                f"{action}: the answer is not JSON (HTTP {response.status_code})", cloud=self.cloud
            ) from exc

    def token(self) -> None:
        """Authenticates (or reuses a valid token): the cheapest proof of Keystone."""
        conn = self._connection(system=False)
        with translated(self.cloud, "authenticate"):
            conn.session.get_token()

    def region(self) -> str | None:
        """The region this entry's compute service lives in (Keystone limits are per region)."""
        conn = self._connection(system=False)
        region: str | None = conn.config.get_region_name("compute") or None
        return region

    def _connection(self, *, system: bool) -> os_connection.Connection:
        entry = self.settings.entry
        if system:
            if self.settings.system_entry is None:
                raise ProviderAuthError(
                    "Keystone unified limits need a system-scoped clouds.yaml entry: "
                    "set 'system_cloud' in the cloud's connection",
                    cloud=self.cloud,
                )
            entry = self.settings.system_entry
        with self._lock:
            conn = self._connections.get(entry)
            if conn is None:
                conn = self._open(entry)
                self._connections[entry] = conn
            return conn

    def _open(self, entry: str) -> os_connection.Connection:
        # Credentials come only from the named file and entry: OS_* variables
        # in a worker's environment must never change who we act as (an
        # OS_PASSWORD would otherwise be merged in). The file itself may still
        # be chosen by OS_CLIENT_CONFIG_FILE when the reference names none.
        files = [self.settings.clouds_yaml] if self.settings.clouds_yaml else None
        if files is None and os.environ.get("OS_CLIENT_CONFIG_FILE"):
            files = [os.environ["OS_CLIENT_CONFIG_FILE"]]
        with translated(self.cloud, f"load clouds.yaml entry {entry!r}"):
            config = os_config.OpenStackConfig(
                config_files=files,
                secure_files=[] if files else None,
                load_envvars=False,
            )
            region = config.get_one(
                cloud=entry,
                api_timeout=self.settings.timeout,
                # Glance's default of 5 retries with back-off would hold a
                # worker ~15 s on a failing image service; the workers retry.
                image_status_code_retries=0,
            )
            return os_connection.Connection(config=region)
