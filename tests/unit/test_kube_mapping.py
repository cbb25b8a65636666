"""The Kubernetes adapter's pure parts: unit mapping, names, error translation, capacity math.

Everything that talks to the apiserver is in tests/contract/kubernetes; these
run on model objects of the kubernetes client built in memory.
"""

from __future__ import annotations

import json
import re
from fractions import Fraction

import pytest
from kubernetes.client import (
    V1Container,
    V1Node,
    V1NodeCondition,
    V1NodeSpec,
    V1NodeStatus,
    V1ObjectMeta,
    V1Pod,
    V1PodSpec,
    V1PodStatus,
    V1ResourceQuota,
    V1ResourceQuotaStatus,
    V1ResourceRequirements,
    V1Taint,
)
from kubernetes.client.exceptions import ApiException

from controlplane.vocabulary import Architecture, CloudKind, ResourceClass, supported_classes
from providers.base import (
    ProviderAuthError,
    ProviderNotFound,
    ProviderRateLimited,
    ProviderRejected,
    ProviderUnavailable,
    TenantSpec,
)
from providers.kubernetes.capacity import node_totals, quota_usage, split_usage
from providers.kubernetes.errors import from_api_exception
from providers.kubernetes.mapping import GIB, MIB, QuotaTable
from providers.kubernetes.naming import (
    MAX_LABEL,
    label_value,
    namespace_labels,
    namespace_name,
)
from providers.kubernetes.workloads import node_schedulable, pod_requests

RC = ResourceClass
X86, ARM = Architecture.X86_64, Architecture.AARCH64
TABLE = QuotaTable()
DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")

# -- mapping table ----------------------------------------------------------------


def test_supported_classes_match_the_vocabulary() -> None:
    assert supported_classes(CloudKind.KUBERNETES) == TABLE.classes


def test_to_hard_writes_every_key_of_each_class() -> None:
    hard = TABLE.to_hard({RC.VCPU: 4, RC.MEMORY_MIB: 1536, RC.DISK_GIB: 10, RC.GPU: 1, RC.PODS: 2})
    assert hard == {
        "requests.cpu": "4",
        "limits.cpu": "4",
        "requests.memory": "1536Mi",
        "limits.memory": "1536Mi",
        "requests.storage": "10Gi",
        "persistentvolumeclaims": "10",
        "requests.nvidia.com/gpu": "1",
        "pods": "2",
    }
    assert set(hard) == TABLE.all_keys


def test_gpu_resource_is_configurable() -> None:
    table = QuotaTable(gpu_resource="huawei.com/Ascend910")
    assert table.to_hard({RC.GPU: 8}) == {"requests.huawei.com/Ascend910": "8"}
    assert table.read_limits({"requests.huawei.com/Ascend910": "8"})[RC.GPU] == 8


def test_memory_is_spelled_canonically() -> None:
    assert TABLE.to_hard({RC.MEMORY_MIB: 2048})["requests.memory"] == "2Gi"
    assert TABLE.to_hard({RC.MEMORY_MIB: 0})["requests.memory"] == "0"


def test_read_limits_floor_and_take_the_tighter_key() -> None:
    limits = TABLE.read_limits(
        {
            "requests.cpu": "1500m",  # someone else's fractional value: 1 whole core
            "limits.cpu": "4",
            "requests.memory": "1G",  # 953.67 MiB
            "requests.storage": "10Gi",
            "persistentvolumeclaims": "3",  # derived, never read back
        }
    )
    assert limits == {
        RC.VCPU: 1,
        RC.MEMORY_MIB: 953,
        RC.DISK_GIB: 10,
        RC.GPU: None,  # absent: unlimited
        RC.PODS: None,
    }


def test_read_usage_rounds_up_and_takes_the_larger_key() -> None:
    usage = TABLE.read_usage(
        {
            "requests.cpu": "1500m",
            "limits.cpu": "2500m",
            "requests.memory": "1",  # one byte is one started MiB
            "limits.memory": "0",
            "requests.storage": f"{GIB + 1}",
            "pods": "2",
        }
    )
    assert usage == {RC.VCPU: 3, RC.MEMORY_MIB: 1, RC.DISK_GIB: 2, RC.GPU: 0, RC.PODS: 2}


# -- names ------------------------------------------------------------------------


def test_plain_keys_give_plain_namespaces() -> None:
    assert namespace_name("cs-data-portal") == "yg-cs-data-portal"


@pytest.mark.parametrize(
    "key",
    ["a" * 63, "x" + "-" * 62, "ends-with-dash-", "UPPER_case.key", "项目", "a" * 61, "a--b"],
)
def test_every_key_gives_a_valid_stable_namespace(key: str) -> None:
    name = namespace_name(key)
    assert len(name) <= MAX_LABEL and DNS_LABEL.fullmatch(name), name
    assert name.startswith("yg-")
    assert namespace_name(key) == name


