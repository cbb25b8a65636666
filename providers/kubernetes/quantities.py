"""Kubernetes resource quantities (`500m`, `2Gi`, `1.5`, `1e3`), parsed and printed exactly.

Every number Yunguan reads from or writes to a ResourceQuota, a LimitRange or
a Node passes through here. Values are `fractions.Fraction`, never floats: a
quota of `1536Mi` must come back as exactly 1536 MiB, and `0.1` CPU must not
become 0.1000000000000000055.

Grammar (what the apiserver prints, and what it accepts minus its laxities)::

    quantity   = [sign] digits [suffix]
    digits     = DIGITS ["." [DIGITS]] | "." DIGITS      ("1.", "01" and ".5" are legal)
    suffix     = binary | decimal | exponent
    binary     = Ki | Mi | Gi | Ti | Pi | Ei              (powers of 1024)
    decimal    = n | u | m | "" | k | M | G | T | P | E   (powers of 1000)
    exponent   = (e | E) [sign] DIGITS                    ("1e3"; "1E" alone is exa)

The apiserver also accepts " 1", "." and "e3" on input (it trims and reads an
empty number as 0) but never prints them; we refuse them rather than guess.

Printing follows apimachinery's `Quantity.String()` for an uncached value
(checked against the real v1.20 apiserver in
tests/contract/kubernetes/test_quantities_apiserver.py): the mantissa is an
integer, the decimal exponent a multiple of 3 (`1.5` -> `1500m`, `2000` ->
`2k`), binary values are printed in the largest exact power of 1024 (`2048Mi`
-> `2Gi`, `1536` stays `1536`), and a binary value below 1024 or with a
fraction is printed as decimal. Two apiserver behaviours we deliberately do
not copy: it rounds every ResourceList value UP to milli precision on write,
and it prints a DecimalSI value above 999E without its suffix (`1000E` comes
back as `1`); we never write either kind of value.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from enum import StrEnum
from fractions import Fraction


class InvalidQuantityError(ValueError):
    """Raised for text that is not a Kubernetes quantity, or a value we cannot print exactly."""


class QuantityFormat(StrEnum):
    """How a quantity prints; inferred from the suffix it was written with."""

    DECIMAL_SI = "DecimalSI"
    BINARY_SI = "BinarySI"
    DECIMAL_EXPONENT = "DecimalExponent"


@dataclass(frozen=True)
class Quantity:
    value: Fraction
    format: QuantityFormat

    def __str__(self) -> str:
        return format_quantity(self.value, self.format)


_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}  # powers of 1024
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_DECIMAL_SUFFIX = {exp: suffix for suffix, exp in _DECIMAL.items()}
_BINARY_SUFFIX = {exp: suffix for suffix, exp in _BINARY.items()}

# The exponent alternative comes first so "1E3" is an exponent and "1E" is exa.
_QUANTITY = re.compile(
    r"(?P<sign>[+-]?)"
    r"(?P<int>[0-9]*)(?:\.(?P<frac>[0-9]*))?"
    r"(?P<suffix>[eE][+-]?[0-9]+|Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?"
)
# Bounds that keep a hostile or corrupt value from turning into a gigantic
# Fraction (10**10**9 would exhaust memory). Real quantities are int64-sized.
_MAX_DIGITS = 64
_MAX_EXPONENT = 64


def parse_quantity(text: str) -> Quantity:
    """The exact value of a quantity string, and the format it was written in."""
    match = _QUANTITY.fullmatch(text)
    if match is None:
        raise InvalidQuantityError(f"not a Kubernetes quantity: {text!r}")
    whole, frac = match["int"], match["frac"] or ""
    if not whole and not frac:
        raise InvalidQuantityError(f"not a Kubernetes quantity (no digits): {text!r}")
    if len(whole) + len(frac) > _MAX_DIGITS:
        raise InvalidQuantityError(f"quantity has too many digits: {text[:40]!r}…")
    mantissa = Fraction(int(whole or "0") * 10 ** len(frac) + int(frac or "0"), 10 ** len(frac))
    suffix = match["suffix"] or ""
    if suffix in _BINARY:
        value, fmt = mantissa * 1024 ** _BINARY[suffix], QuantityFormat.BINARY_SI
    elif suffix in _DECIMAL:
        value, fmt = mantissa * Fraction(10) ** _DECIMAL[suffix], QuantityFormat.DECIMAL_SI
    else:
        exponent = int(suffix[1:])
        if abs(exponent) > _MAX_EXPONENT:
            raise InvalidQuantityError(f"quantity exponent out of range: {text!r}")
        value, fmt = mantissa * Fraction(10) ** exponent, QuantityFormat.DECIMAL_EXPONENT
    return Quantity(-value if match["sign"] == "-" else value, fmt)


def parse_value(text: str) -> Fraction:
    return parse_quantity(text).value


def format_quantity(value: Fraction | int, fmt: QuantityFormat = QuantityFormat.DECIMAL_SI) -> str:
    """The canonical spelling of `value`, as the apiserver prints it.

    Refuses values below nano precision or with a non-decimal fraction (1/3):
    Kubernetes cannot store them exactly, and we never write them.
    """
    value = Fraction(value)
    if value == 0:
        return "0"
    sign, magnitude = ("-" if value < 0 else ""), abs(value)
    if fmt is QuantityFormat.BINARY_SI:
        if magnitude >= 1024 and magnitude.denominator == 1:
            number, power = magnitude.numerator, 0
            while number % 1024 == 0 and power < max(_BINARY_SUFFIX):
                number, power = number // 1024, power + 1
            return f"{sign}{number}{_BINARY_SUFFIX.get(power, '')}"
        fmt = QuantityFormat.DECIMAL_SI  # as apimachinery does: no rounding, no confusion
    mantissa, exponent = _decimal_parts(magnitude)
    # Exponent a multiple of 3, mantissa grows instead (1.5 -> 1500e-3).
    shift = exponent % 3
    mantissa, exponent = mantissa * 10**shift, exponent - shift
    if fmt is QuantityFormat.DECIMAL_EXPONENT:
        return f"{sign}{mantissa}{'' if exponent == 0 else f'e{exponent}'}"
    if exponent < min(_DECIMAL_SUFFIX):
        raise InvalidQuantityError(f"{value} is below nano precision")
    if exponent > max(_DECIMAL_SUFFIX):
        # Past exa there is no suffix: keep E and grow the mantissa (the
        # apiserver drops the suffix here, which changes the value).
        mantissa, exponent = mantissa * 10 ** (exponent - 18), 18
    return f"{sign}{mantissa}{_DECIMAL_SUFFIX[exponent]}"


def _decimal_parts(magnitude: Fraction) -> tuple[int, int]:
    """(m, e) with magnitude == m * 10**e, m an integer without trailing zeros."""
    denominator = magnitude.denominator
    twos = fives = 0
    while denominator % 2 == 0:
        denominator, twos = denominator // 2, twos + 1
    while denominator % 5 == 0:
        denominator, fives = denominator // 5, fives + 1
    if denominator != 1:
        raise InvalidQuantityError(f"{magnitude} has no exact decimal form")
    scale = max(twos, fives)
    mantissa, exponent = magnitude.numerator * 10**scale // magnitude.denominator, -scale
    while mantissa % 10 == 0:
        mantissa, exponent = mantissa // 10, exponent + 1
    return mantissa, exponent


def canonical(text: str) -> str:
    """`text` re-spelled canonically in its own format (`2048Mi` -> `2Gi`)."""
    quantity = parse_quantity(text)
    return format_quantity(quantity.value, quantity.format)


def floor_units(value: Fraction, unit: int) -> int:
    """Whole units contained in value (limits: never claim more than is enforced)."""
    return math.floor(value / unit)


def ceil_units(value: Fraction, unit: int) -> int:
    """Units needed to hold value (usage: a started unit counts as used)."""
    return math.ceil(value / unit)
