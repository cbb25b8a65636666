"""`yunguan user|token|audit` as an admin runs them."""

from __future__ import annotations

import os
import subprocess

from sqlalchemy import create_engine, text

from tests.cli.test_cli import YUNGUAN
from tests.conftest import SAMPLE, TEST_SECRET_KEY
from tests.secrets_scan import register_secret


def run(*args: str, url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "YUNGUAN_DATABASE_URL": url, "YUNGUAN_SECRET_KEY": TEST_SECRET_KEY}
    return subprocess.run(
        [YUNGUAN, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_bootstrap_admin_then_tamper_and_verify(migrated_url: str, backend: str) -> None:
    assert run("topology", "apply", str(SAMPLE), url=migrated_url).returncode == 0
    try:
        made = run("user", "create", "root-admin", "--role", "province-admin", url=migrated_url)
        assert made.returncode == 0, made.stderr
        line, token = made.stdout.strip().splitlines()
        register_secret(token)
        assert line.startswith("created root-admin (province-admin); token id ")
        assert token.startswith("ygt_")

        no_scope = run("user", "create", "x", "--role", "department-member", url=migrated_url)
        assert no_scope.returncode == 2
        assert no_scope.stderr.strip() == "error: role department-member needs --scope"
        dup = run("user", "create", "root-admin", "--role", "province-admin", url=migrated_url)
        assert dup.stderr.strip() == "error: user 'root-admin' already exists"

        bound = run(
            "user", "bind", "root-admin", "--role", "auditor", "--scope", "hunan", url=migrated_url
        )
        assert bound.returncode == 0, bound.stderr
        wrong_level = run(
            "user",
            "bind",
            "root-admin",
            "--role",
            "department-member",
            "--scope",
            "changsha",
            url=migrated_url,
        )
        assert wrong_level.returncode == 2
        assert "role department-member is bound to a department" in wrong_level.stderr

        ok = run("audit", "verify", url=migrated_url)
        assert ok.returncode == 0, ok.stderr
        assert ok.stdout.strip() == "audit chain intact: 2 entries"

        engine = create_engine(migrated_url)
        with engine.begin() as conn:
            conn.execute(text("UPDATE audit_log SET after = NULL WHERE seq = 2"))
        engine.dispose()
        broken = run("audit", "verify", url=migrated_url)
        assert broken.returncode == 1
        assert broken.stderr.strip() == (
            "error: audit chain broken at entry 2: content does not match its hash "
            "(1 entries verified before it)"
        )
        assert token not in made.stderr
    finally:
        run("db", "downgrade", "base", url=migrated_url)
        run("db", "upgrade", url=migrated_url)