def test_keys_that_clean_up_alike_stay_apart() -> None:
    assert namespace_name("a_b") != namespace_name("a.b")
    long_a, long_b = "p" * 70 + "a", "p" * 70 + "b"
    assert namespace_name(long_a) != namespace_name(long_b)


def test_label_values() -> None:
    assert label_value("cs-data") == "cs-data"
    odd = label_value("ends-with-dash-")
    assert odd != "ends-with-dash-" and len(odd) <= MAX_LABEL
    assert len(label_value("z" * 100)) <= MAX_LABEL


def test_namespace_labels_follow_the_org_path() -> None:
    municipal = TenantSpec(key="p1", name="项目", path=("hunan", "changsha", "cs-data", "p1"))
    labels = namespace_labels(municipal)
    assert labels["yunguan.hunan.gov.cn/prefecture"] == "changsha"
    assert labels["yunguan.hunan.gov.cn/department"] == "cs-data"
    assert labels["yunguan.hunan.gov.cn/project"] == "p1"
    assert labels["app.kubernetes.io/managed-by"] == "yunguan"
    provincial = TenantSpec(key="p2", name="省级", path=("hunan", "hn-health", "p2"))
    assert "yunguan.hunan.gov.cn/prefecture" not in namespace_labels(provincial)


# -- error translation ------------------------------------------------------------


TERMINATING = "namespace x because it is being terminated"


def _api_error(status: int, message: str = "", reason: str = "", **headers: str) -> ApiException:
    exc = ApiException(status=status, reason=reason or "reason")
    exc.body = json.dumps({"kind": "Status", "message": message, "reason": reason, "code": status})
    exc.headers = headers
    return exc


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (_api_error(0, "SSLError"), ProviderUnavailable),
        (_api_error(500, "etcdserver: request timed out"), ProviderUnavailable),
        (_api_error(503, "apiserver is shutting down"), ProviderUnavailable),
        (_api_error(401, "Unauthorized"), ProviderAuthError),
        (
            _api_error(403, 'namespaces is forbidden: User "x" cannot list resource "namespaces"'),
            ProviderAuthError,
        ),
        (
            _api_error(403, 'pods "p" is forbidden: exceeded quota: yunguan, requested: pods=1'),
            ProviderRejected,
        ),
        (_api_error(403, "forbidden: status unknown for quota: yunguan"), ProviderUnavailable),
        (_api_error(403, f"unable to create new content in {TERMINATING}"), ProviderUnavailable),
        (_api_error(404, 'namespaces "x" not found'), ProviderNotFound),
        (_api_error(409, "the object has been modified", "Conflict"), ProviderRejected),
        (_api_error(422, "spec.hard[pods]: Invalid value", "Invalid"), ProviderRejected),
        (_api_error(400, "bad request"), ProviderRejected),
    ],
)
def test_api_errors_map_onto_the_port(exc: ApiException, expected: type[Exception]) -> None:
    error = from_api_exception(exc, cloud="ai-centre", action="do it")
    assert type(error) is expected
    assert error.cloud == "ai-centre"
    assert "do it" in error.message


def test_rate_limit_keeps_retry_after() -> None:
    error = from_api_exception(
        _api_error(429, "too many requests", **{"Retry-After": "7"}), cloud="c", action="a"
    )
    assert isinstance(error, ProviderRateLimited)
    assert error.retry_after == 7.0 and error.retryable


def test_message_keeps_the_apiservers_words() -> None:
    error = from_api_exception(
        _api_error(403, 'pods "p" is forbidden: exceeded quota: yunguan, requested: pods=1'),
        cloud="c",
        action="create pod",
    )
    assert "exceeded quota: yunguan" in str(error)


# -- nodes, pods and the capacity split --------------------------------------------


def _node(name: str, arch: str, gpus: int | None = None, **kw: object) -> V1Node:
    allocatable = {"cpu": "7500m", "memory": "16Gi", "pods": "110"}
    if gpus is not None:
        allocatable["nvidia.com/gpu"] = str(gpus)
    return V1Node(
        metadata=V1ObjectMeta(name=name, labels={"kubernetes.io/arch": arch}),
        spec=V1NodeSpec(
            unschedulable=bool(kw.get("cordoned")),
            taints=[V1Taint(key=str(kw["taint"]), effect="NoSchedule")] if "taint" in kw else None,
        ),
        status=V1NodeStatus(
            allocatable=allocatable,
            conditions=[V1NodeCondition(type="Ready", status=str(kw["ready"]))]
            if "ready" in kw
            else None,
        ),
    )


