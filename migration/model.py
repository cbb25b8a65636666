"""The words of the migration ledger (上云台账): business systems, server rooms,
IT assets and waves, and the rules that concern one object at a time.

Called by the state machine, the import validation, the progress arithmetic and
the ledger store in `controlplane.ledgerstore`. Values of every enum are the
wire and database spelling; `label()` gives the Chinese words the departments'
spreadsheets use, accepted on import next to the English values.

Pure: no web framework, ORM, Celery or SDK (import-linter enforces it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from controlplane.vocabulary import CloudRole


class Classification(StrEnum):
    """涉密 systems never move onto the e-government cloud and leave the rate."""

    NON_CLASSIFIED = "non-classified"
    CLASSIFIED = "classified"


class ArchitectureRequirement(StrEnum):
    """What the system's software runs on; `xinchuang` needs a Xinchuang cloud
    (Kunpeng/Phytium aarch64, Hygon x86_64, Loongson), whatever its ISA."""

    ANY = "any"
    X86_64 = "x86_64"
    XINCHUANG = "xinchuang"


class Origin(StrEnum):
    """Existing systems move; new and rebuilt ones are built on the cloud first."""

    EXISTING = "existing"
    NEW = "new"
    REBUILT = "rebuilt"


class SystemState(StrEnum):
    INVENTORIED = "inventoried"
    ASSESSED = "assessed"
    PLANNED = "planned"
    MIGRATING = "migrating"
    CUT_OVER = "cut-over"
    ACCEPTED = "accepted"
    EXEMPTED = "exempted"
    ROLLED_BACK = "rolled-back"
    DECOMMISSIONED = "decommissioned"


class RoomStatus(StrEnum):
    ACTIVE = "active"
    CONSOLIDATING = "consolidating"
    RETIRED = "retired"


class AssetKind(StrEnum):
    SERVER = "server"
    STORAGE = "storage"
    NETWORK = "network"
    SECURITY = "security"


class AssetStatus(StrEnum):
    IN_USE = "in-use"
    IDLE = "idle"
    RETIRED = "retired"
    DISPOSED = "disposed"


# A system in one of these no longer counts as work left (burn-down, room retirement).
FINISHED_STATES = frozenset(
    {SystemState.ACCEPTED, SystemState.EXEMPTED, SystemState.DECOMMISSIONED}
)
# An asset in one of these no longer holds a room open.
GONE_ASSET_STATUSES = frozenset({AssetStatus.RETIRED, AssetStatus.DISPOSED})
# Import may create systems only in these; later states need evidence or approval.
IMPORTABLE_NEW_STATES = frozenset({SystemState.INVENTORIED, SystemState.ASSESSED})
# The clouds of the integrated government cloud; `public` ones are outside it.
GOVERNMENT_CLOUD_ROLES = frozenset(set(CloudRole) - {CloudRole.PUBLIC})

# Keyed by enum class: `RoomStatus.RETIRED == AssetStatus.RETIRED` as strings, yet
# a room is 已撤销 and an asset 已退役.
_LABELS: dict[type[StrEnum], dict[str, str]] = {
    Classification: {
        Classification.NON_CLASSIFIED: "非涉密",
        Classification.CLASSIFIED: "涉密",
    },
    ArchitectureRequirement: {
        ArchitectureRequirement.ANY: "不限",
        ArchitectureRequirement.X86_64: "x86",
        ArchitectureRequirement.XINCHUANG: "信创",
    },
    Origin: {
        Origin.EXISTING: "存量",
        Origin.NEW: "新建",
        Origin.REBUILT: "改建",
    },
    SystemState: {
        SystemState.INVENTORIED: "已盘点",
        SystemState.ASSESSED: "已评估",
        SystemState.PLANNED: "已计划",
        SystemState.MIGRATING: "迁移中",
        SystemState.CUT_OVER: "已割接",
        SystemState.ACCEPTED: "已验收",
        SystemState.EXEMPTED: "已豁免",
        SystemState.ROLLED_BACK: "已回退",
        SystemState.DECOMMISSIONED: "已下线",
    },
    RoomStatus: {
        RoomStatus.ACTIVE: "使用中",
        RoomStatus.CONSOLIDATING: "整合中",
        RoomStatus.RETIRED: "已撤销",
    },
    AssetKind: {
        AssetKind.SERVER: "服务器",
        AssetKind.STORAGE: "存储",
        AssetKind.NETWORK: "网络设备",
        AssetKind.SECURITY: "安全设备",
    },
    AssetStatus: {
        AssetStatus.IN_USE: "在用",
        AssetStatus.IDLE: "闲置",
        AssetStatus.RETIRED: "已退役",
        AssetStatus.DISPOSED: "已处置",
    },
}


def label(member: StrEnum) -> str | None:
    """The Chinese word for an enum value, as the departments' sheets write it."""
    return _LABELS.get(type(member), {}).get(member.value)


MLPS_LEVELS = (1, 2, 3, 4)  # 等保 1–4; level 5 systems are never on a shared cloud


@dataclass(frozen=True)
class Exemption:
    """A recorded approval to stay off the government cloud (or out of the plan)."""

    reason: str
    approver: str

    def is_complete(self) -> bool:
        return bool(self.reason.strip()) and bool(self.approver.strip())


@dataclass(frozen=True)
class TargetCloud:
    """What the rules need to know of a cloud."""

    code: str
    role: CloudRole
    architectures: tuple[str, ...]

    @property
    def is_government(self) -> bool:
        return self.role in GOVERNMENT_CLOUD_ROLES


@dataclass(frozen=True)
class Wave:
    code: str
    name: str
    scope: str  # org code: the province, a prefecture or a department
    starts_on: date
    ends_on: date

    def is_past(self, today: date) -> bool:
        return self.ends_on < today


def target_problem(requirement: ArchitectureRequirement, cloud: TargetCloud) -> str | None:
    """Why `cloud` cannot host a system with `requirement`, or None when it can."""
    if requirement is ArchitectureRequirement.XINCHUANG and cloud.role is not CloudRole.XINCHUANG:
        return f"the system requires Xinchuang; cloud {cloud.code!r} is a {cloud.role.value} cloud"
    if (
        requirement is ArchitectureRequirement.X86_64
        and ArchitectureRequirement.X86_64.value not in cloud.architectures
    ):
        offers = ", ".join(cloud.architectures)
        return f"the system requires x86_64; cloud {cloud.code!r} offers {offers}"
    return None


def new_system_gate(
    origin: Origin,
    classification: Classification,
    target: TargetCloud | None,
    exemption: Exemption | None,
) -> str | None:
    """The "new systems on the cloud first" rule: a new or rebuilt non-classified
    system with no target, or a target outside the government cloud, needs a
    recorded exemption approval (reason and approver). Returns the refusal."""
    if origin is Origin.EXISTING or classification is Classification.CLASSIFIED:
        return None
    if target is not None and target.is_government:
        return None
    if exemption is not None and exemption.is_complete():
        return None
    where = (
        "no target cloud"
        if target is None
        else f"target {target.code!r} outside the government cloud"
    )
    return (
        f"a {origin.value} non-classified system with {where} needs a recorded exemption "
        "approval (exemption reason and approver)"
    )
