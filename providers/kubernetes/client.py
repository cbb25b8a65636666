"""The connection to one Kubernetes cluster, built from a kubeconfig file and context.

Built once per `KubernetesProvider` by `connect()`; the other modules of
this package reach the apiserver only through a `KubeClient`. Why each
choice:

- one `ApiClient` per provider, with its own `Configuration`: the client's
  global default configuration is process-wide state, and one control plane
  talks to several clusters (AI centre, Xinchuang and prefecture container
  clouds) with different credentials;
- the kubeconfig is the credential, in the format cluster admins already
  keep; it is read, never written back (`persist_config=False`), and its
  token never reaches a message or a log line;
- every request has a timeout, enforced in the REST layer so that a call
  that forgets `_request_timeout` still cannot hang a worker (urllib3 waits
  forever when given None);
- urllib3 retries only failed *connects* (the request was never sent);
  anything else surfaces at once as a ProviderError and the workers decide,
  by error class, whether and when to retry.
"""

from __future__ import annotations

import os
from contextlib import AbstractContextManager
from pathlib import Path

import urllib3
from kubernetes import config as kube_config
from kubernetes.client import (
    ApiClient,
    AuthorizationV1Api,
    Configuration,
    CoreV1Api,
    VersionApi,
    rest,
)
from kubernetes.config.config_exception import ConfigException

from providers.base import ProviderAuthError
from providers.kubernetes.errors import translated

USER_AGENT = "yunguan-kubernetes-adapter/0.1"
# A dead host should fail fast even when reads are allowed longer (a list of
# thousands of pods on a busy apiserver).
MAX_CONNECT_TIMEOUT_S = 5.0


def resolve_kubeconfig(path: str | None) -> str:
    """The kubeconfig to read: the given path, else $KUBECONFIG, else ~/.kube/config.

    Resolved at call time: the kubernetes package reads $KUBECONFIG once, at
    import, which would pin whatever the environment held then.
    """
    chosen = path or os.environ.get("KUBECONFIG") or "~/.kube/config"
    # $KUBECONFIG may list several files; the client merges them itself.
    return os.pathsep.join(str(Path(p).expanduser()) for p in chosen.split(os.pathsep) if p)


class _TimeoutRESTClient(rest.RESTClientObject):
    """The client's REST layer with a default timeout for every request."""

    def __init__(self, configuration: Configuration, timeout: tuple[float, float]) -> None:
        super().__init__(configuration)
        self._default_timeout = timeout

    def request(  # type: ignore[no-untyped-def]  # mirrors the untyped parent signature
        self,
        method,
        url,
        headers=None,
        body=None,
        post_params=None,
        _request_timeout=None,
    ):
        return super().request(  # type: ignore[no-untyped-call]
            method,
            url,
            headers=headers,
            body=body,
            post_params=post_params,
            _request_timeout=_request_timeout or self._default_timeout,
        )


class KubeClient:
    """Typed API groups of one cluster, plus the error translation for this cloud."""

    def __init__(self, api_client: ApiClient, *, cloud: str, timeout: float) -> None:
        self.api_client = api_client
        self.cloud = cloud
        self.timeout = timeout
        self.core = CoreV1Api(api_client)
        self.version = VersionApi(api_client)
        self.authz = AuthorizationV1Api(api_client)

    @property
    def server(self) -> str:
        return str(self.api_client.configuration.host)

    def errors(self, action: str) -> AbstractContextManager[None]:
        """`with client.errors("read quota"): ...` turns client errors into ProviderErrors."""
        return translated(self.cloud, action)

    def get_text(self, path: str) -> tuple[int, str]:
        """GET a non-resource path (/readyz) with our credentials: (HTTP status, body).

        Never raises for an HTTP status; transport failures raise (inside
        `errors()` they become ProviderUnavailable).
        """
        method, url, headers, body, post = self.api_client.param_serialize(
            method="GET",
            resource_path=path,
            header_params={"Accept": "text/plain"},
            auth_settings=["BearerToken"],
        )
        response = self.api_client.call_api(method, url, headers, body, post)
        data = response.read()  # type: ignore[no-untyped-call]
        return int(response.status), (data or b"").decode("utf-8", "replace")

    def close(self) -> None:
        self.api_client.close()  # type: ignore[no-untyped-call]


def connect(kubeconfig: str | None, context: str, *, cloud: str, timeout: float) -> KubeClient:
    """A KubeClient for `context` of the kubeconfig. Raises ProviderAuthError when the
    file or context is missing or unusable: an admin must fix the reference."""
    path = resolve_kubeconfig(kubeconfig)
    configuration = Configuration()
    configuration.retries = urllib3.Retry(
        total=1, connect=1, read=0, status=0, other=0, redirect=0, raise_on_status=False
    )
    try:
        api_client = kube_config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=path,
            context=context,
            persist_config=False,
            client_configuration=configuration,
        )
    except (ConfigException, OSError, ValueError, KeyError, TypeError) as exc:
        # Messages name the file and the missing key, never a credential.
        raise ProviderAuthError(
            f"kubeconfig {path}, context {context!r}: {exc}", cloud=cloud
        ) from exc
    timeouts = (min(timeout, MAX_CONNECT_TIMEOUT_S), timeout)
    api_client.rest_client = _TimeoutRESTClient(configuration, timeouts)
    api_client.user_agent = USER_AGENT
    return KubeClient(api_client, cloud=cloud, timeout=timeout)
