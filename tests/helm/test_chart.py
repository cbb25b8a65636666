"""The chart offline: lint, render, schema-validate, and the rules it promises.

Every rendered object is validated against the strict JSON schemas of
Kubernetes 1.25 and 1.33 (`kubernetes-validate`, no cluster needed); the
Prometheus Operator's custom resources, which those schemas do not cover, are
checked against their sources instead. The install on a real apiserver is
tests/helm/test_install.py.
"""

from __future__ import annotations

import json
import re
import shutil
import tarfile
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.helm.chart import (
    CHART,
    DASHBOARDS_DIR,
    PRODUCTION_VALUES,
    RULES_DIR,
    SECRET_ENV,
    WORKER_QUEUES,
    Helm,
    by_kind,
    containers,
    env_of,
    hook_weight,
    pod_specs,
    production_args,
)

FULL = "yg-yunguan"  # release "yg" of chart "yunguan"
DEPLOYMENTS = {f"{FULL}-{c}" for c in ("api", "beat", "exporter")} | {
    f"{FULL}-worker-{w}" for w in WORKER_QUEUES
}
VALUE_SETS = {"default": [], "production": production_args()}


@pytest.fixture(scope="module")
def default_docs(helm: Helm) -> list[dict[str, Any]]:
    return helm.template()


@pytest.fixture(scope="module")
def prod_docs(helm: Helm) -> list[dict[str, Any]]:
    return helm.template(*production_args())


# ------------------------------------------------------------------ lint, render, validate


@pytest.mark.parametrize("values", VALUE_SETS)
def test_lint_strict(helm: Helm, values: str) -> None:
    out = helm.run("lint", "--strict", CHART, *VALUE_SETS[values]).stdout
    assert "1 chart(s) linted, 0 chart(s) failed" in out


@pytest.mark.parametrize("kube_version", ["1.25.0", "1.33.0"])
@pytest.mark.parametrize("values", VALUE_SETS)
def test_every_object_validates_strictly(helm: Helm, values: str, kube_version: str) -> None:
    docs = helm.template("--kube-version", kube_version, *VALUE_SETS[values])
    custom = {"ServiceMonitor", "PrometheusRule"}
    checked = 0
    for doc in docs:
        if doc["kind"] in custom:
            continue  # no schema in kubernetes-validate: see the monitoring tests
        try:
            kubernetes_validate.validate(doc, kube_version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']} on {kube_version}: {exc}")
        checked += 1
    assert checked >= 28


def test_default_values_render_the_whole_deployment(default_docs: list[dict[str, Any]]) -> None:
    kinds: dict[str, set[str]] = {}
    for d in default_docs:
        kinds.setdefault(d["kind"], set()).add(d["metadata"]["name"])
    assert kinds["Deployment"] == DEPLOYMENTS
    assert kinds["Service"] == {f"{FULL}-api", f"{FULL}-exporter"}
    scaled = {f"{FULL}-api"} | {f"{FULL}-worker-{w}" for w in WORKER_QUEUES}
    assert kinds["HorizontalPodAutoscaler"] == scaled
    assert kinds["PodDisruptionBudget"] == scaled
    assert kinds["NetworkPolicy"] == DEPLOYMENTS | {f"{FULL}-migrate"}
    assert kinds["Job"] == {f"{FULL}-migrate"}
    assert kinds["ServiceAccount"] == {FULL, f"{FULL}-migrate"}
    # Monitoring objects are opt-in; no topology was given, so no ConfigMap.
    assert not kinds.keys() & {"ServiceMonitor", "PrometheusRule", "ConfigMap", "Secret"}


@pytest.mark.parametrize(
    ("kube_version", "hpa", "pdb"),
    [
        ("1.20.2", "autoscaling/v2beta2", "policy/v1beta1"),  # the testbed
        ("1.22.0", "autoscaling/v2beta2", "policy/v1"),
        ("1.25.0", "autoscaling/v2", "policy/v1"),
        ("1.33.0", "autoscaling/v2", "policy/v1"),
    ],
)
def test_api_versions_follow_the_cluster(helm: Helm, kube_version: str, hpa: str, pdb: str) -> None:
    docs = helm.template("--kube-version", kube_version)
    assert {d["apiVersion"] for d in docs if d["kind"] == "HorizontalPodAutoscaler"} == {hpa}
    assert {d["apiVersion"] for d in docs if d["kind"] == "PodDisruptionBudget"} == {pdb}


# ------------------------------------------------------------------ workloads


def test_api_probes_and_service(prod_docs: list[dict[str, Any]]) -> None:
    api = by_kind(prod_docs, "Deployment")[f"{FULL}-api"]
    (c,) = api["spec"]["template"]["spec"]["containers"]
    assert c["args"] == ["serve"]
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert env_of(c)["YUNGUAN_API__HOST"]["value"] == "0.0.0.0"
    svc = by_kind(prod_docs, "Service")[f"{FULL}-api"]
    assert svc["spec"]["selector"] == api["spec"]["selector"]["matchLabels"]
    # The HPA owns the replica count: the Deployment leaves it alone.
    assert "replicas" not in api["spec"]
    hpa = by_kind(prod_docs, "HorizontalPodAutoscaler")[f"{FULL}-api"]
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 8)


