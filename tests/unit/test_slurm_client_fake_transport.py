"""Error mapping of the Slurm REST client for faults the real service cannot
be made to produce on this machine, through httpx.MockTransport.

Everything slurmrestd itself answers (bad token, empty results, slurmdbd or
slurmctld down, unreachable port) is tested against the real testbed in
tests/contract/slurm; this file covers only what sits *between* us and
slurmrestd or needs a daemon to misbehave on cue: a reverse proxy's 502/429,
a non-JSON 200, a read timeout (stopping the shared daemon is not allowed),
a 403 (slurmrestd answers 401 or 500), a connection that dies during the
disambiguation probe, and a URL scheme httpx cannot speak.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from providers.base import (
    ProviderAuthError,
    ProviderRateLimited,
    ProviderRejected,
    ProviderUnavailable,
)
from providers.slurm.client import API_VERSION, SlurmRestClient
from providers.slurm.errors import SlurmReplyError
from providers.slurm.tokens import StaticToken

TOKEN = "fake.jwt.token"


def fake_client(handler: Callable[[httpx.Request], httpx.Response]) -> SlurmRestClient:
    return SlurmRestClient("http://slurmrestd.fake", "root", StaticToken(TOKEN), cloud="fake",
                           timeout=1, transport=httpx.MockTransport(handler))


def test_fake_proxy_502_is_unavailable() -> None:
    client = fake_client(lambda r: httpx.Response(502, text="<html>Bad Gateway</html>"))
    with pytest.raises(ProviderUnavailable) as info:
        client.slurm("GET", "nodes")
    assert isinstance(info.value.__cause__, SlurmReplyError)
    assert "Bad Gateway" in str(info.value)


def test_fake_proxy_429_is_rate_limited() -> None:
    client = fake_client(lambda r: httpx.Response(429, text="slow down"))
    with pytest.raises(ProviderRateLimited) as info:
        client.slurmdb("GET", "accounts")
    assert info.value.retryable


def test_fake_non_json_200_is_unavailable() -> None:
    client = fake_client(lambda r: httpx.Response(200, text="maintenance page"))
    with pytest.raises(ProviderUnavailable):
        client.slurm("GET", "ping")


def test_fake_read_timeout_is_unavailable_and_chained() -> None:
    def hang(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    with pytest.raises(ProviderUnavailable, match="did not answer") as info:
        fake_client(hang).slurm("GET", "jobs")
    assert isinstance(info.value.__cause__, httpx.ReadTimeout)


def test_fake_403_is_auth() -> None:
    with pytest.raises(ProviderAuthError):
        fake_client(lambda r: httpx.Response(403, text="forbidden")).slurm("GET", "ping")


def test_fake_probe_connection_dies_so_ambiguous_stays_unavailable() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == f"/slurmdb/{API_VERSION}/tres":
            raise httpx.RemoteProtocolError("server disconnected", request=request)
        return httpx.Response(500, json={"errors": [
            {"error_number": -1, "error": "Unspecified error", "source": "slurm_load_jobs"}]})

    with pytest.raises(ProviderUnavailable, match="unreachable too"):
        fake_client(handler).slurm("GET", "jobs")


def test_fake_bad_scheme_is_rejected() -> None:
    client = SlurmRestClient("ftp://slurm.fake", "root", StaticToken(TOKEN), cloud="fake",
                             timeout=1)
    with pytest.raises(ProviderRejected):
        client.slurm("GET", "ping")
