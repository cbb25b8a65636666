"""Kubernetes quantities: exact parsing and canonical printing for every suffix (pure).

The same canonical forms are checked against the real apiserver in
tests/contract/kubernetes/test_quantities_apiserver.py.
"""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from providers.kubernetes.quantities import (
    InvalidQuantityError,
    QuantityFormat,
    canonical,
    ceil_units,
    floor_units,
    format_quantity,
    parse_quantity,
    parse_value,
)

DEC, BIN, EXP = (
    QuantityFormat.DECIMAL_SI,
    QuantityFormat.BINARY_SI,
    QuantityFormat.DECIMAL_EXPONENT,
)
F = Fraction


@pytest.mark.parametrize(
    ("text", "value", "fmt"),
    [
        # decimal SI: every suffix
        ("1n", F(1, 10**9), DEC),
        ("1u", F(1, 10**6), DEC),
        ("500m", F(1, 2), DEC),
        ("1", F(1), DEC),
        ("1k", F(1000), DEC),
        ("1M", F(10**6), DEC),
        ("1G", F(10**9), DEC),
        ("1T", F(10**12), DEC),
        ("1P", F(10**15), DEC),
        ("1E", F(10**18), DEC),
        # binary SI: every suffix
        ("100Ki", F(100 * 1024), BIN),
        ("1Mi", F(2**20), BIN),
        ("2Gi", F(2 * 2**30), BIN),
        ("1Ti", F(2**40), BIN),
        ("1Pi", F(2**50), BIN),
        ("1Ei", F(2**60), BIN),
        # decimal exponent, both letters and signed exponents
        ("1e3", F(1000), EXP),
        ("1E3", F(1000), EXP),
        ("1.5e3", F(1500), EXP),
        ("5e-3", F(5, 1000), EXP),
        ("2e+2", F(200), EXP),
        # fractions, signs and the spellings the apiserver keeps verbatim
        ("1.5", F(3, 2), DEC),
        ("0.1", F(1, 10), DEC),
        (".5", F(1, 2), DEC),
        ("1.", F(1), DEC),
        ("01", F(1), DEC),
        ("+3", F(3), DEC),
        ("-1.5Gi", F(-3 * 2**29), BIN),
        ("1.G", F(10**9), DEC),
        ("0.5Gi", F(2**29), BIN),
        ("1.5Ki", F(1536), BIN),
        ("0", F(0), DEC),
        ("0Gi", F(0), BIN),
        ("123456789e3", F(123456789000), EXP),
    ],
)
def test_parse_exact(text: str, value: Fraction, fmt: QuantityFormat) -> None:
    q = parse_quantity(text)
    assert q.value == value
    assert isinstance(q.value, Fraction)
    assert q.format is fmt


def test_parse_never_goes_through_float() -> None:
    # 0.1 as a float is 0.1000000000000000055...; as a quantity it is exactly 1/10.
    assert parse_value("0.1") * 10 == 1
    assert parse_value("0.3") == parse_value("100m") * 3
    # 2**63 + 1 bytes: beyond float precision, still exact.
    assert parse_value("9223372036854775809") == 2**63 + 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # what the v1.20 apiserver printed for these inputs (see the contract test)
        ("1.5", "1500m"),
        ("1500m", "1500m"),
        ("2048Mi", "2Gi"),
        ("2Gi", "2Gi"),
        ("1e3", "1e3"),
        ("1.5e3", "1500"),
        ("12e5", "1200e3"),
        ("10e2", "1e3"),
        ("1.5e0", "1500e-3"),
        ("100Ki", "100Ki"),
        ("1M", "1M"),
        ("1000k", "1M"),
        ("1000000m", "1k"),
        ("0.5Gi", "512Mi"),
        ("1.5Ki", "1536"),
        ("1.5Mi", "1536Ki"),
        ("2048Ki", "2Mi"),
        ("1025Ki", "1025Ki"),
        ("0.1Mi", "104857600m"),
        (".5", "500m"),
        ("0.1", "100m"),
        ("1536", "1536"),
        ("1024", "1024"),
        ("3.0", "3"),
        ("1.", "1"),
        ("+3", "3"),
        ("01", "1"),
        ("1.50", "1500m"),
        ("1.0Gi", "1Gi"),
        ("0Gi", "0"),
        ("1n", "1n"),
        ("1500n", "1500n"),
        ("1000n", "1u"),
        ("7Ei", "7Ei"),
        ("1E", "1E"),
        ("-1.5", "-1500m"),
        ("-2048Mi", "-2Gi"),
        # past exa: we keep the value (the apiserver prints 1000E as "1")
        ("1000E", "1000E"),
    ],
)
def test_canonical(text: str, expected: str) -> None:
    assert canonical(text) == expected
    assert parse_value(expected) == parse_value(text)


