"""Enumerations shared by the whole control plane.

Values are the wire and database spelling: changing one is a schema change.
"""

from enum import StrEnum


class OrgLevel(StrEnum):
    """Levels of the organisation tree, root first."""

    PROVINCE = "province"
    PREFECTURE = "prefecture"
    DEPARTMENT = "department"
    PROJECT = "project"


class CloudKind(StrEnum):
    """The management API a cloud speaks; picks the provider adapter."""

    OPENSTACK = "openstack"
    KUBERNETES = "kubernetes"
    SLURM = "slurm"


class CloudRole(StrEnum):
    """The place a cloud holds in the 1+1+N+14 plan."""

    PROVINCIAL = "provincial"
    PREFECTURE = "prefecture"
    INDUSTRY = "industry"
    XINCHUANG = "xinchuang"
    SUPERCOMPUTING = "supercomputing"
    AI = "ai"
    PUBLIC = "public"


class Architecture(StrEnum):
    """CPU architectures, spelled as `uname -m` prints them.

    Xinchuang hardware: Kunpeng and Phytium are aarch64, Hygon is x86_64,
    Loongson is loongarch64 (older Loongson mips64el), Sunway is sw_64.
    """

    X86_64 = "x86_64"
    AARCH64 = "aarch64"
    LOONGARCH64 = "loongarch64"
    MIPS64EL = "mips64el"
    SW_64 = "sw_64"


class ResourceClass(StrEnum):
    """Quota-able resources, each in one canonical integer unit."""

    VCPU = "vcpu"
    MEMORY_MIB = "memory_mib"
    DISK_GIB = "disk_gib"
    INSTANCES = "instances"
    FLOATING_IPS = "floating_ips"
    GPU = "gpu"
    PODS = "pods"
    HPC_CPU = "hpc_cpu"
    HPC_GPU = "hpc_gpu"
    HPC_CORE_HOURS = "hpc_core_hours"


_SUPPORTED: dict[CloudKind, frozenset[ResourceClass]] = {
    CloudKind.OPENSTACK: frozenset(
        {
            ResourceClass.VCPU,
            ResourceClass.MEMORY_MIB,
            ResourceClass.DISK_GIB,
            ResourceClass.INSTANCES,
            ResourceClass.FLOATING_IPS,
            ResourceClass.GPU,
        }
    ),
    CloudKind.KUBERNETES: frozenset(
        {
            ResourceClass.VCPU,
            ResourceClass.MEMORY_MIB,
            ResourceClass.DISK_GIB,
            ResourceClass.GPU,
            ResourceClass.PODS,
        }
    ),
    CloudKind.SLURM: frozenset(
        {
            ResourceClass.HPC_CPU,
            ResourceClass.HPC_GPU,
            ResourceClass.MEMORY_MIB,
            ResourceClass.HPC_CORE_HOURS,
        }
    ),
}


def supported_classes(kind: CloudKind) -> frozenset[ResourceClass]:
    """The resource classes a cloud of this kind can enforce as quota."""
    return _SUPPORTED[kind]
