"""Rooms, the new-system gate, progress arithmetic, headers, cells and file formats (pure)."""

from __future__ import annotations

from datetime import date

import pytest

from controlplane.vocabulary import CloudRole, ConflictError, InvalidInputError
from migration.columns import SheetKind, field_of, kind_of_headers, map_headers
from migration.model import (
    ArchitectureRequirement,
    AssetStatus,
    Classification,
    Exemption,
    Origin,
    RoomStatus,
    SystemState,
    TargetCloud,
    Wave,
    new_system_gate,
    target_problem,
)
from migration.progress import StateCount, WaveMember, rates, wave_progress
from migration.rooms import check_room_transition, retirement_blockers
from migration.rows import parse_row
from migration.sheets import detect_format, read_sheets

S = SystemState
GOV = TargetCloud("changsha", CloudRole.PREFECTURE, ("x86_64",))
PUBLIC = TargetCloud("aliyun", CloudRole.PUBLIC, ("x86_64",))
XC = TargetCloud("xinchuang", CloudRole.XINCHUANG, ("aarch64", "loongarch64"))


def test_room_retirement_lists_every_blocker() -> None:
    blockers = retirement_blockers(
        [
            ("OA", S.ACCEPTED),
            ("门户", S.MIGRATING),
            ("公文", S.EXEMPTED),
            ("旧站", S.DECOMMISSIONED),
        ],
        [("SN1", AssetStatus.RETIRED), ("SN2", AssetStatus.IN_USE), ("SN3", AssetStatus.DISPOSED)],
    )
    assert [(b.kind, b.key, b.state) for b in blockers] == [
        ("system", "门户", "migrating"),
        ("asset", "SN2", "in-use"),
    ]
    with pytest.raises(ConflictError) as err:
        check_room_transition(
            "cs-data/机房", RoomStatus.CONSOLIDATING, RoomStatus.RETIRED, blockers
        )
    assert err.value.code == "migration.room_not_retirable"
    assert "门户" in err.value.message and "SN2" in err.value.message
    check_room_transition("cs-data/机房", RoomStatus.CONSOLIDATING, RoomStatus.RETIRED, [])
    with pytest.raises(ConflictError) as err:
        check_room_transition("cs-data/机房", RoomStatus.ACTIVE, RoomStatus.RETIRED, [])
    assert err.value.code == "migration.room_illegal_transition"


def test_new_system_gate() -> None:
    none = Exemption("", "")
    signed = Exemption("专网承载", "王某")
    assert new_system_gate(Origin.NEW, Classification.NON_CLASSIFIED, GOV, none) is None
    assert new_system_gate(Origin.EXISTING, Classification.NON_CLASSIFIED, None, none) is None
    assert new_system_gate(Origin.NEW, Classification.CLASSIFIED, None, none) is None
    for origin in (Origin.NEW, Origin.REBUILT):
        for target in (None, PUBLIC):
            refusal = new_system_gate(origin, Classification.NON_CLASSIFIED, target, none)
            assert refusal is not None and "exemption approval" in refusal
            assert new_system_gate(origin, Classification.NON_CLASSIFIED, target, signed) is None
    assert (
        new_system_gate(Origin.NEW, Classification.NON_CLASSIFIED, None, Exemption("r", " "))
        is not None
    )


def test_target_must_fit_the_architecture_requirement() -> None:
    assert target_problem(ArchitectureRequirement.XINCHUANG, XC) is None
    assert "requires Xinchuang" in (target_problem(ArchitectureRequirement.XINCHUANG, GOV) or "")
    assert "requires x86_64" in (target_problem(ArchitectureRequirement.X86_64, XC) or "")
    assert target_problem(ArchitectureRequirement.ANY, XC) is None


def test_rates_exclude_classified_and_report_exemptions() -> None:
    def c(dept: str, parent: str, cls: Classification, state: SystemState, n: int) -> StateCount:
        return StateCount(dept, dept, parent, parent, cls, state, n)

    nc, cl = Classification.NON_CLASSIFIED, Classification.CLASSIFIED
    result = rates(
        [
            c("cs-data", "changsha", nc, S.ACCEPTED, 3),
            c("cs-data", "changsha", nc, S.MIGRATING, 1),
            c("cs-data", "changsha", cl, S.INVENTORIED, 5),
            c("cs-health", "changsha", nc, S.ASSESSED, 4),
            c("cs-health", "changsha", nc, S.EXEMPTED, 2),
            c("hn-health", "hunan", nc, S.ACCEPTED, 1),
            c("hn-health", "hunan", nc, S.DECOMMISSIONED, 1),
        ],
        total_scope="hunan",
        total_name="湖南省",
        province="hunan",
    )
    t = result.total
    assert (t.systems, t.classified, t.exempted, t.decommissioned) == (17, 5, 2, 1)
    assert (t.in_scope, t.accepted, t.in_progress, t.not_started) == (9, 4, 1, 4)
    assert t.rate == round(4 / 9, 4)
    by_parent = {r.scope: r for r in result.by_parent}
    assert (
        by_parent["changsha"].rate == round(3 / 8, 4)
        and by_parent["changsha"].level == "prefecture"
    )
    assert by_parent["hunan"].rate == 1.0 and by_parent["hunan"].level == "province"
    by_dept = {r.scope: r for r in result.by_department}
    assert by_dept["cs-data"].rate == 0.75 and by_dept["cs-health"].rate == 0.0


