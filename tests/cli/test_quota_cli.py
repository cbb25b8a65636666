"""`yunguan capacity|quota|request` as an admin runs them: real processes, both backends."""

from __future__ import annotations

import re

from controlplane.bootstrap import Container
from tests.cli.test_cli import yunguan
from tests.db.quota_world import make_world


def test_capacity_grants_requests_and_the_tree(container: Container) -> None:
    make_world(container)
    url = container.settings.effective_database_url

    def ok(*args: str) -> str:
        done = yunguan(*args, url=url)
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert "allocatable 3900" in ok(
        "capacity", "set", "provincial", "vcpu", "1000", "--reserved", "100"
    )
    assert "granted 400" in ok("quota", "grant", "changsha", "provincial", "vcpu", "400")
    ok("quota", "grant", "cs-data", "provincial", "vcpu", "100")
    ok("quota", "auto-approve", "changsha", "vcpu=8")
    assert (
        ok(
            "request",
            "file",
            "cs-data-portal",
            "vcpu=8",
            "--cloud",
            "provincial",
            "--reason",
            "portal",
        )
        .strip()
        .endswith("approved")
    )
    filed = ok(
        "request", "file", "cs-data-portal", "vcpu=200", "--cloud", "provincial", "--reason", "more"
    )
    request_id = re.search(r"request (\d+): pending", filed)
    assert request_id is not None
    rid = request_id.group(1)
    listed = ok("request", "list", "--state", "pending")
    assert rid in listed and "pending" in listed

    approved = ok("request", "approve", rid)
    assert "approved; cs-data-portal now has vcpu 208" in approved
    again = yunguan("request", "approve", rid, url=url)
    assert again.returncode == 2
    assert again.stderr.strip() == f"error: request {rid} is approved; it cannot become approved"

    tree = ok("quota", "tree", "--cloud", "provincial")
    assert "hunan pool vcpu: limit 3900, granted 400, free 3500" in tree
    assert "cs-data (department): granted 208, to children 208" in tree
    assert "provincial" in ok("capacity", "show", "--cloud", "provincial")
    assert ok("quota", "check").startswith("quota trees sound")
    assert "intact" in ok("audit", "verify")  # the CLI audits every change it makes


def test_refusals_are_one_line_and_change_nothing(container: Container) -> None:
    make_world(container)
    url = container.settings.effective_database_url
    assert yunguan("capacity", "set", "provincial", "vcpu", "10", url=url).returncode == 0

    cases = {
        ("capacity", "set", "nscc-changsha", "vcpu", "10"): "does not support vcpu",
        ("quota", "grant", "changsha", "wuhan", "vcpu", "1"): "no cloud 'wuhan'",
        (
            "quota",
            "grant",
            "changsha",
            "provincial",
            "vcpu",
            "41",
        ): "vcpu: requested 41, granted 0, free 40 up to 'hunan'",
        (
            "request",
            "file",
            "cs-data-portal",
            "vcpu=-3",
            "--cloud",
            "provincial",
            "--reason",
            "x",
        ): "must be > 0",
    }
    for args, message in cases.items():
        done = yunguan(*args, url=url)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert done.stderr.startswith("error: ") and message in done.stderr, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1
        assert "Traceback" not in done.stderr
    tree = yunguan("quota", "tree", "--cloud", "provincial", url=url)
    assert "granted 0, free 40" in tree.stdout and "changsha" not in tree.stdout
