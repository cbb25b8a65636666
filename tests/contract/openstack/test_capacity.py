"""Capacity per architecture, from Placement, on a Xinchuang-like mix of nodes.

The testbed has one fake x86 compute node without an architecture trait. The
test adds resource providers as the Xinchuang cloud has them (Kunpeng aarch64
with a nested vGPU provider, Loongson loongarch64 via a custom trait, Hygon
x86_64), with inventories, traits and one allocation, and checks that the
report grows by exactly those amounts under the right architecture. All of
them carry the run's prefix and are deleted at the end.
"""

from __future__ import annotations

import contextlib
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from openstack import exceptions as sdk_exc
from openstack.connection import Connection

from controlplane.vocabulary import Architecture, ResourceClass
from providers.base import CapacityReport, CloudProvider
from providers.openstack.capacity import architecture_of
from tests.contract.openstack.conftest import OsTestbed, RunClouds

MV = "1.36"
LOONG = "CUSTOM_HW_ARCH_LOONGARCH64"  # os-traits has no LoongArch yet: a custom trait
X86, ARM = Architecture.X86_64, Architecture.AARCH64


@pytest.mark.parametrize(
    ("traits", "expected"),
    [
        (["COMPUTE_NODE", "HW_ARCH_X86_64"], Architecture.X86_64),
        (["HW_ARCH_AARCH64"], Architecture.AARCH64),
        ([LOONG], Architecture.LOONGARCH64),
        (["HW_ARCH_MIPS64EL"], Architecture.MIPS64EL),
        (["CUSTOM_HW_ARCH_SW_64"], Architecture.SW_64),
        (["HW_ARCH_PPC64LE"], None),
        (["COMPUTE_NODE"], None),
    ],
)
def test_architecture_from_traits(traits: list[str], expected: Architecture | None) -> None:
    assert architecture_of(traits) is expected


def call(admin: Connection, method: str, path: str, body: Any = None) -> Any:
    response = admin.placement.request(path, method, json=body, microversion=MV)
    sdk_exc.raise_from_response(response)
    return response.json() if response.content else None


class Providers:
    """Resource providers created by one test, deleted (children first) after it."""

    def __init__(self, admin: Connection, prefix: str) -> None:
        self.admin, self.prefix, self.created = admin, prefix, []

    def add(
        self,
        name: str,
        inventories: dict[str, dict[str, Any]],
        traits: list[str],
        parent: str | None = None,
    ) -> str:
        body: dict[str, Any] = {"name": f"{self.prefix}-{name}", "uuid": str(uuid.uuid4())}
        if parent:
            body["parent_provider_uuid"] = parent
        rp = call(self.admin, "POST", "/resource_providers", body)
        self.created.append(rp["uuid"])
        generation = rp["generation"]
        if inventories:
            generation = call(
                self.admin,
                "PUT",
                f"/resource_providers/{rp['uuid']}/inventories",
                {"resource_provider_generation": generation, "inventories": inventories},
            )["resource_provider_generation"]
        if traits:
            call(
                self.admin,
                "PUT",
                f"/resource_providers/{rp['uuid']}/traits",
                {"resource_provider_generation": generation, "traits": traits},
            )
        return str(rp["uuid"])

    def delete(self) -> None:
        for rp in reversed(self.created):
            with contextlib.suppress(sdk_exc.SDKException):
                call(self.admin, "DELETE", f"/resource_providers/{rp}")


@pytest.fixture
def providers(testbed: OsTestbed, test_clouds: RunClouds) -> Iterator[Providers]:
    created = Providers(testbed.admin, test_clouds.run)
    call(testbed.admin, "PUT", f"/traits/{LOONG}")
    yield created
    created.delete()
    with contextlib.suppress(sdk_exc.SDKException):  # 409 while another provider has it
        call(testbed.admin, "DELETE", f"/traits/{LOONG}")


def totals(report: CapacityReport) -> Counter[tuple[ResourceClass, Architecture | None, str]]:
    out: Counter[tuple[ResourceClass, Architecture | None, str]] = Counter()
    for e in report.entries:
        for what, value in (
            ("total", e.total),
            ("reserved", e.reserved),
            ("used", e.used),
            ("allocatable", e.allocatable),
        ):
            out[(e.resource_class, e.architecture, what)] += value
    return out


def test_capacity_is_reported_per_architecture(
    provider: CloudProvider, testbed: OsTestbed, providers: Providers
) -> None:
    before = totals(provider.read_capacity())
    kunpeng = providers.add(
        "kunpeng-01",
        {
            "VCPU": {"total": 96, "reserved": 2, "allocation_ratio": 2.0},
            "MEMORY_MB": {"total": 262144, "reserved": 4096, "allocation_ratio": 1.0},
            "DISK_GB": {"total": 2000, "allocation_ratio": 1.0},
        },
        ["HW_ARCH_AARCH64"],
    )
    # A vGPU provider nested under the Kunpeng node: it inherits aarch64.
    providers.add(
        "kunpeng-01-vgpu", {"VGPU": {"total": 4, "allocation_ratio": 1.0}}, [], parent=kunpeng
    )
    providers.add(
        "loongson-01",
        {
            "VCPU": {"total": 64, "allocation_ratio": 1.0},
            "MEMORY_MB": {"total": 131072, "allocation_ratio": 1.0},
        },
        [LOONG],
    )
    providers.add("hygon-01", {"VCPU": {"total": 64, "allocation_ratio": 4.0}}, ["HW_ARCH_X86_64"])
    consumer = str(uuid.uuid4())
    call(
        testbed.admin,
        "PUT",
        f"/allocations/{consumer}",
        {
            "allocations": {kunpeng: {"resources": {"VCPU": 8, "MEMORY_MB": 16384}}},
            "project_id": testbed.admin.current_project_id,
            "user_id": testbed.admin.current_user_id,
            "consumer_generation": None,
        },
    )
    try:
        report = provider.read_capacity()
    finally:
        call(testbed.admin, "DELETE", f"/allocations/{consumer}")

    grown = totals(report) - before
    vcpu, mem, gpu = ResourceClass.VCPU, ResourceClass.MEMORY_MIB, ResourceClass.GPU
    loong = Architecture.LOONGARCH64
    assert grown[(vcpu, ARM, "total")] == 96 and grown[(vcpu, ARM, "reserved")] == 2
    assert grown[(vcpu, ARM, "allocatable")] == 188  # (96 - 2) * 2.0
    assert grown[(vcpu, ARM, "used")] == 8 and grown[(mem, ARM, "used")] == 16384
    assert grown[(mem, ARM, "total")] == 262144 and grown[(mem, ARM, "reserved")] == 4096
    assert grown[(gpu, ARM, "total")] == 4
    assert grown[(vcpu, loong, "total")] == 64 and grown[(mem, loong, "total")] == 131072
    assert grown[(vcpu, X86, "allocatable")] == 256  # 64 * 4.0
    assert grown[(ResourceClass.DISK_GIB, None, "total")] == 2000  # disk has no architecture
    archs = {e.architecture for e in report.entries if e.resource_class is vcpu}
    assert {ARM, loong, X86} <= archs
    # Different allocation ratios are never merged into one (wrong) ratio.
    ratios = {
        (e.architecture, e.allocation_ratio) for e in report.entries if e.resource_class is vcpu
    }
    assert (ARM, 2.0) in ratios and (X86, 4.0) in ratios