def _pod(ns: str, cpu: str, *, node: str | None = None, arch: str | None = None, gpu: int = 0,
         phase: str = "Pending") -> V1Pod:  # fmt: skip
    requests = {"cpu": cpu, "memory": "256Mi"}
    if gpu:
        requests["nvidia.com/gpu"] = str(gpu)
    return V1Pod(
        metadata=V1ObjectMeta(name=f"p-{cpu}", namespace=ns),
        spec=V1PodSpec(
            containers=[V1Container(name="c", resources=V1ResourceRequirements(requests=requests))],
            node_name=node,
            node_selector={"kubernetes.io/arch": arch} if arch else None,
        ),
        status=V1PodStatus(phase=phase),
    )


def test_schedulable_rules() -> None:
    assert node_schedulable(_node("n", "amd64"))  # no conditions: no kubelet yet
    assert node_schedulable(_node("n", "amd64", ready="True"))
    assert not node_schedulable(_node("n", "amd64", ready="False"))
    assert not node_schedulable(_node("n", "amd64", ready="Unknown"))
    assert not node_schedulable(_node("n", "amd64", cordoned=True))
    assert not node_schedulable(_node("n", "amd64", taint="node-role.kubernetes.io/master"))
    assert node_schedulable(_node("n", "amd64", taint="nvidia.com/gpu"))  # dedicated GPU node


def test_node_totals_per_architecture_and_gpu() -> None:
    nodes = [
        _node("a1", "amd64", gpus=4),
        _node("a2", "amd64", gpus=2),
        _node("r1", "arm64"),
        _node("cordoned", "amd64", gpus=8, cordoned=True),
        _node("mainframe", "s390x"),
        _node("l1", "loong64"),
    ]
    totals, counted = node_totals(nodes, TABLE)
    assert counted == {"a1": X86, "a2": X86, "r1": ARM, "l1": Architecture.LOONGARCH64}
    assert totals[(RC.VCPU, X86)] == 15  # 7500m + 7500m, exact
    assert totals[(RC.GPU, X86)] == 6
    assert (RC.GPU, ARM) not in totals  # no arm node offers GPUs
    assert totals[(RC.MEMORY_MIB, ARM)] == 16 * GIB
    assert totals[(RC.PODS, Architecture.LOONGARCH64)] == 110


def test_pod_requests_count_init_containers_and_overhead() -> None:
    pod = _pod("ns", "500m")
    assert pod.spec is not None
    pod.spec.init_containers = [
        V1Container(name="init", resources=V1ResourceRequirements(requests={"cpu": "2"}))
    ]
    pod.spec.overhead = {"cpu": "100m"}
    assert pod_requests(pod) == {"cpu": Fraction(21, 10), "memory": Fraction(256 * MIB)}


def test_usage_is_split_by_placement_and_the_rest_goes_to_the_largest_arch() -> None:
    nodes = [_node("a1", "amd64", gpus=4), _node("a2", "amd64", gpus=4), _node("r1", "arm64")]
    totals, counted = node_totals(nodes, TABLE)
    pods = [
        _pod("t1", "1500m", node="a1", gpu=1),  # bound to amd64
        _pod("t1", "500m", arch="arm64"),  # pinned to arm64
        _pod("t2", "250m"),  # anywhere: remainder
        _pod("t2", "2", node="gone"),  # bound to a node we do not count
        _pod("t2", "8", phase="Succeeded"),  # finished: free
        _pod("other", "16", node="a1"),  # not a Yunguan namespace
    ]
    quotas = [
        V1ResourceQuota(
            metadata=V1ObjectMeta(name="yunguan", namespace=ns),
            status=V1ResourceQuotaStatus(used=used),
        )
        for ns, used in [
            ("t1", {"requests.cpu": "2", "requests.nvidia.com/gpu": "1", "pods": "2"}),
            ("t2", {"requests.cpu": "2250m", "pods": "2"}),
            ("other", {"requests.cpu": "16", "pods": "1"}),
        ]
    ]
    usage = quota_usage(quotas, {"t1", "t2"}, TABLE)
    assert usage[RC.VCPU] == Fraction(17, 4)
    used = split_usage(usage, pods, {"t1", "t2"}, totals, counted, TABLE)
    # amd64: 1.5 bound + 0.25 remainder (amd64 has the most cpu) = 1.75 -> 2
    assert used[(RC.VCPU, X86)] == 2
    assert used[(RC.VCPU, ARM)] == 1  # 0.5 pinned -> 1
    assert used[(RC.GPU, X86)] == 1
    assert used[(RC.PODS, X86)] == 2  # the bound pod + the unplaced one
    assert used[(RC.PODS, ARM)] == 1