def test_one_worker_per_queue(prod_docs: list[dict[str, Any]]) -> None:
    deployments = by_kind(prod_docs, "Deployment")
    for name, queue in WORKER_QUEUES.items():
        spec = deployments[f"{FULL}-worker-{name}"]["spec"]
        args = spec["template"]["spec"]["containers"][0]["args"]
        assert args[:3] == ["worker", "-Q", queue]
    # Per-queue overrides merge onto the shared worker defaults.
    assert (
        deployments[f"{FULL}-worker-openstack"]["spec"]["template"]["spec"]["containers"][0][
            "args"
        ][4]
        == "8"
    )
    slurm = deployments[f"{FULL}-worker-slurm"]["spec"]
    assert slurm["replicas"] == 1  # autoscaling off for this queue only
    assert slurm["template"]["spec"]["tolerations"][0]["key"] == "hpc"
    assert f"{FULL}-worker-slurm" not in by_kind(prod_docs, "HorizontalPodAutoscaler")


def test_beat_is_a_singleton_recreated(prod_docs: list[dict[str, Any]]) -> None:
    beat = by_kind(prod_docs, "Deployment")[f"{FULL}-beat"]["spec"]
    assert beat["replicas"] == 1
    assert beat["strategy"] == {"type": "Recreate"}
    assert f"{FULL}-beat" not in by_kind(prod_docs, "HorizontalPodAutoscaler")


def test_exporter_serves_metrics_port(prod_docs: list[dict[str, Any]]) -> None:
    exporter = by_kind(prod_docs, "Deployment")[f"{FULL}-exporter"]["spec"]["template"]["spec"]
    (c,) = exporter["containers"]
    assert c["args"][0] == "exporter"
    assert c["ports"] == [{"name": "metrics", "containerPort": 9464, "protocol": "TCP"}]
    svc = by_kind(prod_docs, "Service")[f"{FULL}-exporter"]
    assert svc["spec"]["ports"][0]["port"] == 9464


