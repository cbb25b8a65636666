"""The narrow runner for the two Slurm commands the adapter needs: sacctmgr and scontrol.

Why commands at all: slurmrestd 22.05 cannot change an existing account
association's GrpTRES (five request shapes were tried on the testbed; at best
one in nine applied, and then it replaced the whole TRES list), and it
reports an association's live usage as `null`. `sacctmgr modify account` and
`scontrol show assoc_mgr` do both reliably, so `quotas` uses them and nothing
else does.

Rules: argument lists only, never a shell; only the two tools above; a clean
environment (PATH, LC_ALL=C, SLURM_CONF from the connection) plus the
adapter's JWT in `SLURM_JWT`, so the commands authenticate as the same Slurm
user as the REST calls and the host needs no munge key; a timeout on every
run; output parsed into the port's errors:

    "Protocol authentication error", "Authentication failure", …  → ProviderAuthError
    "Connection refused", "Unable to contact slurm controller", …  → ProviderUnavailable
    timeout                                                        → ProviderUnavailable
    "Nothing modified" (the where-clause matched no association)   → ProviderNotFound
    anything else non-zero                                         → ProviderRejected
"""

from __future__ import annotations

import logging
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from providers.base import (
    ProviderAuthError,
    ProviderError,
    ProviderNotFound,
    ProviderRejected,
    ProviderUnavailable,
)
from providers.slurm.tokens import TokenSource

log = logging.getLogger(__name__)

TOOLS: Final = frozenset({"sacctmgr", "scontrol"})
DEFAULT_SEARCH_PATH: Final = "/usr/local/bin:/usr/bin:/bin"

# Checked in this order: an auth failure makes sacctmgr print confusing
# follow-ups ("Unknown option: GrpTRES=…") that must not decide the verdict.
_AUTH_MARKERS: Final = (
    "Protocol authentication error",
    "Authentication failure",
    "Invalid authentication credential",
    "Munge decode failed",
    "Access/permission denied",
    "doesn't have privilege",
    "Invalid user id",
)
_UNAVAILABLE_MARKERS: Final = (
    "Connection refused",
    "Connection timed out",
    "Socket timed out",
    "No route to host",
    "Unable to contact slurm controller",
    "is DOWN",  # scontrol ping: "Slurmctld(primary) at HOST is DOWN"
    "Zero Bytes were transmitted or received",
    "failed to open persistent connection",
    "Problem talking to the database",
    "Unable to connect to database",
    "Resource temporarily unavailable",
)
_NOT_FOUND_MARKERS: Final = ("Nothing modified",)


def error_for_output(tool: str, output: str, *, cloud: str | None) -> ProviderError:
    """The port error for a failed run of `tool` that printed `output`."""
    # The last few lines that say something (scontrol frames warnings in '*' banners).
    lines = [ln for ln in (raw.strip() for raw in output.splitlines()) if ln and ln[0] != "*"]
    summary = " | ".join(lines[-3:]) or "no output"
    message = f"{tool} failed: {summary}"
    if any(marker in output for marker in _AUTH_MARKERS):
        return ProviderAuthError(message, cloud=cloud)
    if any(marker in output for marker in _UNAVAILABLE_MARKERS):
        return ProviderUnavailable(message, cloud=cloud)
    if any(marker in output for marker in _NOT_FOUND_MARKERS):
        return ProviderNotFound(message, cloud=cloud)
    return ProviderRejected(message, cloud=cloud)


class CommandFailedError(Exception):
    """The raw failed run, kept as the `__cause__` of the ProviderError raised."""


class SlurmCommands:
    """Runs sacctmgr/scontrol against one cluster's slurm.conf."""

    def __init__(
        self,
        *,
        cloud: str,
        timeout: float,
        tokens: TokenSource | None = None,
        slurm_conf: str | None = None,
        search_path: str = DEFAULT_SEARCH_PATH,
    ) -> None:
        self.cloud = cloud
        self._timeout = timeout
        self._tokens = tokens
        self._slurm_conf = slurm_conf
        self._search_path = search_path

    def sacctmgr(self, *args: str) -> str:
        """`sacctmgr --immediate ARGS`: without --immediate a change waits for
        a yes/no on stdin, which we close, and is then discarded."""
        return self.run("sacctmgr", ["--immediate", *args])

    def scontrol(self, *args: str) -> str:
        return self.run("scontrol", list(args))

    def run(self, tool: str, args: Sequence[str]) -> str:
        """stdout of `tool args`, or a ProviderError chained to the failure."""
        if tool not in TOOLS:
            raise ValueError(f"not a Slurm command this adapter runs: {tool!r}")
        for arg in args:
            if "\n" in arg or "\x00" in arg:
                raise ValueError(f"refusing a multi-line argument: {arg!r}")
        argv = [tool, *args]
        env = self._environment()
        started = time.monotonic()
        try:
            done = subprocess.run(  # noqa: S603 - fixed tool name, argument list, no shell
                argv,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=self._timeout,
                env=env,
                check=False,
            )
        except FileNotFoundError as exc:
            raise ProviderRejected(
                f"{tool} not found in {self._search_path} (install the Slurm client tools)",
                cloud=self.cloud,
            ) from exc
        except subprocess.TimeoutExpired as exc:
            raise ProviderUnavailable(
                f"{tool} did not finish within {self._timeout:g} s", cloud=self.cloud
            ) from exc
        elapsed_ms = (time.monotonic() - started) * 1000
        log.debug("%s %s -> rc=%s in %.0f ms", tool, " ".join(args[:3]), done.returncode,
                  elapsed_ms)
        if done.returncode == 0:
            return done.stdout
        output = f"{done.stderr}\n{done.stdout}"
        cause = CommandFailedError(f"{' '.join(argv)} -> rc={done.returncode}: {output.strip()}")
        raise error_for_output(tool, output, cloud=self.cloud) from cause

    def _environment(self) -> dict[str, str]:
        env = {"PATH": self._search_path, "LC_ALL": "C"}
        if self._slurm_conf is not None:
            # Slurm's config parser retries a missing file for 60 s before
            # giving up; a wrong path is a configuration error, say so now.
            if not Path(self._slurm_conf).is_file():
                raise ProviderRejected(
                    f"slurm_conf {self._slurm_conf} does not exist", cloud=self.cloud
                )
            env["SLURM_CONF"] = self._slurm_conf
        if self._tokens is not None:
            env["SLURM_JWT"] = self._tokens.token()
        return env
