"""Where each org node and cloud sits, for the labels of every series.

Read once per render from `org_nodes` (by materialised path) and `clouds`:
a node's `prefecture` is the prefecture on its path, or the province's code
when there is none (the province itself, provincial departments and their
projects); its `department` is the department on its path ("" above it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from controlplane.db.tables import Cloud, OrgNode
from controlplane.vocabulary import OrgLevel


@dataclass(frozen=True)
class Place:
    code: str
    level: OrgLevel
    prefecture: str
    department: str  # "" for the province and prefectures


@dataclass(frozen=True)
class CloudPlace:
    id: int
    code: str
    name: str
    kind: str
    role: str
    prefecture: str  # the owner: a prefecture, or the province
    overcommit: dict[str, float]
    enabled: bool

    def ratio(self, resource_class: str) -> float:
        return float(self.overcommit.get(resource_class, 1.0))


class Places:
    def __init__(self, nodes: list[Any], clouds: list[Any]) -> None:
        levels = {n.code: OrgLevel(n.level) for n in nodes}
        root = next((n.code for n in nodes if n.level == OrgLevel.PROVINCE.value), "")
        self.province = root
        self.nodes: dict[int, Place] = {}
        for n in nodes:
            codes = [c for c in n.path.split("/") if c]
            prefecture = next((c for c in codes if levels.get(c) is OrgLevel.PREFECTURE), root)
            department = next((c for c in codes if levels.get(c) is OrgLevel.DEPARTMENT), "")
            self.nodes[n.id] = Place(n.code, levels[n.code], prefecture, department)
        self.clouds: dict[int, CloudPlace] = {
            c.id: CloudPlace(
                c.id,
                c.code,
                c.name,
                c.kind,
                c.role,
                self.nodes[c.owner_id].prefecture if c.owner_id in self.nodes else root,
                dict(c.overcommit or {}),
                bool(c.enabled),
            )
            for c in clouds
        }
        self.ids = {n.code: n.id for n in nodes}
        self.by_code = {place.code: place for place in self.nodes.values()}

    @classmethod
    def read(cls, session: Session) -> Places:
        nodes = session.execute(select(OrgNode.id, OrgNode.code, OrgNode.level, OrgNode.path)).all()
        clouds = session.execute(
            select(
                Cloud.id,
                Cloud.code,
                Cloud.name,
                Cloud.kind,
                Cloud.role,
                Cloud.owner_id,
                Cloud.overcommit,
                Cloud.enabled,
            ).order_by(Cloud.code)
        ).all()
        return cls(list(nodes), list(clouds))

    def enabled_clouds(self) -> list[CloudPlace]:
        return [c for c in self.clouds.values() if c.enabled]
