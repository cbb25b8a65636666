"""What every operation family shares: the REST client, the command runner and the cluster.

Built once per provider by `adapter.SlurmProvider.from_connection`; the
`tenants`, `quotas`, `capacity`, `health` and `inventory` modules take it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from providers.base import ProviderRejected
from providers.slurm.client import SlurmRestClient
from providers.slurm.commands import SlurmCommands


@dataclass
class SlurmSession:
    cloud: str
    rest: SlurmRestClient
    cli: SlurmCommands
    configured_cluster: str | None = None
    _discovered: str | None = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    @property
    def cluster(self) -> str:
        """The Slurm cluster name associations live in.

        From the connection when given; otherwise asked of slurmdbd on first
        use (never at construction: building a provider does no I/O). A
        slurmdbd serving several clusters cannot tell us which one this
        slurmrestd fronts, so then the connection must name it."""
        if self.configured_cluster:
            return self.configured_cluster
        with self._lock:
            if self._discovered is None:
                reply = self.rest.slurmdb("GET", "clusters")
                names = sorted(
                    str(c["name"]) for c in reply.body.get("clusters") or () if c.get("name")
                )
                if len(names) != 1:
                    raise ProviderRejected(
                        f"slurmdbd knows {len(names)} clusters ({', '.join(names) or 'none'}); "
                        "set `cluster` in the connection",
                        cloud=self.cloud,
                    )
                self._discovered = names[0]
            return self._discovered
