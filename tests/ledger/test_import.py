"""Importing and exporting the ledger on both backends: round trips, dry runs and
every malformed input, each with a clear report and nothing written."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select

from controlplane.bootstrap import Container
from controlplane.db.identity_tables import AuditEntry
from controlplane.db.ledger_tables import LedgerAsset, LedgerRoom, LedgerSystem, LedgerWave
from controlplane.db.uow import UnitOfWork
from controlplane.ledgerstore.exporter import export_ledger
from controlplane.ledgerstore.records import load_catalog
from migration.columns import SheetKind
from migration.report import Action
from tests.ledger.conftest import (
    ASSETS,
    ROOMS,
    SYSTEMS,
    WAVES,
    audit_count,
    count,
    csv_bytes,
    run_import,
    seed_workbook,
    seeded,
    xlsx,
)

TABLES = (LedgerWave, LedgerRoom, LedgerSystem, LedgerAsset)


def _counts(c: Container) -> tuple[int, ...]:
    return tuple(count(c, t) for t in TABLES)


def _export(c: Container, name: str, kind: str | None = None) -> bytes:
    with UnitOfWork(c.session_factory) as uow:
        return export_ledger(uow.session, name, None, date(2026, 3, 1), kind)


def test_import_round_trip_is_idempotent(topo: Container) -> None:
    seeded(topo)
    assert _counts(topo) == (2, 3, 7, 4)
    with UnitOfWork(topo.session_factory) as uow:
        catalog = load_catalog(uow.session)
    portal = catalog.systems[("cs-data", "长沙市政务服务网")]
    assert portal["state"] == "assessed" and portal["room"] == "长沙数据局机房"
    assert portal["projects"] == ("cs-data-portal",) and portal["wave"] == "cs-2026-1"
    assert catalog.systems[("cs-data", "长沙市办公平台")]["depends_on"] == ("长沙市政务服务网",)
    assert catalog.systems[("hn-health", "全民健康信息平台")]["depends_on"] == (
        "cs-data/长沙市政务服务网",
    )
    assert catalog.assets["CS-SRV-0001"]["systems"] == ("长沙市办公平台", "长沙市政务服务网")
    assert catalog.assets["CS-STO-0001"]["purchased_on"] == date(2018, 3, 15)
    audited = audit_count(topo)
    assert audited == 5  # one entry per department or wave scope changed, not per row

    again = run_import(topo, "seed.xlsx", seed_workbook())
    assert again.ok and not again.written
    assert again.counts()["unchanged"] == 16 and audit_count(topo) == audited

    exported = _export(topo, "ledger.xlsx")
    back = run_import(topo, "ledger.xlsx", exported)
    assert back.ok, [str(p) for p in back.problems]
    assert back.counts() == {"create": 0, "update": 0, "unchanged": 16, "error": 0}
    assert "progress (a report)" in back.skipped_sheets
    for kind in ("waves", "rooms", "systems", "assets"):
        again = run_import(topo, f"{kind}.csv", _export(topo, f"{kind}.csv", kind))
        assert again.ok and {r.action for r in again.rows} == {Action.UNCHANGED}, kind
    assert _counts(topo) == (2, 3, 7, 4) and audit_count(topo) == audited


def test_dry_run_reports_every_row_and_writes_nothing(topo: Container) -> None:
    report = run_import(topo, "seed.xlsx", seed_workbook(), dry_run=True)
    assert report.ok and not report.written
    assert [(r.sheet, r.row, r.action) for r in report.rows][:3] == [
        ("迁移批次", 2, Action.CREATE),
        ("迁移批次", 3, Action.CREATE),
        ("机房", 2, Action.CREATE),
    ]
    assert len(report.rows) == 16 and _counts(topo) == (0, 0, 0, 0)
    seeded(topo)
    changed = [list(r) for r in SYSTEMS]
    changed[1][14] = "王某"  # an approver without a reason is recorded as given
    report = run_import(topo, "systems.xlsx", xlsx({"systems": changed}), dry_run=True)
    assert report.ok
    updated = [r for r in report.rows if r.action is Action.UPDATE]
    assert [(r.key, r.changed) for r in updated] == [
        ("cs-data/长沙市政务服务网", ["exemption_approver"])
    ]


def _problems(report: object) -> list[str]:
    return [str(p) for p in report.problems]  # type: ignore[attr-defined]


def test_wrong_headers_name_sheet_row_and_column(topo: Container) -> None:
    bad = [
        ["系统名称", "所属部门", "密 级", "等保", "目标云"],
        ["门户", "cs-data", "非涉密", 3, ""],
    ]
    report = run_import(topo, "bad.xlsx", xlsx({"业务系统": [["长沙市政务信息系统台账"], *bad]}))
    problems = _problems(report)
    assert not report.written and report.rows == []
    assert problems[0].startswith("业务系统!2 [D 等保]: unknown column '等保' for systems")
    assert (
        problems[1]
        == "业务系统!2 [等保级别/mlps_level]: required column '等保级别/mlps_level' is missing"
    )
    assert count(topo, LedgerSystem) == 0


def test_every_bad_row_is_reported_and_nothing_is_written(topo: Container) -> None:
    seeded(topo)
    before, audited = _counts(topo), audit_count(topo)
    rows = [
        ["序列号", "所属部门", "所在机房", "资产类型", "资产状态", "购置日期"],
        ["NEW-0001", "cs-data", "长沙数据局机房", "服务器", "在用", "2020-01-01"],  # fine
        ["NEW-0002", "cs-data", "长沙数据局机房", "服务器", "在用", "2020-02-30"],  # bad date
        ["NEW-0003", "wuhan-data", "某机房", "server", "in-use", ""],  # unknown department
        ["NEW-0001", "cs-data", "长沙数据局机房", "存储", "idle", ""],  # duplicate serial
        ["ZZ-SRV-0001", "cs-data", "长沙数据局机房", "server", "in-use", ""],  # keeps a zz system
        ["HN-NET-0001", "hn-health", "省卫健委机房", "网络设备", "在用", ""],  # retired → in-use
        ["NEW-0004", "cs-data", "长沙数据局机房", "打印机", "在用", 44000],  # kind, number date
    ]
    report = run_import(topo, "assets.csv", csv_bytes(rows))
    assert not report.ok and not report.written
    by_row = {r.row: r for r in report.rows}
    assert by_row[2].action is Action.CREATE and by_row[6].action is Action.ERROR
    problems = _problems(report)
    assert (
        "assets!3 [F 购置日期]: '2020-02-30' is not a date (expected e.g. 2026-03-31" in problems[0]
    )
    assert problems[1] == "assets!4 [B 所属部门]: unknown department 'wuhan-data'"
    assert problems[2] == "assets!5 [A 序列号]: NEW-0001 repeats row 2"
    # moving the asset to cs-data would leave it serving a zz-data system
    assert problems[3] == "assets!6 [systems]: no system '株洲市政务服务网' in 'cs-data'"
    assert problems[4].startswith(
        "assets!7 [E 资产状态]: an asset cannot go from retired to in-use"
    )
    assert problems[5].startswith("assets!8 [D 资产类型]: '打印机' is not one of server/服务器")
    assert problems[6].startswith("assets!8 [F 购置日期]: '44000' is not a date")
    assert len(problems) == 7
    assert report.summary().endswith("7 problems, nothing written")
    assert _counts(topo) == before and audit_count(topo) == audited


def test_rules_checked_per_row(topo: Container) -> None:
    seeded(topo)
    header = SYSTEMS[0]
    rows = [
        header,
        # a new system with no target and no exemption: the gate refuses it
        [8, "cs-data", "新建审批系统", "非涉密", 2, "不限", "新建", "", "", "", "", "", "", "", ""],
        # the state of an existing system changes only through transitions
        [1, "cs-data", "长沙市政务服务网", "非涉密", "三级", "x86", "存量", "长沙数据局机房",
         "changsha", "cs-2026-1", "已验收", "cs-data-portal", "", "", ""],
        # a new system cannot start beyond assessed; Xinchuang needs a Xinchuang cloud
        [9, "cs-data", "信创门户", "非涉密", 2, "信创", "存量", "", "changsha", "", "migrating",
         "", "", "", ""],
        # a wave of another prefecture, a project of another department, a missing dependency
        [10, "zz-data", "株洲OA", "非涉密", 2, "不限", "存量", "", "zhuzhou", "cs-2026-1", "",
         "cs-data-portal", "株洲不存在的系统", "", ""],
    ]  # fmt: skip
    report = run_import(topo, "rules.xlsx", xlsx({"systems": rows}))
    problems = _problems(report)
    assert "needs a recorded exemption approval" in problems[0] and problems[0].startswith(
        "systems!2"
    )
    assert problems[1].startswith("systems!3 [K 迁移状态]: the ledger says assessed")
    assert any("a new system starts inventoried or assessed, not migrating" in p for p in problems)
    assert any("the system requires Xinchuang" in p for p in problems)
    assert any("wave 'cs-2026-1' covers 'changsha', not 'zz-data'" in p for p in problems)
    assert any(
        "project 'cs-data-portal' belongs to 'cs-data', not 'zz-data'" in p for p in problems
    )
    assert any("no system '株洲不存在的系统'" in p for p in problems)
    assert count(topo, LedgerSystem) == 7


def test_non_utf8_csv_fails_clearly_unless_the_encoding_is_named(topo: Container) -> None:
    data = csv_bytes(ROOMS, encoding="gb18030")
    report = run_import(topo, "机房.csv", data)
    (problem,) = _problems(report)
    assert "机房.csv is not valid utf-8 text" in problem and "GB18030" in problem
    assert count(topo, LedgerRoom) == 0
    report = run_import(topo, "机房.csv", data, encoding="gb18030")
    assert report.ok and report.counts()["create"] == 3
    assert count(topo, LedgerRoom) == 3


def test_a_text_file_named_xlsx_and_other_unreadable_files(topo: Container) -> None:
    for name, data, expected in [
        ("台账.xlsx", csv_bytes(ROOMS), "named .xlsx but is not an XLSX workbook"),
        ("台账.xlsx", b"PK\x03\x04not really a zip", "is not a readable XLSX workbook"),
        ("台账.xls", bytes.fromhex("d0cf11e0a1b11ae1") + bytes(512), "Excel 97–2003"),
        ("empty.csv", b"", "is empty"),
        ("notes.csv", "随便写点什么\n没有表头\n".encode(), "nothing to import"),
    ]:
        report = run_import(topo, name, data)
        assert not report.ok and not report.written
        assert any(expected in p for p in _problems(report)), (name, _problems(report))
    assert _counts(topo) == (0, 0, 0, 0)


def test_kind_option_and_sheet_detection(topo: Container) -> None:
    unnamed = xlsx({"Sheet1": ROOMS, "Sheet2": WAVES})
    report = run_import(topo, "book.xlsx", unnamed, kind=SheetKind.ROOMS)
    assert report.ok and {r.kind for r in report.rows} == {"rooms"}
    # without --kind each sheet is recognised by its headers
    report = run_import(topo, "book.xlsx", unnamed)
    assert report.ok and {r.kind for r in report.rows} == {"rooms", "waves"}
    assert run_import(topo, "sys.csv", csv_bytes(SYSTEMS), kind=SheetKind.SYSTEMS).ok
    wrong = run_import(topo, "sys.csv", csv_bytes(SYSTEMS), kind=SheetKind.ROOMS)
    assert any("unknown column '密级' for rooms" in p for p in _problems(wrong))


def test_a_sheet_of_50000_rows(topo: Container) -> None:
    seeded(topo)
    header = ASSETS[0]
    rows = [header] + [
        [f"BULK-{i:06d}", "cs-data", "长沙数据局机房", "服务器", "", "", "在用", "2020-01-01"]
        for i in range(50_000)
    ]
    data = xlsx({"资产": rows})
    # A size test, not a timed one: speed belongs in bench/, never in assertions.
    report = run_import(topo, "bulk.xlsx", data)
    assert report.ok, _problems(report)[:5]
    assert report.counts()["create"] == 50_000
    assert count(topo, LedgerAsset) == 50_004
    again = run_import(topo, "bulk.xlsx", data, dry_run=True)
    assert again.counts()["unchanged"] == 50_000
    with UnitOfWork(topo.session_factory) as uow:
        audited = uow.session.scalars(
            select(AuditEntry).where(AuditEntry.action == "migration.import")
        ).all()
        assert audited[-1].after is not None and audited[-1].after["assets_create"] == 50_000
