"""The chart installed on a real kube-apiserver (the 1.20 testbed): install, upgrade, refusals.

The testbed has no scheduler, kubelet or job controller, so pods never run
and helm is used without --wait. Helm still waits for its hook Jobs, so
`JobController` plays the job controller: it marks each new Job Complete (or
Failed, when a test asks) — and records, at that moment, what the Job could
see: its ServiceAccount, ConfigMaps and Secrets, and the Deployments' images.
That is how the tests prove the hook order (the migration runs before any
Deployment exists or changes, with every input already in place).

Tests in this module run in file order against one release in a throwaway
namespace; teardown uninstalls it and deletes the namespace (and the two
Prometheus Operator CRDs, if this module created them).
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
import yaml
from kubernetes.client import ApiClient, ApiextensionsV1Api, BatchV1Api, CoreV1Api
from kubernetes.client.exceptions import ApiException

from tests.helm.chart import CHART, WORKER_QUEUES, Helm, production_args
from tests.secrets_scan import register_secret

RUN = f"yh{secrets.token_hex(3)}"
NAMESPACE = f"yg-helm-{RUN}"
RELEASE = RUN
FULL = f"{RUN}-yunguan"
TIMEOUT = ["--timeout", "120s"]

PLURALS = {
    "Deployment": "deployments",
    "Service": "services",
    "ServiceAccount": "serviceaccounts",
    "ConfigMap": "configmaps",
    "Secret": "secrets",
    "Job": "jobs",
    "HorizontalPodAutoscaler": "horizontalpodautoscalers",
    "PodDisruptionBudget": "poddisruptionbudgets",
    "NetworkPolicy": "networkpolicies",
    "ServiceMonitor": "servicemonitors",
    "PrometheusRule": "prometheusrules",
}
CRDS = {"servicemonitors": "ServiceMonitor", "prometheusrules": "PrometheusRule"}


def get_object(
    api: ApiClient, api_version: str, kind: str, name: str, namespace: str = NAMESPACE
) -> dict[str, Any]:
    """GET one object at exactly this API version (a 404 raises ApiException)."""
    base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    method, url, headers, _, _ = api.param_serialize(
        method="GET",
        resource_path=f"{base}/namespaces/{namespace}/{PLURALS[kind]}/{name}",
        header_params={"Accept": "application/json"},
        auth_settings=["BearerToken"],
    )
    response = api.call_api(method, url, header_params=headers, _request_timeout=15)
    response.read()
    result: dict[str, Any] = api.response_deserialize(response, {"200": "object"}).data
    return result


# ------------------------------------------------------------------ the missing job controller


@dataclass
class JobSeen:
    name: str
    uid: str
    revision: str
    image: str
    outcome: str
    missing_inputs: list[str]
    deployment_images: dict[str, str]


@dataclass
class JobController:
    api: ApiClient
    outcome: str = "Complete"
    seen: list[JobSeen] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="job-controller", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        batch = BatchV1Api(self.api)
        done: set[str] = set()
        while not self._stop.wait(0.1):
            try:
                for job in batch.list_namespaced_job(NAMESPACE, _request_timeout=10).items:
                    if job.metadata.uid not in done:
                        self._finish(batch, job)
                        done.add(job.metadata.uid)
            except Exception as exc:  # reported by the tests, never swallowed
                self.errors.append(f"{type(exc).__name__}: {exc}")

    def _finish(self, batch: BatchV1Api, job: Any) -> None:
        spec = job.spec.template.spec
        self.seen.append(
            JobSeen(
                name=job.metadata.name,
                uid=job.metadata.uid,
                revision=(job.metadata.annotations or {}).get(
                    "yunguan.hunan.gov.cn/release-revision", ""
                ),
                image=spec.containers[0].image,
                outcome=self.outcome,
                missing_inputs=self._missing_inputs(spec),
                deployment_images=self._deployment_images(),
            )
        )
        now = datetime.now(UTC)
        status: dict[str, Any] = {"startTime": now, "active": 0}
        condition = {"type": self.outcome, "status": "True", "lastProbeTime": now}
        condition["lastTransitionTime"] = now
        if self.outcome == "Complete":
            status.update(succeeded=1, completionTime=now)
        else:
            status.update(failed=1)
            condition.update(reason="BackoffLimitExceeded", message="migration failed (test)")
        status["conditions"] = [condition]
        batch.patch_namespaced_job_status(job.metadata.name, NAMESPACE, {"status": status})

    def _missing_inputs(self, spec: Any) -> list[str]:
        wanted = [("ServiceAccount", spec.service_account_name)]
        wanted += [("ConfigMap", v.config_map.name) for v in spec.volumes or [] if v.config_map]
        wanted += [("Secret", v.secret.secret_name) for v in spec.volumes or [] if v.secret]
        for c in [*(spec.init_containers or []), *spec.containers]:
            for e in c.env or []:
                if e.value_from and e.value_from.secret_key_ref:
                    wanted.append(("Secret", e.value_from.secret_key_ref.name))
        core = CoreV1Api(self.api)
        readers = {
            "ServiceAccount": core.read_namespaced_service_account,
            "ConfigMap": core.read_namespaced_config_map,
            "Secret": core.read_namespaced_secret,
        }
        missing = []
        for kind, name in sorted(set(wanted)):
            try:
                readers[kind](name, NAMESPACE)
            except ApiException:
                missing.append(f"{kind}/{name}")
        return missing

    def _deployment_images(self) -> dict[str, str]:
        from kubernetes.client import AppsV1Api

        items = AppsV1Api(self.api).list_namespaced_deployment(NAMESPACE).items
        return {d.metadata.name: d.spec.template.spec.containers[0].image for d in items}

    def for_revision(self, revision: int) -> JobSeen:
        found = [s for s in self.seen if s.revision == str(revision)]
        assert len(found) == 1, (revision, self.seen, self.errors)
        return found[0]


# ------------------------------------------------------------------ fixtures


def _ensure_monitoring_crds(api: ApiClient) -> list[str]:
    """Minimal CRDs for the Prometheus Operator kinds, unless the cluster has them."""
    ext = ApiextensionsV1Api(api)
    created = []
    for plural, kind in CRDS.items():
        name = f"{plural}.monitoring.coreos.com"
        try:
            ext.read_custom_resource_definition(name)
            continue
        except ApiException as exc:
            if exc.status != 404:
                raise
        ext.create_custom_resource_definition(
            {
                "apiVersion": "apiextensions.k8s.io/v1",
                "kind": "CustomResourceDefinition",
                "metadata": {"name": name, "labels": {"yunguan.test/run": RUN}},
                "spec": {
                    "group": "monitoring.coreos.com",
                    "scope": "Namespaced",
                    "names": {"plural": plural, "singular": kind.lower(), "kind": kind},
                    "versions": [
                        {
                            "name": "v1",
                            "served": True,
                            "storage": True,
                            "schema": {
                                "openAPIV3Schema": {
                                    "type": "object",
                                    "x-kubernetes-preserve-unknown-fields": True,
                                }
                            },
                        }
                    ],
                },
            }
        )
        created.append(name)
    deadline = time.monotonic() + 30
    for name in created:
        while True:
            conds = ext.read_custom_resource_definition(name).status.conditions or []
            if any(c.type == "Established" and c.status == "True" for c in conds):
                break
            assert time.monotonic() < deadline, f"CRD {name} never became Established"
            time.sleep(0.1)
    return created


@dataclass
class Release:
    helm: Helm
    api: ApiClient
    jobs: JobController
    secret_values: list[str] = field(repr=False)

    def helm_args(self, *extra: str) -> list[str | Any]:
        return [RELEASE, CHART, "--namespace", NAMESPACE, *production_args(), *TIMEOUT, *extra]

    def status(self) -> dict[str, Any]:
        out = self.helm.run("status", RELEASE, "--namespace", NAMESPACE, "-o", "json").stdout
        result: dict[str, Any] = json.loads(out)
        return result

    def manifest(self) -> list[dict[str, Any]]:
        out = self.helm.run("get", "manifest", RELEASE, "--namespace", NAMESPACE).stdout
        return [d for d in yaml.safe_load_all(out) if d]


def _operator_objects(core: CoreV1Api) -> list[str]:
    """What an operator creates before `helm install`: the Secrets (and the JWKS)."""
    values = {
        "db": register_secret(secrets.token_urlsafe(18)),
        "broker": register_secret(secrets.token_urlsafe(18)),
        "key": register_secret(secrets.token_urlsafe(36)),
        "os": register_secret(secrets.token_urlsafe(18)),
        "kube": register_secret(secrets.token_urlsafe(24)),
        "jwt": register_secret(secrets.token_urlsafe(32)),
    }
    data = {
        "yunguan-database": {
            "url": f"postgresql+psycopg://yunguan:{values['db']}@10.20.1.10:5432/yunguan"
        },
        "yunguan-broker": {"url": f"redis://:{values['broker']}@10.20.2.1:6379/0"},
        "yunguan-secret-key": {"secret-key": values["key"]},
        "yunguan-clouds-yaml": {
            "clouds.yaml": "clouds:\n  provincial:\n    auth:\n"
            f"      auth_url: https://10.30.0.5:5000/v3\n      password: {values['os']}\n"
        },
        "yunguan-kubeconfigs": {
            "ai-centre.yaml": f"users: [{{name: y, user: {{token: {values['kube']}}}}}]\n"
        },
        "yunguan-slurm-jwt": {"nscc.key": values["jwt"]},
    }
    for name, string_data in data.items():
        encoded = {k: base64.b64encode(v.encode()).decode() for k, v in string_data.items()}
        core.create_namespaced_secret(
            NAMESPACE, {"metadata": {"name": name}, "type": "Opaque", "data": encoded}
        )
    core.create_namespaced_config_map(
        NAMESPACE,
        {"metadata": {"name": "yunguan-oidc-jwks"}, "data": {"jwks.json": '{"keys": []}'}},
    )
    return list(values.values())


@pytest.fixture(scope="module")
def release(helm_kube: Helm, kube_api: ApiClient) -> Iterator[Release]:
    core = CoreV1Api(kube_api)
    created_crds = _ensure_monitoring_crds(kube_api)
    core.create_namespace({"metadata": {"name": NAMESPACE, "labels": {"yunguan.test/run": RUN}}})
    jobs = JobController(kube_api)
    jobs.start()
    try:
        values = _operator_objects(core)
        rel = Release(helm=helm_kube, api=kube_api, jobs=jobs, secret_values=values)
        started = time.monotonic()
        helm_kube.run("install", *rel.helm_args())
        print(f"helm install: {time.monotonic() - started:.1f}s")
        yield rel
    finally:
        jobs.stop()
        helm_kube.run("uninstall", RELEASE, "--namespace", NAMESPACE, *TIMEOUT, check=False)
        core.delete_namespace(NAMESPACE)
        ext = ApiextensionsV1Api(kube_api)
        for name in created_crds:
            ext.delete_custom_resource_definition(name)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # the namespace controller empties it
            try:
                core.read_namespace(NAMESPACE)
            except ApiException as exc:
                if exc.status == 404:
                    break
                raise
            time.sleep(0.2)
        else:
            pytest.fail(f"namespace {NAMESPACE} was not deleted within 60 s")


# ------------------------------------------------------------------ the tests, in order


def _expected() -> dict[tuple[str, str], str]:
    """(kind, name) -> apiVersion of everything values-production.yaml must create
    on the 1.20 testbed, written out independently of the chart."""
    workers = [f"{FULL}-worker-{w}" for w in WORKER_QUEUES]
    scaled = [f"{FULL}-api", *workers]
    out: dict[tuple[str, str], str] = {}
    for name in [f"{FULL}-api", f"{FULL}-beat", f"{FULL}-exporter", *workers]:
        out[("Deployment", name)] = "apps/v1"
        out[("NetworkPolicy", name)] = "networking.k8s.io/v1"
    out[("NetworkPolicy", f"{FULL}-migrate")] = "networking.k8s.io/v1"
    for name in scaled:
        out[("PodDisruptionBudget", name)] = "policy/v1beta1"  # 1.20 has no policy/v1
    for name in scaled[:-1]:  # the slurm worker's autoscaling is off in production values
        out[("HorizontalPodAutoscaler", name)] = "autoscaling/v2beta2"  # ... nor autoscaling/v2
    out[("Service", f"{FULL}-api")] = "v1"
    out[("Service", f"{FULL}-exporter")] = "v1"
    out[("ServiceAccount", FULL)] = "v1"
    out[("ServiceMonitor", f"{FULL}-exporter")] = "monitoring.coreos.com/v1"
    # hooks
    out[("ServiceAccount", f"{FULL}-migrate")] = "v1"
    out[("ConfigMap", f"{FULL}-topology")] = "v1"
    out[("Job", f"{FULL}-migrate")] = "batch/v1"
    return out


def test_install_is_deployed_with_every_object(release: Release) -> None:
    status = release.status()
    assert status["info"]["status"] == "deployed"
    assert status["version"] == 1
    expected = _expected()
    for (kind, name), api_version in sorted(expected.items()):
        try:
            obj = get_object(release.api, api_version, kind, name)
        except ApiException as exc:
            pytest.fail(f"{kind} {api_version} {name}: HTTP {exc.status}")
        assert obj["metadata"]["labels"]["app.kubernetes.io/instance"] == RELEASE
    # The release's own manifest: exactly the expected non-hook objects, plus
    # one PrometheusRule / dashboard ConfigMap per file in deploy/.
    in_manifest = {(d["kind"], d["metadata"]["name"]): d["apiVersion"] for d in release.manifest()}
    extra = {k: v for k, v in in_manifest.items() if k not in expected}
    assert {kind for kind, _ in extra} <= {"PrometheusRule", "ConfigMap"}, extra
    for (kind, name), api_version in extra.items():
        get_object(release.api, api_version, kind, name)
    hooks = {("ServiceAccount", f"{FULL}-migrate"), ("ConfigMap", f"{FULL}-topology")}
    hooks.add(("Job", f"{FULL}-migrate"))
    for key, api_version in expected.items():
        assert in_manifest.get(key) == (None if key in hooks else api_version), key
    beat = get_object(release.api, "apps/v1", "Deployment", f"{FULL}-beat")
    assert (beat["spec"]["replicas"], beat["spec"]["strategy"]["type"]) == (1, "Recreate")


def test_install_ran_the_migration_first_with_its_inputs_in_place(release: Release) -> None:
    job = release.jobs.for_revision(1)
    assert job.outcome == "Complete"
    assert job.missing_inputs == [], "the hook Job would have waited for these"
    assert job.deployment_images == {}, "pre-install: no Deployment before the migration"
    assert not release.jobs.errors


def test_notes_tell_how_to_get_the_first_admin_token(release: Release) -> None:
    notes = release.helm.run("get", "notes", RELEASE, "--namespace", NAMESPACE).stdout
    assert f"kubectl -n {NAMESPACE} exec deploy/{FULL}-api --" in notes
    assert "yunguan user create hn-admin --role province-admin" in notes


def test_no_credential_reaches_the_release(release: Release) -> None:
    everything = release.helm.run("get", "all", RELEASE, "--namespace", NAMESPACE).stdout
    for value in release.secret_values:
        assert value not in everything


def test_upgrade_with_a_changed_value(release: Release) -> None:
    release.helm.run(
        "upgrade",
        *release.helm_args(
            "--set-string", "image.tag=0.1.1", "--set", "api.autoscaling.minReplicas=3"
        ),
    )
    status = release.status()
    assert (status["info"]["status"], status["version"]) == ("deployed", 2)
    hpa = get_object(release.api, "autoscaling/v2beta2", "HorizontalPodAutoscaler", f"{FULL}-api")
    assert hpa["spec"]["minReplicas"] == 3
    for (kind, name), api_version in _expected().items():
        if kind == "Deployment":
            obj = get_object(release.api, api_version, kind, name)
            image = obj["spec"]["template"]["spec"]["containers"][0]["image"]
            assert image.endswith(":0.1.1"), (name, image)
    # A new hook Job for the upgrade, with the new image, run while every
    # Deployment still had the old one (pre-upgrade).
    job = release.jobs.for_revision(2)
    assert job.uid != release.jobs.for_revision(1).uid
    assert job.image.endswith(":0.1.1")
    assert job.missing_inputs == []
    assert len(job.deployment_images) == 7
    assert all(i.endswith(":0.1.0") for i in job.deployment_images.values())


def test_upgrade_refused_by_the_schema_changes_nothing(release: Release) -> None:
    for bad, message in (
        (["--set", "api.replicaCount=two"], "api.replicaCount: Invalid type. Expected: integer"),
        (["--set", "apiReplicas=3"], "Additional property apiReplicas is not allowed"),
    ):
        done = release.helm.run("upgrade", *release.helm_args(*bad), check=False)
        assert done.returncode != 0
        assert message in done.stderr
    assert release.status()["version"] == 2


def test_failed_migration_stops_the_upgrade(release: Release) -> None:
    release.jobs.outcome = "Failed"
    try:
        done = release.helm.run(
            "upgrade", *release.helm_args("--set-string", "image.tag=0.1.2"), check=False
        )
    finally:
        release.jobs.outcome = "Complete"
    assert done.returncode != 0
    assert "pre-upgrade hooks failed" in done.stderr
    assert release.jobs.for_revision(3).outcome == "Failed"
    history = json.loads(
        release.helm.run("history", RELEASE, "--namespace", NAMESPACE, "-o", "json").stdout
    )
    assert [(h["revision"], h["status"]) for h in history][-2:] == [(2, "deployed"), (3, "failed")]
    # The old pods' spec is untouched: no Deployment moved to the new image.
    api = get_object(release.api, "apps/v1", "Deployment", f"{FULL}-api")
    assert api["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":0.1.1")


def test_install_refuses_a_missing_secret(release: Release) -> None:
    other = f"{RUN}-x"
    done = release.helm.run(
        "install",
        other,
        CHART,
        "--namespace",
        NAMESPACE,
        "--set",
        "database.existingSecret=no-such-secret",
        *TIMEOUT,
        check=False,
    )
    assert done.returncode != 0
    assert 'database.existingSecret: Secret "no-such-secret" not found' in done.stderr
    listed = json.loads(
        release.helm.run("list", "--namespace", NAMESPACE, "-a", "-o", "json").stdout
    )
    assert [r["name"] for r in listed] == [RELEASE]
    assert not [s for s in release.jobs.seen if s.name.startswith(other)]
