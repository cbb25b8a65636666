"""`yunguan ledger …` as an operator runs it: real processes, real databases."""

from __future__ import annotations

from pathlib import Path

from controlplane.bootstrap import Container
from controlplane.db.ledger_tables import LedgerSystem
from tests.cli.test_cli import yunguan
from tests.ledger.conftest import ROOMS, count, csv_bytes, seed_workbook, topo  # noqa: F401


def test_ledger_commands(topo: Container, tmp_path: Path) -> None:
    url = topo.settings.database_url
    assert url is not None
    book = tmp_path / "台账.xlsx"
    book.write_bytes(seed_workbook())

    dry = yunguan("ledger", "import", str(book), "--dry-run", url=url)
    assert dry.returncode == 0, dry.stderr
    assert "长沙市政务服务网" in dry.stdout and "create" in dry.stdout
    assert dry.stdout.strip().endswith("(would be written)")
    assert count(topo, LedgerSystem) == 0
    done = yunguan("ledger", "import", str(book), url=url)
    assert done.returncode == 0, done.stderr
    assert "16 created" in done.stdout and count(topo, LedgerSystem) == 7

    gb = tmp_path / "机房.csv"
    gb.write_bytes(csv_bytes(ROOMS, "gb18030"))
    refused = yunguan("ledger", "import", str(gb), url=url)
    assert refused.returncode == 2
    assert refused.stderr.startswith(f"error: {gb} is not valid utf-8 text")
    assert "--encoding gb18030" in refused.stderr and "Traceback" not in refused.stderr
    accepted = yunguan("ledger", "import", str(gb), "--encoding", "gb18030", url=url)
    assert accepted.returncode == 0 and "3 unchanged" in accepted.stdout

    moved = yunguan("ledger", "transition", "cs-data/长沙市政务服务网", "planned", url=url)
    assert moved.returncode == 0, moved.stderr
    assert moved.stdout.strip() == "cs-data/长沙市政务服务网: assessed → planned"
    illegal = yunguan("ledger", "transition", "cs-data/长沙市政务服务网", "accepted", url=url)
    assert illegal.returncode == 2
    assert "cannot go from planned to accepted" in illegal.stderr

    blocked = yunguan("ledger", "room-check", "cs-data/长沙数据局机房", url=url)
    assert blocked.returncode == 3
    assert "5 blocker(s)" in blocked.stdout and "CS-SRV-0001" in blocked.stdout

    shown = yunguan("ledger", "progress", "--prefecture", "changsha", url=url)
    assert shown.returncode == 0, shown.stderr
    assert (
        "cs-data" in shown.stdout and "cs-2026-1" in shown.stdout and "zz-data" not in shown.stdout
    )

    out = tmp_path / "export.xlsx"
    exported = yunguan("ledger", "export", str(out), url=url)
    assert exported.returncode == 0 and out.exists()
    again = yunguan("ledger", "import", str(out), url=url)
    assert again.returncode == 0 and "16 unchanged" in again.stdout