@pytest.mark.parametrize(
    ("value", "fmt", "expected"),
    [
        (4, DEC, "4"),
        (0, DEC, "0"),
        (2048 * 2**20, BIN, "2Gi"),
        (1536 * 2**20, BIN, "1536Mi"),
        (10 * 2**30, BIN, "10Gi"),
        (1023, BIN, "1023"),
        (F(1, 2), BIN, "500m"),  # a binary value below 1024 prints as decimal
        (F(3, 2), EXP, "1500e-3"),
        (1000, EXP, "1e3"),
        (F(1, 1000), DEC, "1m"),
        (2**62, BIN, "4Ei"),
    ],
)
def test_format(value: int | Fraction, fmt: QuantityFormat, expected: str) -> None:
    assert format_quantity(value, fmt) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        " 1",
        "1 ",
        ".",
        "e3",
        "1e",
        "1e+",
        "1K",
        "1ki",
        "1kb",
        "1Ki1",
        "1.2.3",
        "++1",
        "0x10",
        "1_000",
        "∞",
        "NaN",
        "inf",
        "1 Gi",
        "1e1000",  # exponent past our bound: would build an enormous integer
        "1" * 100,  # digits past our bound
        "Gi",
        "-",
    ],
)
def test_garbage_is_refused(text: str) -> None:
    with pytest.raises(InvalidQuantityError):
        parse_quantity(text)


@pytest.mark.parametrize(
    "value",
    [F(1, 3), F(1, 10**10), F(15, 10**10)],
)
def test_values_kubernetes_cannot_hold_are_refused(value: Fraction) -> None:
    with pytest.raises(InvalidQuantityError):
        format_quantity(value, DEC)


def test_invalid_quantity_is_a_value_error() -> None:
    assert issubclass(InvalidQuantityError, ValueError)


_decimal_values = st.builds(
    lambda m, e: Fraction(m) * Fraction(10) ** e,
    st.integers(min_value=-(10**15), max_value=10**15),
    st.integers(min_value=-9, max_value=15),
)


@given(_decimal_values, st.sampled_from([DEC, EXP, BIN]))
def test_round_trip_value(value: Fraction, fmt: QuantityFormat) -> None:
    text = format_quantity(value, fmt)
    assert parse_value(text) == value
    # Canonical spelling is a fixed point. (Not `canonical(text) == text`: a
    # binary value printed without suffix, "10000", reads back as decimal
    # and is then spelled "10k", exactly as the apiserver does.)
    assert canonical(canonical(text)) == canonical(text)
    if fmt is not BIN:
        assert canonical(text) == text


@given(st.integers(min_value=0, max_value=2**62), st.sampled_from(["", "Ki", "Mi", "Gi"]))
def test_round_trip_binary(number: int, suffix: str) -> None:
    text = f"{number}{suffix}"
    value = parse_value(text)
    assert parse_value(canonical(text)) == value


def test_rounding_helpers() -> None:
    # limits floor, usage ceils: 1500m is 1 whole core of limit, 2 cores of use
    assert floor_units(parse_value("1500m"), 1) == 1
    assert ceil_units(parse_value("1500m"), 1) == 2
    assert ceil_units(parse_value("1"), 1) == 1
    assert floor_units(parse_value("1G"), 2**20) == 953  # 10**9 bytes = 953.67 MiB
    assert ceil_units(parse_value("1G"), 2**20) == 954
    assert ceil_units(parse_value("1n"), 1) == 1
    assert floor_units(parse_value("0"), 2**30) == 0
