"""The difference between a topology document and what is stored; pure.

`plan()` compares a validated document with a snapshot of the database and
returns the changes to make, or the problems that forbid them (a code reused
at another level, a cloud changing kind, a second province). Applying and
printing a plan are someone else's job (`topology.apply`, the CLI).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from controlplane.topology.model import CloudSpec, TopologyDocument
from controlplane.vocabulary import OrgLevel, Problem


class Action(StrEnum):
    CREATE = "create"
    UPDATE = "update"
    DELETE = "delete"


@dataclass(frozen=True)
class OrgRecord:
    code: str
    name: str
    level: OrgLevel
    parent: str | None


@dataclass(frozen=True)
class Change:
    action: Action
    entity: str  # "province", "prefecture", "department", "project" or "cloud"
    code: str
    fields: dict[str, tuple[Any, Any]] = field(default_factory=dict)

    def describe(self) -> str:
        sign = {Action.CREATE: "+", Action.UPDATE: "~", Action.DELETE: "-"}[self.action]
        detail = ", ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in self.fields.items())
        return f"{sign} {self.entity} {self.code}" + (f" ({detail})" if detail else "")


@dataclass
class Plan:
    org: list[tuple[Change, OrgRecord]] = field(default_factory=list)
    clouds: list[tuple[Change, dict[str, Any]]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def changes(self) -> list[Change]:
        return [c for c, _ in self.org] + [c for c, _ in self.clouds]

    @property
    def empty(self) -> bool:
        return not self.org and not self.clouds


def cloud_record(spec: CloudSpec) -> dict[str, Any]:
    """The stored form of a cloud spec: plain JSON-able values keyed like the table."""
    return {
        "code": spec.code,
        "name": spec.name,
        "kind": spec.kind.value,
        "role": spec.role.value,
        "owner": spec.owner,
        "architectures": [a.value for a in spec.architectures],
        "region": spec.region,
        "connection": spec.connection.model_dump(exclude_none=True),
        "overcommit": {rc.value: ratio for rc, ratio in sorted(spec.overcommit.items())},
        "accelerators": list(spec.accelerators),
        "enabled": spec.enabled,
    }


def desired_org(doc: TopologyDocument) -> list[tuple[str, OrgRecord]]:
    """Every org node of the document, parents before children, with its path."""
    out = [("province", OrgRecord(doc.province.code, doc.province.name, OrgLevel.PROVINCE, None))]
    out += [
        (f"prefectures[{i}]", OrgRecord(p.code, p.name, OrgLevel.PREFECTURE, doc.province.code))
        for i, p in enumerate(doc.prefectures)
    ]
    out += [
        (f"departments[{i}]", OrgRecord(d.code, d.name, OrgLevel.DEPARTMENT, d.parent))
        for i, d in enumerate(doc.departments)
    ]
    out += [
        (f"projects[{i}]", OrgRecord(p.code, p.name, OrgLevel.PROJECT, p.department))
        for i, p in enumerate(doc.projects)
    ]
    return out


def _org_changes(doc: TopologyDocument, stored: dict[str, OrgRecord], plan: Plan) -> set[str]:
    stored_province = next((r for r in stored.values() if r.level is OrgLevel.PROVINCE), None)
    if stored_province and stored_province.code != doc.province.code:
        plan.problems.append(
            Problem(
                "province.code",
                f"this installation already manages province {stored_province.code!r}",
            )
        )
    wanted: set[str] = set()
    for where, rec in desired_org(doc):
        wanted.add(rec.code)
        old = stored.get(rec.code)
        if old is None:
            plan.org.append((Change(Action.CREATE, rec.level.value, rec.code), rec))
            continue
        if old.level is not rec.level:
            plan.problems.append(
                Problem(f"{where}.code", f"{rec.code!r} already exists as a {old.level.value}")
            )
            continue
        fields = {
            k: (getattr(old, k), getattr(rec, k))
            for k in ("name", "parent")
            if getattr(old, k) != getattr(rec, k)
        }
        if fields:
            plan.org.append((Change(Action.UPDATE, rec.level.value, rec.code, fields), rec))
    return wanted


def plan(
    doc: TopologyDocument,
    stored_org: dict[str, OrgRecord],
    stored_clouds: dict[str, dict[str, Any]],
    *,
    prune: bool = False,
) -> Plan:
    result = Plan()
    wanted_org = _org_changes(doc, stored_org, result)

    wanted_clouds: set[str] = set()
    for i, spec in enumerate(doc.clouds):
        rec = cloud_record(spec)
        wanted_clouds.add(spec.code)
        old = stored_clouds.get(spec.code)
        if old is None:
            result.clouds.append((Change(Action.CREATE, "cloud", spec.code), rec))
            continue
        if old["kind"] != rec["kind"]:
            result.problems.append(
                Problem(
                    f"clouds[{i}].kind",
                    f"cloud {spec.code!r} is {old['kind']}; a kind never changes "
                    "(register a new cloud instead)",
                )
            )
            continue
        fields = {k: (old[k], v) for k, v in rec.items() if old.get(k) != v}
        if fields:
            result.clouds.append((Change(Action.UPDATE, "cloud", spec.code, fields), rec))

    if prune:
        for code in sorted(set(stored_clouds) - wanted_clouds):
            result.clouds.append((Change(Action.DELETE, "cloud", code), stored_clouds[code]))
        # Children before parents, so restrictions fire only for real references.
        depth = {OrgLevel.PROJECT: 0, OrgLevel.DEPARTMENT: 1, OrgLevel.PREFECTURE: 2}
        doomed = [r for c, r in stored_org.items() if c not in wanted_org]
        for node in sorted(doomed, key=lambda r: (depth.get(r.level, 3), r.code)):
            result.org.append((Change(Action.DELETE, node.level.value, node.code), node))
    return result
