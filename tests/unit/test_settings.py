"""Settings: prefix, nesting, config file, and no insecure production start."""

from __future__ import annotations

from pathlib import Path

import pytest

from controlplane.settings import DEV_SECRET_KEY, Mode, get_settings
from controlplane.vocabulary import InvalidInputError


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "YUNGUAN_MODE",
        "YUNGUAN_SECRET_KEY",
        "YUNGUAN_DATABASE_URL",
        "YUNGUAN_CONFIG_FILE",
    ):
        monkeypatch.delenv(name, raising=False)


def test_env_prefix_and_nested(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YUNGUAN_DATABASE_URL", "postgresql+psycopg://db/yunguan")
    monkeypatch.setenv("YUNGUAN_API__PORT", "9090")
    s = get_settings()
    assert s.effective_database_url == "postgresql+psycopg://db/yunguan"
    assert s.api.port == 9090
    assert s.mode is Mode.PRODUCTION


def test_config_file_below_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "yunguan.yaml"
    cfg.write_text("mode: dev\napi:\n  port: 7000\n  host: 0.0.0.0\n", encoding="utf-8")
    monkeypatch.setenv("YUNGUAN_CONFIG_FILE", str(cfg))
    monkeypatch.setenv("YUNGUAN_API__PORT", "7001")
    s = get_settings()
    assert s.mode is Mode.DEV
    assert s.api.host == "0.0.0.0"
    assert s.api.port == 7001


def test_invalid_value_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YUNGUAN_API__PORT", "eighty")
    with pytest.raises(InvalidInputError, match=r"invalid configuration: api\.port"):
        get_settings()


def test_embedded_default_is_an_sqlite_file(tmp_path: Path) -> None:
    s = get_settings(mode=Mode.DEV, data_dir=tmp_path)
    assert s.effective_database_url == f"sqlite:///{tmp_path / 'yunguan.db'}"
    assert s.effective_secret_key == DEV_SECRET_KEY


@pytest.mark.parametrize("secret", [None, DEV_SECRET_KEY, "short"])
def test_production_refuses_missing_dev_or_weak_secret(secret: str | None) -> None:
    s = get_settings(database_url="postgresql+psycopg://db/y", secret_key=secret)
    with pytest.raises(InvalidInputError, match="refusing to start in production mode") as info:
        s.check_production_ready()
    assert info.value.code == "config.insecure"


def test_production_needs_a_database_url() -> None:
    s = get_settings(secret_key="x" * 40)
    with pytest.raises(InvalidInputError, match="YUNGUAN_DATABASE_URL"):
        s.check_production_ready()


def test_production_ready() -> None:
    get_settings(
        secret_key="x" * 40, database_url="postgresql+psycopg://db/y"
    ).check_production_ready()


def test_secret_is_not_in_repr() -> None:
    s = get_settings(secret_key="very-secret-value-1234567890-abcdef")
    assert "very-secret-value" not in repr(s)