@pytest.mark.parametrize("values", VALUE_SETS)
def test_every_pod_is_hardened(helm: Helm, values: str) -> None:
    docs = helm.template(*VALUE_SETS[values])
    specs = dict(pod_specs(docs))
    assert set(specs) == DEPLOYMENTS | {f"{FULL}-migrate"}
    for name, spec in specs.items():
        sc = spec["securityContext"]
        assert sc["runAsNonRoot"] is True and sc["runAsUser"] != 0, name
        assert sc["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert spec["automountServiceAccountToken"] is False, name
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert "emptyDir" in volumes["tmp"] and "emptyDir" in volumes["data"], name
        for c in containers(spec):
            csc = c["securityContext"]
            assert csc["readOnlyRootFilesystem"] is True, (name, c["name"])
            assert csc["allowPrivilegeEscalation"] is False, (name, c["name"])
            assert csc["capabilities"] == {"drop": ["ALL"]}, (name, c["name"])
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= c["resources"][bound].keys(), (name, c["name"])
            mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
            assert mounts["/tmp"] == "tmp" and mounts["/var/lib/yunguan"] == "data", name
            assert env_of(c)["YUNGUAN_DATA_DIR"]["value"] == "/var/lib/yunguan"


# ------------------------------------------------------------------ credentials


def test_credentials_come_only_from_secrets(prod_docs: list[dict[str, Any]]) -> None:
    """secretKeyRef for every credential, each only where it is needed."""
    seen: dict[str, set[str]] = {}
    for name, spec in pod_specs(prod_docs):
        for c in containers(spec):
            for var, e in env_of(c).items():
                if var in SECRET_ENV:
                    assert "value" not in e and "secretKeyRef" in e["valueFrom"], (name, var)
                    seen.setdefault(var, set()).add(name.removeprefix(f"{FULL}-"))
                elif "value" in e:
                    # No URL with a password, no key-like value in clear.
                    assert not re.search(r"://[^/\s]*:[^@/\s]*@", e["value"]), (name, var)
    workers = {f"worker-{w}" for w in WORKER_QUEUES}
    assert seen["YUNGUAN_SECRET_KEY"] == {"api"}
    assert seen["YUNGUAN_BROKER_URL"] == workers | {"beat"}
    assert seen["YUNGUAN_DATABASE_URL"] == workers | {"api", "beat", "exporter", "migrate"}


def test_cloud_credentials_reach_only_their_worker(prod_docs: list[dict[str, Any]]) -> None:
    expected = {
        "openstack": ("yunguan-clouds-yaml", "/etc/openstack"),
        "kubernetes": ("yunguan-kubeconfigs", "/etc/yunguan/kubeconfigs"),
        "slurm": ("yunguan-slurm-jwt", "/etc/yunguan/slurm"),
    }
    mounted: dict[str, str] = {}
    for name, spec in pod_specs(prod_docs):
        secrets = {v["name"]: v["secret"] for v in spec["volumes"] if "secret" in v}
        for vol_name, secret in secrets.items():
            mounted[secret["secretName"]] = name.removeprefix(f"{FULL}-")
            assert secret["defaultMode"] == 0o440
            mount = next(m for m in spec["containers"][0]["volumeMounts"] if m["name"] == vol_name)
            assert mount["readOnly"] is True
    assert mounted == {secret: f"worker-{kind}" for kind, (secret, _) in expected.items()}


def test_no_secret_object_and_no_credential_in_values() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    flat = json.dumps(values)
    assert not re.search(r"://[^/\s\"]*:[^@/\s\"]*@", flat)
    assert not re.search(r"(?i)\"(password|token|secret)\": \"[^\"]", flat)
    templates = " ".join(p.read_text(encoding="utf-8") for p in (CHART / "templates").iterdir())
    assert "kind: Secret" not in templates  # the chart never creates one


# ------------------------------------------------------------------ migrations hook


def test_migration_job_is_a_hook_with_its_inputs_before_it(
    prod_docs: list[dict[str, Any]],
) -> None:
    job = by_kind(prod_docs, "Job")[f"{FULL}-migrate"]
    ann = job["metadata"]["annotations"]
    assert ann["helm.sh/hook"] == "pre-install,pre-upgrade"
    job_weight = hook_weight(job)
    assert job_weight is not None
    spec = job["spec"]["template"]["spec"]
    init, main = spec["initContainers"][0], spec["containers"][0]
    assert init["args"] == ["db", "upgrade"]
    assert main["args"] == ["topology", "apply", "/etc/yunguan/topology/topology.yaml"]
    assert env_of(main)["YUNGUAN_TOPOLOGY_FILE"]["value"] == "/etc/yunguan/topology/topology.yaml"
    # Everything the Job reads: a hook of lower weight, or a Secret the operator names.
    operator_secrets = {"yunguan-database"}
    reads = {("ServiceAccount", spec["serviceAccountName"])}
    reads |= {("ConfigMap", v["configMap"]["name"]) for v in spec["volumes"] if "configMap" in v}
    for c in containers(spec):
        for e in c["env"]:
            ref = e.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                assert ref["name"] in operator_secrets
    hooks = {(d["kind"], d["metadata"]["name"]): hook_weight(d) for d in prod_docs}
    for obj in reads:
        weight = hooks.get(obj)
        assert weight is not None, f"{obj} is read by the Job but is not a hook"
        assert weight < job_weight, obj
        ann = next(
            d["metadata"]["annotations"]
            for d in prod_docs
            if (d["kind"], d["metadata"]["name"]) == obj
        )
        assert ann["helm.sh/hook"] == "pre-install,pre-upgrade"
    topology = by_kind(prod_docs, "ConfigMap")[f"{FULL}-topology"]
    assert yaml.safe_load(topology["data"]["topology.yaml"])["province"]["code"] == "hunan"


def test_without_topology_the_job_only_migrates(default_docs: list[dict[str, Any]]) -> None:
    spec = by_kind(default_docs, "Job")[f"{FULL}-migrate"]["spec"]["template"]["spec"]
    assert "initContainers" not in spec
    assert [c["args"] for c in spec["containers"]] == [["db", "upgrade"]]


# ------------------------------------------------------------------ network policy


def test_network_policies(prod_docs: list[dict[str, Any]]) -> None:
    policies = by_kind(prod_docs, "NetworkPolicy")
    workloads = {**by_kind(prod_docs, "Deployment"), **by_kind(prod_docs, "Job")}
    for name, workload in workloads.items():  # every pod is selected by its own policy
        policy = policies[name]["spec"]
        assert policy["policyTypes"] == ["Ingress", "Egress"]
        labels = workload["spec"]["template"]["metadata"]["labels"]
        assert policy["podSelector"]["matchLabels"].items() <= labels.items()

    def egress_ports(name: str) -> set[int]:
        return {p["port"] for rule in policies[name]["spec"]["egress"] for p in rule["ports"]}

    api = policies[f"{FULL}-api"]["spec"]
    assert api["ingress"][0]["ports"] == [{"port": 8080, "protocol": "TCP"}]
    assert api["ingress"][0]["from"][0]["namespaceSelector"]["matchLabels"] == {
        "kubernetes.io/metadata.name": "ingress-nginx"
    }
    assert egress_ports(f"{FULL}-api") == {53, 5432}
    assert policies[f"{FULL}-beat"]["spec"]["ingress"] == []
    assert egress_ports(f"{FULL}-worker-control") == {53, 5432, 6379}
    assert {8774, 6443, 6820} <= egress_ports(f"{FULL}-worker-openstack")
    db_rule = next(
        r
        for r in policies[f"{FULL}-worker-openstack"]["spec"]["egress"]
        if r["ports"][0]["port"] == 5432
    )
    assert db_rule["to"] == [
        {"ipBlock": {"cidr": "10.20.1.10/32"}},
        {"ipBlock": {"cidr": "10.20.1.11/32"}},
    ]


# ------------------------------------------------------------------ values.schema.json


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "api.replicaCount=two"], "api.replicaCount: Invalid type. Expected: integer"),
        (["--set", "replicas=3"], "Additional property replicas is not allowed"),
        (["--set", "workers.slurm.concurency=4"], "Additional property concurency is not allowed"),
        (["--set", "image.pullPolicy=Sometimes"], "image.pullPolicy"),
        (["--set", "networkPolicy.database.cidrs={10.0.0.1}"], "networkPolicy.database.cidrs"),
        (["--set", "api.resources.limits=null"], "api.resources"),
    ],
)
def test_schema_refuses(helm: Helm, args: list[str], message: str) -> None:
    done = helm.run("template", "yg", CHART, *args, check=False)
    assert done.returncode != 0
    assert "values don't meet the specifications of the schema" in done.stderr
    assert message in done.stderr


