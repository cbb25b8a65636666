"""The throwaway world of `bench/metrics_scrape.py`, bulk-inserted.

The province, 14 prefectures, two departments per prefecture plus six
provincial ones, the projects spread over the departments; 14 prefecture
clouds (each owned by its prefecture) and the rest owned by the province. A
project holds grants on every provincial cloud and on its own prefecture's
cloud, as the grant tree requires; pools, envelopes, department and project
grants carry consistent derived sums; every project grant has observed usage.
Also sync status, capacity and quota observations, operations, requests and a
migration ledger of one system per project. Rows go in with Core `INSERT`s:
the exporter reads rows and does not care how they got there.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, insert

from controlplane.db.ledger_tables import LedgerAsset, LedgerRoom, LedgerSystem, LedgerWave
from controlplane.db.quota_tables import QuotaGrant, QuotaRequestRow, QuotaUsage
from controlplane.db.tables import Cloud, OrgNode
from controlplane.db.worker_tables import (
    CapacityObservation,
    Operation,
    QuotaObservation,
    SyncStatus,
)
from controlplane.vocabulary import ResourceClass

PREFECTURES = [
    "changsha",
    "zhuzhou",
    "xiangtan",
    "hengyang",
    "shaoyang",
    "yueyang",
    "changde",
    "zhangjiajie",
    "yiyang",
    "chenzhou",
    "yongzhou",
    "huaihua",
    "loudi",
    "xiangxi",
]
PROVINCIAL_DEPARTMENTS = 6
PROJECT_GRANT = 100
NOW = datetime.now(UTC)


class Seeder:
    def __init__(self, engine: Engine, clouds: int, projects: int, classes: int) -> None:
        self.engine = engine
        self.n_clouds, self.n_projects = clouds, projects
        self.classes = [c.value for c in ResourceClass][:classes]
        self._id = 0

    def next_id(self) -> int:
        self._id += 1
        return self._id

    def run(self) -> None:
        with self.engine.begin() as conn:
            self.conn = conn
            self.org()
            self.clouds()
            self.grants()
            self.worker_rows()
            self.requests()
            self.ledger()

    def org(self) -> None:
        def node(code: str, level: str, parent: dict[str, Any] | None) -> dict[str, Any]:
            path = (parent["path"] if parent else "/") + code + "/"
            return {
                "id": self.next_id(),
                "code": code,
                "name": code,
                "level": level,
                "parent_id": parent["id"] if parent else None,
                "path": path,
                "created_at": NOW,
                "updated_at": NOW,
            }

        self.province = node("hunan", "province", None)
        self.prefectures = [node(p, "prefecture", self.province) for p in PREFECTURES]
        self.departments = [
            node(f"hn-dept-{i}", "department", self.province) for i in range(PROVINCIAL_DEPARTMENTS)
        ]
        for p in self.prefectures:
            self.departments += [node(f"{p['code']}-dept-{i}", "department", p) for i in range(2)]
        self.projects = [
            node(f"proj-{i:05d}", "project", self.departments[i % len(self.departments)])
            for i in range(self.n_projects)
        ]
        self.parent = {n["id"]: n for n in [self.province, *self.prefectures, *self.departments]}
        self.conn.execute(
            insert(OrgNode),
            [self.province, *self.prefectures, *self.departments, *self.projects],
        )

    def clouds(self) -> None:
        n_pref = min(len(PREFECTURES), max(self.n_clouds - 1, 0))
        owners = [self.province] * (self.n_clouds - n_pref) + self.prefectures[:n_pref]
        self.cloud_rows = []
        for i, owner in enumerate(owners):
            own = owner["level"] == "prefecture"
            code = f"{owner['code']}-cloud" if own else f"provincial-{i}"
            self.cloud_rows.append(
                {
                    "id": self.next_id(),
                    "code": code,
                    "name": code,
                    "kind": "openstack",
                    "role": "prefecture" if own else "provincial",
                    "owner_id": owner["id"],
                    "architectures": ["x86_64", "aarch64"],
                    "region": code,
                    "connection": {"kind": "openstack", "cloud": code},
                    "overcommit": {"vcpu": 4.0},
                    "accelerators": [],
                    "enabled": True,
                    "created_at": NOW,
                    "updated_at": NOW,
                }
            )
        self.conn.execute(insert(Cloud), self.cloud_rows)

    def _under(self, node: dict[str, Any], ancestor: dict[str, Any]) -> bool:
        return bool(node["path"].startswith(ancestor["path"]))

    def grants(self) -> None:
        """Per cloud × class: pool → top-level → departments → projects, sums consistent."""
        grants: list[dict[str, Any]] = []
        usage: list[dict[str, Any]] = []
        rank = {"province": 0, "prefecture": 1, "department": 2, "project": 3}
        for cloud in self.cloud_rows:
            owner = self.parent[cloud["owner_id"]]
            projects = [p for p in self.projects if self._under(p, owner)]
            granted: dict[int, int] = {}
            for p in projects:  # roll the project grants up the tree
                node = p
                while node["id"] != owner["id"]:
                    granted[node["id"]] = granted.get(node["id"], 0) + PROJECT_GRANT
                    node = self.parent[node["parent_id"]]
            children: dict[int, int] = {}
            for node_id, amount in granted.items():
                parent_id = self._node(node_id)["parent_id"]
                children[parent_id] = children.get(parent_id, 0) + amount
            for cls in self.classes:
                total = 2 * sum(granted[p["id"]] for p in projects) + 1000
                grants.append(
                    {
                        "cloud_id": cloud["id"],
                        "resource_class": cls,
                        "node_id": owner["id"],
                        "level_rank": rank[owner["level"]],
                        "is_pool": True,
                        "granted": 0,
                        "allocated": children.get(owner["id"], 0),
                        "consumed": 0,
                        "total": total,
                        "capacity_reserved": 0,
                        "oversubscription": 1.0,
                        "capacity_source": "observed",
                        "generation": 1,
                        "updated_at": NOW,
                    }
                )
                for node_id, amount in granted.items():
                    node = self._node(node_id)
                    grants.append(
                        {
                            "cloud_id": cloud["id"],
                            "resource_class": cls,
                            "node_id": node_id,
                            "level_rank": rank[node["level"]],
                            "is_pool": False,
                            "granted": amount,
                            "allocated": children.get(node_id, 0),
                            "consumed": 0,
                            "total": 0,
                            "capacity_reserved": 0,
                            "oversubscription": 1.0,
                            "capacity_source": None,
                            "generation": 1,
                            "updated_at": NOW,
                        }
                    )
                usage += [
                    {
                        "cloud_id": cloud["id"],
                        "resource_class": cls,
                        "node_id": p["id"],
                        "used": PROJECT_GRANT * 3 // 5,
                        "observed_at": NOW,
                    }
                    for p in projects
                ]
        self.conn.execute(insert(QuotaGrant), grants)
        self.conn.execute(insert(QuotaUsage), usage)
        self.n_grants, self.n_usage = len(grants), len(usage)

    def _node(self, node_id: int) -> dict[str, Any]:
        if node_id in self.parent:
            return self.parent[node_id]
        return self._projects_by_id()[node_id]

    def _projects_by_id(self) -> dict[int, dict[str, Any]]:
        if not hasattr(self, "_pid"):
            self._pid = {p["id"]: p for p in self.projects}
        return self._pid

    def worker_rows(self) -> None:
        sync, capacity, observations, ops = [], [], [], []
        for cloud in self.cloud_rows:
            for kind in ("health", "capacity", "quotas", "inventory"):
                sync.append(
                    {
                        "cloud_id": cloud["id"],
                        "kind": kind,
                        "provider_up": True,
                        "last_attempt_at": NOW,
                        "last_success_at": NOW,
                        "last_duration_s": 0.8,
                        "errors_total": 1,
                        "calls_total": 100,
                        "last_error_code": None,
                    }
                )
            for cls in self.classes:
                for arch in ("x86_64", "aarch64"):
                    capacity.append(
                        {
                            "cloud_id": cloud["id"],
                            "resource_class": cls,
                            "architecture": arch,
                            "total": 10_000,
                            "reserved": 100,
                            "allocation_ratio": 4.0,
                            "used": 5000,
                            "observed_at": NOW,
                        }
                    )
            owner = self.parent[cloud["owner_id"]]
            for p in (p for p in self.projects if self._under(p, owner)):
                observations += [
                    {
                        "cloud_id": cloud["id"],
                        "project_id": p["id"],
                        "resource_class": cls,
                        "limit": PROJECT_GRANT,
                        "granted": PROJECT_GRANT,
                        "drift": False,
                        "observed_at": NOW,
                    }
                    for cls in self.classes
                ]
                ops.append(
                    {
                        "kind": "provision",
                        "cloud_id": cloud["id"],
                        "node_id": p["id"],
                        "scope_path": p["path"],
                        "target_generation": 1,
                        "status": "failed" if p["id"] % 50 == 0 else "succeeded",
                        "attempts": 1,
                        "reason": "event",
                        "created_at": NOW,
                        "updated_at": NOW,
                    }
                )
        for table, rows in (
            (SyncStatus, sync),
            (CapacityObservation, capacity),
            (QuotaObservation, observations),
            (Operation, ops),
        ):
            self.conn.execute(insert(table), rows)

    def requests(self) -> None:
        rows = [
            {
                "project_id": p["id"],
                "cloud_id": self.cloud_rows[0]["id"],
                "items": [{"resource_class": "vcpu", "delta": 8}],
                "reason": "bench",
                "state": "pending" if i % 4 == 0 else "applied",
                "requested_by": "bench",
                "generation": 1,
                "created_at": NOW - timedelta(hours=i % 100),
                "updated_at": NOW,
            }
            for i, p in enumerate(self.projects[: max(1, len(self.projects) // 4)])
        ]
        self.conn.execute(insert(QuotaRequestRow), rows)

    def ledger(self) -> None:
        waves = [
            {
                "id": self.next_id(),
                "code": f"wave-{p['code']}",
                "name": p["code"],
                "scope_id": p["id"],
                "starts_on": date(2026, 1, 1),
                "ends_on": date(2026, 6, 30),
                "created_at": NOW,
                "updated_at": NOW,
            }
            for p in self.prefectures
        ]
        self.conn.execute(insert(LedgerWave), waves)
        rooms = [
            {
                "id": self.next_id(),
                "department_id": d["id"],
                "name": f"room-{d['code']}",
                "status": "active",
                "created_at": NOW,
                "updated_at": NOW,
            }
            for d in self.departments
        ]
        self.conn.execute(insert(LedgerRoom), rooms)
        room_of = {r["department_id"]: r["id"] for r in rooms}
        wave_of = {w["scope_id"]: w["id"] for w in waves}
        states = ["inventoried", "assessed", "planned", "migrating", "accepted", "exempted"]
        systems = []
        for i, p in enumerate(self.projects):
            dept = self.parent[p["parent_id"]]
            state = states[i % len(states)]
            systems.append(
                {
                    "department_id": dept["id"],
                    "name": f"system-{i}",
                    "mlps_level": 2,
                    "room_id": room_of[dept["id"]] if state != "accepted" else None,
                    "wave_id": wave_of.get(dept["parent_id"]) if state != "inventoried" else None,
                    "state": state,
                    "state_changed_at": NOW,
                    "created_at": NOW,
                    "updated_at": NOW,
                    "exemption_reason": "bench" if state == "exempted" else None,
                    "exemption_approver": "bench" if state == "exempted" else None,
                }
            )
        self.conn.execute(insert(LedgerSystem), systems)
        assets = [
            {
                "serial": f"SN-{i:06d}",
                "kind": "server",
                "room_id": rooms[i % len(rooms)]["id"],
                "status": ("in-use", "idle", "retired")[i % 3],
                "created_at": NOW,
                "updated_at": NOW,
            }
            for i in range(len(self.projects) // 2)
        ]
        self.conn.execute(insert(LedgerAsset), assets)
