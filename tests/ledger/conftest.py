"""Fixtures of the migration-ledger tests: the sample topology on both backends,
a seeded ledger as a workbook, and helpers to import, transition and sync."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

import pytest
from openpyxl import Workbook
from sqlalchemy import func, select

from controlplane.bootstrap import Container
from controlplane.db.identity_tables import AuditEntry
from controlplane.db.uow import UnitOfWork
from controlplane.identity.audit import AuditContext
from controlplane.ledgerstore.importer import import_ledger
from controlplane.ledgerstore.inventory import ObservedItem, replace_cloud_inventory
from controlplane.ledgerstore.systems import find_system, transition
from controlplane.topology.apply import apply_topology
from controlplane.topology.document import load_document
from migration.model import SystemState
from migration.report import ImportReport
from migration.states import Transition, TransitionRequest
from tests.conftest import SAMPLE

CTX = AuditContext(None, source="test")

WAVES = [
    ["批次编号", "批次名称", "范围", "开始日期", "结束日期"],
    ["cs-2026-1", "长沙第一批", "changsha", date(2026, 1, 1), date(2026, 3, 31)],
    ["hn-2026-1", "省直第一批", "hunan", "2026-02-01", "2026年6月30日"],
]
ROOMS = [
    ["所属部门", "机房名称", "地址", "机房状态"],
    ["cs-data", "长沙数据局机房", "长沙市岳麓区银杉路", "使用中"],
    ["zz-data", "株洲数据局机房", "株洲市天元区", "active"],
    ["hn-health", "省卫健委机房", "长沙市开福区", "active"],
]
SYSTEMS = [
    ["序号", "所属部门", "系统名称", "密级", "等保级别", "架构要求", "建设类型", "当前位置",
     "目标云", "迁移批次", "迁移状态", "关联项目", "依赖系统", "豁免理由", "豁免审批人"],
    [1, "cs-data", "长沙市政务服务网", "非涉密", "三级", "x86", "存量", "长沙数据局机房",
     "changsha", "cs-2026-1", "已评估", "cs-data-portal", "", "", ""],
    [2, "长沙市数据资源管理局", "长沙市公文交换", "涉密", 2, "不限", "存量", "长沙数据局机房",
     "", "", "", "", "", "", ""],
    [3, "cs-data", "长沙市办公平台", "非涉密", "2", "any", "existing", "长沙数据局机房",
     "changsha", "", "inventoried", "", "长沙市政务服务网", "", ""],
    [4, "zz-data", "株洲市政务服务网", "non-classified", 3, "any", "existing", "株洲数据局机房",
     "zhuzhou", "", "", "zz-data-portal", "", "", ""],
    [5, "hn-health", "全民健康信息平台", "非涉密", "第三级", "不限", "存量", "省卫健委机房",
     "provincial", "hn-2026-1", "已评估", "hn-health-hrp", "cs-data/长沙市政务服务网", "", ""],
    [6, "hn-health", "疫苗追溯新系统", "非涉密", 2, "信创", "新建", "",
     "xinchuang", "", "", "", "", "", ""],
    [7, "hn-health", "专网影像系统", "非涉密", 3, "不限", "改建", "省卫健委机房",
     "", "", "", "", "", "专网承载，需本地部署", "省政务管理服务局 王某"],
]  # fmt: skip
ASSETS = [
    ["序列号", "所属部门", "所在机房", "资产类型", "品牌型号", "承载系统", "资产状态", "购置日期"],
    ["CS-SRV-0001", "cs-data", "长沙数据局机房", "服务器", "华为 2288H V5",
     "长沙市政务服务网；长沙市办公平台", "在用", date(2019, 5, 1)],
    ["CS-STO-0001", "cs-data", "长沙数据局机房", "存储", "OceanStor 5300", "",
     "闲置", "2018/03/15"],
    ["ZZ-SRV-0001", "zz-data", "株洲数据局机房", "server", "", "株洲市政务服务网", "in-use", ""],
    ["HN-NET-0001", "hn-health", "省卫健委机房", "网络设备", "", "", "已退役", "2015-01-01"],
]  # fmt: skip


@pytest.fixture
def topo(container: Container) -> Container:
    apply_topology(container.session_factory, load_document(SAMPLE), source=str(SAMPLE))
    return container


def xlsx(sheets: dict[str, Sequence[Sequence[Any]]]) -> bytes:
    book = Workbook(write_only=True)
    for title, rows in sheets.items():
        ws = book.create_sheet(title)
        for row in rows:
            ws.append(list(row))
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def csv_bytes(rows: Sequence[Sequence[Any]], encoding: str = "utf-8") -> bytes:
    out = io.StringIO(newline="")
    csv.writer(out).writerows(rows)
    return out.getvalue().encode(encoding)


def seed_workbook() -> bytes:
    return xlsx({"迁移批次": WAVES, "机房": ROOMS, "业务系统": SYSTEMS, "资产": ASSETS})


def run_import(c: Container, name: str, data: bytes, **kw: Any) -> ImportReport:
    with UnitOfWork(c.session_factory) as uow:
        report = import_ledger(uow.session, name, data, ctx=CTX, **kw)
        if report.written:
            uow.commit()
    return report


def seeded(c: Container) -> Container:
    report = run_import(c, "seed.xlsx", seed_workbook())
    assert report.ok, [str(p) for p in report.problems]
    return c


def move(c: Container, system: str, to: SystemState, **kw: Any) -> Transition:
    with UnitOfWork(c.session_factory) as uow:
        t = transition(
            uow.session, find_system(uow.session, system), TransitionRequest(to, **kw), CTX
        )
        uow.commit()
    return t


def sync(
    c: Container, cloud: str, items: Sequence[ObservedItem], at: datetime | None = None
) -> None:
    with UnitOfWork(c.session_factory) as uow:
        replace_cloud_inventory(uow.session, cloud, items, at or datetime.now(UTC))
        uow.commit()


def count(c: Container, model: Any) -> int:
    with UnitOfWork(c.session_factory) as uow:
        return uow.session.scalar(select(func.count()).select_from(model)) or 0


def audit_count(c: Container) -> int:
    return count(c, AuditEntry)