# ------------------------------------------------------------------ monitoring from deploy/


def _chart_copy(tmp_path: Path, rules: dict[str, str], dashboards: dict[str, str]) -> Path:
    """The chart with real directories in place of the deploy/ symlinks."""
    chart = tmp_path / "yunguan"
    shutil.copytree(CHART, chart, symlinks=True)
    for link, files in (("prometheus-rules", rules), ("grafana-dashboards", dashboards)):
        target = chart / "files" / link
        target.unlink()
        target.mkdir()
        for name, text in files.items():
            (target / name).write_text(text, encoding="utf-8")
    return chart


MONITORING_ON = [
    "--set",
    "metrics.prometheusRule.enabled=true,metrics.grafanaDashboards.enabled=true,"
    "metrics.serviceMonitor.enabled=true",
]
RULES = """groups:
  - name: yunguan-capacity
    rules:
      - alert: YunguanPoolNearlyFull
        expr: yunguan_capacity_used_ratio > 0.9
        for: 10m
        labels: {severity: warning}
        annotations:
          summary: "{{ $labels.cloud }} at {{ $value | humanizePercentage }}"
"""
PROMTOOL_TEST = "rule_files: [capacity.yml]\ntests: []\n"
DASHBOARD = json.dumps(
    {"title": "Yunguan 云管 capacity", "panels": [{"legendFormat": "{{cloud}}"}]}
)


def test_rules_and_dashboards_render_verbatim(helm: Helm, tmp_path: Path) -> None:
    chart = _chart_copy(
        tmp_path,
        {"capacity.yml": RULES, "capacity_test.yml": PROMTOOL_TEST},
        {"capacity.json": DASHBOARD},
    )
    docs = helm.template(*MONITORING_ON, chart=chart)
    (rule,) = by_kind(docs, "PrometheusRule").values()
    assert rule["metadata"]["name"] == f"{FULL}-capacity"
    # Helm's own {{ }} never touches the rule templates: the groups are the file's.
    assert rule["spec"]["groups"] == yaml.safe_load(RULES)["groups"]
    (board,) = (
        d for d in by_kind(docs, "ConfigMap").values() if "dashboard" in d["metadata"]["name"]
    )
    assert board["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert board["data"] == {"capacity.json": DASHBOARD}
    (monitor,) = by_kind(docs, "ServiceMonitor").values()
    exporter = by_kind(docs, "Service")[f"{FULL}-exporter"]
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= exporter["metadata"]["labels"].items()
    )
    assert monitor["spec"]["endpoints"][0]["port"] == exporter["spec"]["ports"][0]["name"]