def test_wave_burndown_and_behind_plan() -> None:
    wave = Wave("w", "第一批", "changsha", date(2026, 1, 1), date(2026, 1, 11))
    members = [
        WaveMember(S.ACCEPTED, date(2026, 1, 3)),
        WaveMember(S.EXEMPTED, date(2026, 1, 5)),
        WaveMember(S.MIGRATING, None),
        WaveMember(S.PLANNED, None),
    ]
    on_day_6 = wave_progress(wave, members, date(2026, 1, 6))
    assert not on_day_6.behind_plan and on_day_6.unfinished == 2
    assert [p.remaining for p in on_day_6.burndown] == [4, 4, 3, 3, 2, 2]
    assert on_day_6.burndown[0].ideal == 4.0 and on_day_6.burndown[5].ideal == 2.0
    late = wave_progress(wave, members, date(2026, 2, 1))
    assert late.behind_plan and late.burndown[-1].day == date(2026, 2, 1)
    assert len(late.burndown) <= 120
    done = wave_progress(wave, members[:2], date(2026, 2, 1))
    assert not done.behind_plan and done.burndown[-1].day == date(2026, 1, 11)
    assert wave_progress(wave, members, date(2025, 12, 1)).burndown == []


def test_headers_in_chinese_english_or_both() -> None:
    assert field_of(SheetKind.SYSTEMS, "等保级别") == "mlps_level"
    assert field_of(SheetKind.SYSTEMS, "MLPS Level") == "mlps_level"
    assert field_of(SheetKind.SYSTEMS, "等保级别/mlps_level") == "mlps_level"
    assert field_of(SheetKind.SYSTEMS, "系统名称（name）*") == "name"
    assert field_of(SheetKind.SYSTEMS, "密 级") == "classification"
    mapping, problems = map_headers(
        SheetKind.SYSTEMS, ["序号", "系统名称", "所属部门", "等保", "Name"]
    )
    assert [p.column for p in problems] == [3, 4, -1]
    texts = " | ".join(p.message for p in problems)
    assert "unknown column '等保'" in texts and "repeats column 2" in texts
    assert "required column '等保级别/mlps_level' is missing" in texts
    assert mapping == {1: "name", 2: "department"}
    assert kind_of_headers(["序列号", "所在机房"]) is SheetKind.ASSETS
    assert kind_of_headers(["name", "department", "classification"]) is SheetKind.SYSTEMS
    assert kind_of_headers(["name", "department"]) is None


def test_cells() -> None:
    row = parse_row(
        SheetKind.SYSTEMS,
        5,
        {"name": " 门户 ", "department": "cs-data", "mlps_level": "等保三级",
         "classification": "涉密", "state": "已评估", "projects": "a；b、a", "origin": None},
    )  # fmt: skip
    assert row.ok
    assert (
        row.values["mlps_level"] == 3 and row.values["classification"] is Classification.CLASSIFIED
    )
    assert row.values["state"] is S.ASSESSED and row.values["projects"] == ("a", "b")
    assert row.values["origin"] is Origin.EXISTING and row.values["name"] == "门户"
    bad = parse_row(
        SheetKind.SYSTEMS, 6, {"name": "", "mlps_level": "五级", "classification": "机密"}
    )
    assert {p.field for p in bad.problems} == {"name", "mlps_level", "classification"}
    wave = parse_row(
        SheetKind.WAVES, 2, {"code": "w", "starts_on": "2026-13-01", "ends_on": "2026年1月1日"}
    )
    assert [p.field for p in wave.problems] == ["starts_on"]
    assert "is not a date" in wave.problems[0].message
    backwards = parse_row(SheetKind.WAVES, 2, {"starts_on": "2026-02-01", "ends_on": "2026-01-01"})
    assert backwards.problems[0].field == "ends_on"


def test_file_formats_are_told_apart_by_content() -> None:
    with pytest.raises(
        InvalidInputError, match=r"named \.xlsx but is not an XLSX workbook \(its content is text\)"
    ):
        detect_format("台账.xlsx", "系统名称,所属部门\n".encode())
    with pytest.raises(InvalidInputError, match="Excel 97"):
        detect_format("old.xls", bytes.fromhex("d0cf11e0a1b11ae1") + b"\0" * 100)
    with pytest.raises(InvalidInputError, match="not a readable XLSX"):
        read_sheets("broken.xlsx", b"PK\x03\x04garbage")
    gb = "系统名称,所属部门,等保级别\n门户,cs-data,3\n".encode("gb18030")
    with pytest.raises(InvalidInputError) as err:
        read_sheets("台账.csv", gb)
    assert "not valid utf-8" in err.value.message and "GB18030" in err.value.message
    assert "--encoding gb18030" in err.value.message
    (sheet,) = read_sheets("台账.csv", gb, encoding="gb18030")
    assert sheet.headers == ["系统名称", "所属部门", "等保级别"] and sheet.rows[0][1][0] == "门户"
    with pytest.raises(InvalidInputError, match="is empty"):
        read_sheets("empty.csv", b"  \n")
