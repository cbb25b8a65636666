"""Slurm account names from org codes: deterministic, safe, bounded, distinct."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from providers.base import ProviderRejected
from providers.slurm.naming import MAX_ACCOUNT_LEN, account_name, is_safe_account, is_safe_user


def test_plain_codes_keep_their_spelling() -> None:
    assert account_name("changsha") == "yg-changsha"
    assert account_name("cs-data-portal") == "yg-cs-data-portal"


def test_long_code_is_cut_and_hashed() -> None:
    code = "cs-data-" + "x" * 55  # a valid 63-character topology code
    name = account_name(code)
    assert len(name) == MAX_ACCOUNT_LEN
    assert name.startswith("yg-cs-data-x") and name == account_name(code)
    assert account_name(code[:-1] + "y") != name  # same stem, different hash


def test_unusual_characters_never_reach_slurm() -> None:
    for code in ("Hunan", "长沙", "a b,c=d", "x set GrpTRES=cpu=9"):
        name = account_name(code)
        assert is_safe_account(name), name
        assert name != "yg-" + code.lower()
    assert account_name("长沙") != account_name("株洲")


def test_empty_code_is_refused() -> None:
    with pytest.raises(ProviderRejected):
        account_name("")


@given(st.text(min_size=1, max_size=80))
def test_every_name_is_safe_and_bounded(code: str) -> None:
    name = account_name(code)
    assert is_safe_account(name) and len(name) <= MAX_ACCOUNT_LEN


@given(st.from_regex(r"[a-z][a-z0-9-]{0,62}", fullmatch=True),
       st.from_regex(r"[a-z][a-z0-9-]{0,62}", fullmatch=True))
def test_distinct_topology_codes_get_distinct_names(a: str, b: str) -> None:
    if a != b:
        assert account_name(a) != account_name(b)


def test_user_names() -> None:
    assert is_safe_user("alice") and is_safe_user("svc_hpc.01")
    assert not is_safe_user("Alice") and not is_safe_user("a b") and not is_safe_user("-x")
