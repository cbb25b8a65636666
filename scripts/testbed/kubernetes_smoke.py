#!/usr/bin/env python3
"""End-to-end check of the Kubernetes testbed started by kubernetes.sh.

    scripts/testbed/kubernetes.sh up
    eval "$(scripts/testbed/kubernetes.sh env)"
    python3 scripts/testbed/kubernetes_smoke.py

It proves, against the real kube-apiserver, what the Kubernetes adapter's
contract tests rely on: Node objects with capacity/allocatable (there is no
kubelet, so tests create them), ResourceQuota + LimitRange admission, quota
usage computed by kube-controller-manager, and a 403 for a token without
rights. Everything it creates carries a random prefix and is deleted at the
end, also on failure.

Stdlib only (urllib + ssl), so it runs before any project venv exists. TLS is
verified against the testbed CA from the kubeconfig (written as JSON).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import ssl
import sys
import time
import traceback
import urllib.error
import urllib.request
from typing import Any


class Api:
    """A bearer-token client for one kubeconfig context."""

    def __init__(self, kubeconfig: dict[str, Any], context: str, token: str | None = None) -> None:
        ctx = _named(kubeconfig["contexts"], context)["context"]
        cluster = _named(kubeconfig["clusters"], ctx["cluster"])["cluster"]
        self.server = cluster["server"].rstrip("/")
        self.token = token or _named(kubeconfig["users"], ctx["user"])["user"]["token"]
        ca = base64.b64decode(cluster["certificate-authority-data"]).decode()
        self.tls = ssl.create_default_context(cadata=ca)

    def call(
        self, method: str, path: str, body: Any = None, content_type: str = "application/json"
    ) -> tuple[int, dict[str, Any]]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.server + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.token}")
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", content_type)
        try:
            with urllib.request.urlopen(req, context=self.tls, timeout=10) as resp:
                return resp.status, _decode(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, _decode(exc.read())

    def ok(self, method: str, path: str, body: Any = None, **kw: Any) -> dict[str, Any]:
        status, obj = self.call(method, path, body, **kw)
        if status >= 300:
            raise AssertionError(f"{method} {path} -> {status}: {obj.get('message')}")
        return obj


def _decode(raw: bytes) -> dict[str, Any]:
    # Health endpoints (/readyz) answer plain text, the API answers JSON.
    try:
        obj = json.loads(raw or b"{}")
    except ValueError:
        return {"message": raw.decode(errors="replace")}
    return obj if isinstance(obj, dict) else {"value": obj}


def _named(items: list[dict[str, Any]], name: str) -> dict[str, Any]:
    for item in items:
        if item["name"] == name:
            return item
    raise KeyError(f"{name!r} not in kubeconfig")


def wait_for(what: str, probe: Any, timeout: float = 30.0) -> float:
    """Poll probe() until truthy; return the seconds it took."""
    start = time.monotonic()
    while not probe():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)
    return time.monotonic() - start


def check(label: str, cond: bool, detail: Any = "") -> None:
    if not cond:
        raise AssertionError(f"{label}: {detail}")
    print(f"  ok  {label}" + (f" ({detail})" if detail != "" else ""))


def node_body(name: str, arch: str, gpus: int) -> dict[str, Any]:
    resources = {"cpu": "32", "memory": "128Gi", "pods": "110", "nvidia.com/gpu": str(gpus)}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/arch": arch,
                "kubernetes.io/os": "linux",
                "yunguan.test/smoke": "1",
            },
        },
        "status": {"capacity": resources, "allocatable": resources},
    }


def pod_body(name: str, limits: dict[str, str] | None = None) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "main", "image": "registry.invalid/pause:3.2"}
    if limits:
        # Extended resources (nvidia.com/gpu) must have requests == limits;
        # setting only limits makes the apiserver default requests to them.
        container["resources"] = {"limits": limits}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [container]},
    }


def run(admin: Api, norights: Api, bogus: Api, prefix: str) -> None:
    ns, quota = f"{prefix}-tenant", "tenant-quota"
    nodes = [(f"{prefix}-amd64", "amd64", 4), (f"{prefix}-arm64", "arm64", 0)]

    version = admin.ok("GET", "/version")["gitVersion"]
    check("apiserver version", version.startswith("v1.20."), version)

    for name, arch, gpus in nodes:
        admin.ok("POST", "/api/v1/nodes", node_body(name, arch, gpus))
        got = admin.ok("GET", f"/api/v1/nodes/{name}")
        alloc = (got.get("status") or {}).get("allocatable") or {}
        check(
            f"node {name} allocatable kept on create",
            alloc.get("nvidia.com/gpu") == str(gpus) and alloc.get("cpu") == "32",
            alloc,
        )
    listed = admin.ok(
        "GET", "/api/v1/nodes?labelSelector=kubernetes.io/arch%3Darm64,yunguan.test/smoke%3D1"
    )
    check(
        "node label selector by arch",
        [n["metadata"]["name"] for n in listed["items"] or []] == [nodes[1][0]],
    )

    admin.ok(
        "POST",
        "/api/v1/namespaces",
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
    )
    admin.ok(
        "POST",
        f"/api/v1/namespaces/{ns}/limitranges",
        {
            "apiVersion": "v1",
            "kind": "LimitRange",
            "metadata": {"name": "defaults"},
            "spec": {
                "limits": [
                    {
                        "type": "Container",
                        "defaultRequest": {"cpu": "500m", "memory": "256Mi"},
                        "default": {"cpu": "1", "memory": "512Mi"},
                    }
                ]
            },
        },
    )
    hard = {"pods": "2", "requests.nvidia.com/gpu": "1", "requests.cpu": "4"}
    admin.ok(
        "POST",
        f"/api/v1/namespaces/{ns}/resourcequotas",
        {
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": {"name": quota},
            "spec": {"hard": hard},
        },
    )
    quota_path = f"/api/v1/namespaces/{ns}/resourcequotas/{quota}"

    def used() -> dict[str, str]:
        return (admin.ok("GET", quota_path).get("status") or {}).get("used") or {}

    # Quota admission refuses every Pod until the controller has written
    # status.used once ("status unknown for quota"): tests must wait for it.
    took = wait_for("quota status.used", lambda: set(used()) >= set(hard))
    check(
        "controller-manager filled status.used",
        used() == {"pods": "0", "requests.nvidia.com/gpu": "0", "requests.cpu": "0"},
        f"{took:.1f} s",
    )

    pods = f"/api/v1/namespaces/{ns}/pods"
    admin.ok("POST", pods, pod_body("gpu-1", {"cpu": "1", "nvidia.com/gpu": "1"}))
    status, obj = admin.call("POST", pods, pod_body("gpu-2", {"cpu": "1", "nvidia.com/gpu": "1"}))
    check(
        "second GPU pod refused",
        status == 403 and "exceeded quota" in obj.get("message", ""),
        f"{status} {obj.get('message')}",
    )
    plain = admin.ok("POST", pods, pod_body("plain-2"))
    requests = plain["spec"]["containers"][0]["resources"]["requests"]
    check(
        "LimitRange default requests applied",
        requests == {"cpu": "500m", "memory": "256Mi"},
        requests,
    )
    status, obj = admin.call("POST", pods, pod_body("plain-3"))
    check(
        "third pod refused",
        status == 403 and "exceeded quota" in obj.get("message", ""),
        f"{status} {obj.get('message')}",
    )

    want = {"pods": "2", "requests.nvidia.com/gpu": "1", "requests.cpu": "1500m"}
    took = wait_for("quota usage of 2 pods", lambda: used() == want)
    check("status.used counts the admitted pods", True, f"{want} after {took:.1f} s")

    def token_secret() -> bool:
        # Go serializes an empty list as null, hence the `or []`s here and below.
        sas = admin.ok("GET", f"/api/v1/namespaces/{ns}/serviceaccounts")["items"] or []
        return any(sa["metadata"]["name"] == "default" and sa.get("secrets") for sa in sas)

    took = wait_for("default service account token", token_secret)
    check("serviceaccount + token controllers", True, f"{took:.1f} s")

    for method, path, body in [
        ("GET", "/api/v1/namespaces", None),
        ("GET", pods, None),
        ("POST", pods, pod_body("intruder")),
    ]:
        status, obj = norights.call(method, path, body)
        check(f"norights {method} {path} -> 403", status == 403, f"{status} {obj.get('reason')}")
    status, _ = bogus.call("GET", "/api/v1/namespaces")
    check("unknown token -> 401", status == 401, status)

    custom_resource(admin, prefix, ns)


def custom_resource(admin: Api, prefix: str, ns: str) -> None:
    """A custom-resource write is what crashes an apiserver built with the
    vendored reflect2 v1.0.1 under Go >= 1.18; the build swaps in 1.0.2."""
    group = f"{prefix}.yunguan.test"
    admin.ok(
        "POST",
        "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
        {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": f"gpupools.{group}"},
            "spec": {
                "group": group,
                "scope": "Namespaced",
                "names": {"plural": "gpupools", "singular": "gpupool", "kind": "GpuPool"},
                "versions": [
                    {
                        "name": "v1",
                        "served": True,
                        "storage": True,
                        "schema": {
                            "openAPIV3Schema": {
                                "type": "object",
                                "properties": {
                                    "spec": {
                                        "type": "object",
                                        "properties": {"gpus": {"type": "integer", "minimum": 1}},
                                    }
                                },
                            }
                        },
                    }
                ],
            },
        },
    )

    def established() -> bool:
        crd = admin.ok(
            "GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/gpupools.{group}"
        )
        return any(
            c["type"] == "Established" and c["status"] == "True"
            for c in (crd.get("status") or {}).get("conditions") or []
        )

    wait_for("CRD Established", established)
    path = f"/apis/{group}/v1/namespaces/{ns}/gpupools"
    admin.ok(
        "POST",
        path,
        {
            "apiVersion": f"{group}/v1",
            "kind": "GpuPool",
            "metadata": {"name": "pool"},
            "spec": {"gpus": 2},
        },
    )
    got = admin.ok(
        "PATCH", f"{path}/pool", {"spec": {"gpus": 3}}, content_type="application/merge-patch+json"
    )
    status, obj = admin.call(
        "POST",
        path,
        {
            "apiVersion": f"{group}/v1",
            "kind": "GpuPool",
            "metadata": {"name": "bad"},
            "spec": {"gpus": 0},
        },
    )
    message = obj.get("message", "")
    check(
        "custom resource create + merge-patch + schema 422",
        got["spec"]["gpus"] == 3 and status == 422 and "greater than or equal to 1" in message,
        f"{status} {message.split(': ', 1)[-1]}",
    )
    check("apiserver alive after custom-resource writes", admin.call("GET", "/readyz")[0] == 200)


def cleanup(admin: Api, prefix: str) -> None:
    ns = f"{prefix}-tenant"
    for path in (
        f"/api/v1/nodes/{prefix}-amd64",
        f"/api/v1/nodes/{prefix}-arm64",
        f"/api/v1/namespaces/{ns}",
        f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/gpupools.{prefix}.yunguan.test",
    ):
        status, _ = admin.call("DELETE", path)
        if status not in (200, 202, 404):
            print(f"  cleanup: DELETE {path} -> {status}", file=sys.stderr)
    # Namespace deletion is finished by the namespace controller: waiting for
    # the 404 also proves that controller runs.
    took = wait_for(
        f"namespace {ns} to go", lambda: admin.call("GET", f"/api/v1/namespaces/{ns}")[0] == 404, 60
    )
    print(f"  ok  cleanup, namespace finalized in {took:.1f} s")


def main() -> int:
    path = os.environ.get("KUBECONFIG")
    if not path:
        print(
            'KUBECONFIG unset: eval "$(scripts/testbed/kubernetes.sh env)" first', file=sys.stderr
        )
        return 2
    with open(path, encoding="utf-8") as fh:
        kubeconfig = json.load(fh)
    admin = Api(kubeconfig, os.environ.get("YUNGUAN_KUBE_CONTEXT_ADMIN", "testbed-admin"))
    norights = Api(kubeconfig, os.environ.get("YUNGUAN_KUBE_CONTEXT_NORIGHTS", "testbed-norights"))
    bogus = Api(
        kubeconfig,
        os.environ.get("YUNGUAN_KUBE_CONTEXT_NORIGHTS", "testbed-norights"),
        token=secrets.token_hex(24),
    )
    prefix = f"yg-smoke-{secrets.token_hex(3)}"
    start = time.monotonic()
    print(f"kubernetes smoke against {admin.server} (prefix {prefix})")
    failed = False
    try:
        run(admin, norights, bogus, prefix)
    except Exception as exc:  # report anything, then still clean up
        if not isinstance(exc, AssertionError):
            traceback.print_exc()
        print(f"FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
        failed = True
    try:
        cleanup(admin, prefix)
    except Exception as exc:
        print(f"FAILED cleanup: {exc}", file=sys.stderr)
        failed = True
    if failed:
        return 1
    print(f"kubernetes smoke: OK in {time.monotonic() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