def test_empty_rule_and_dashboard_directories_render_nothing(helm: Helm, tmp_path: Path) -> None:
    docs = helm.template(*MONITORING_ON, chart=_chart_copy(tmp_path, {}, {}))
    assert not by_kind(docs, "PrometheusRule")
    assert not by_kind(docs, "ConfigMap")


@pytest.mark.parametrize(
    ("rules", "dashboards", "message"),
    [
        ({"bad.yml": "groups: [unclosed"}, {}, "deploy/prometheus/rules/bad.yml is not YAML"),
        ({"notes.yml": "hello: world\n"}, {}, "deploy/prometheus/rules/notes.yml has no `groups`"),
        ({}, {"bad.json": "{not json"}, "deploy/grafana/dashboards/bad.json is not JSON"),
    ],
)
def test_a_broken_source_file_fails_the_render(
    helm: Helm, tmp_path: Path, rules: dict[str, str], dashboards: dict[str, str], message: str
) -> None:
    chart = _chart_copy(tmp_path, rules, dashboards)
    done = helm.run("template", "yg", chart, *MONITORING_ON, check=False)
    assert done.returncode != 0
    assert message in done.stderr


def _rule_files() -> list[Path]:
    """deploy/prometheus/rules/*.y(a)ml that hold rules (not promtool tests)."""
    found = [*RULES_DIR.glob("*.yml"), *RULES_DIR.glob("*.yaml")]
    return sorted(
        p
        for p in found
        if not p.stem.endswith("_test")
        and "groups" in (yaml.safe_load(p.read_text(encoding="utf-8")) or {})
    )


def test_the_chart_reads_deploy_through_symlinks(helm: Helm, tmp_path: Path) -> None:
    """One source: the chart's files/ are symlinks into deploy/, followed by
    `helm template` and `helm package` alike."""
    for link, target in (("prometheus-rules", RULES_DIR), ("grafana-dashboards", DASHBOARDS_DIR)):
        path = CHART / "files" / link
        assert path.is_symlink(), f"{path} must be a symlink into deploy/"
        assert path.resolve() == target.resolve(), path
        assert target.is_dir(), f"{target} is missing: the chart's {path.name} symlink dangles"
    rules = _rule_files()
    dashboards = sorted(DASHBOARDS_DIR.glob("*.json"))

    docs = helm.template(*MONITORING_ON)
    rendered = {
        d["metadata"]["annotations"]["yunguan.hunan.gov.cn/source"]: d
        for d in docs
        if d["kind"] in ("PrometheusRule", "ConfigMap")
        and "yunguan.hunan.gov.cn/source" in d["metadata"].get("annotations", {})
    }
    assert set(rendered) == {f"deploy/prometheus/rules/{p.name}" for p in rules} | {
        f"deploy/grafana/dashboards/{p.name}" for p in dashboards
    }
    for p in rules:
        source = yaml.safe_load(p.read_text(encoding="utf-8"))
        assert rendered[f"deploy/prometheus/rules/{p.name}"]["spec"]["groups"] == source["groups"]
    for p in dashboards:
        data = rendered[f"deploy/grafana/dashboards/{p.name}"]["data"]
        assert data == {p.name: p.read_text(encoding="utf-8")}

    helm.run("package", CHART, "--destination", tmp_path)
    (package,) = tmp_path.glob("yunguan-*.tgz")
    with tarfile.open(package) as tar:
        packaged = {n for n in tar.getnames() if n.startswith("yunguan/files/")}
    assert {f"yunguan/files/prometheus-rules/{p.name}" for p in rules} | {
        f"yunguan/files/grafana-dashboards/{p.name}" for p in dashboards
    } <= packaged
    # promtool's unit tests stay out of the package (.helmignore).
    assert not [n for n in packaged if re.search(r"_test\.ya?ml$", n)]


def test_production_values_are_schema_valid_on_their_own() -> None:
    """values-production.yaml is what the README tells operators to start from."""
    import jsonschema

    schema = json.loads((CHART / "values.schema.json").read_text(encoding="utf-8"))
    defaults = yaml.safe_load((CHART / "values.yaml").read_text(encoding="utf-8"))
    jsonschema.validate(defaults, schema)
    prod = yaml.safe_load(PRODUCTION_VALUES.read_text(encoding="utf-8"))
    assert set(prod) <= set(schema["properties"])
