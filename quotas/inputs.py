"""Checking what callers send before anything is read or written: resource
classes, amounts, supported classes, request items, reasons.

Each failure is an InvalidInputError with a stable code and the offending
field named (a `Problem`), which the API renders as a 422 problem body.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from controlplane.vocabulary import InvalidInputError, Problem, ResourceClass, supported_classes
from quotas.model import MAX_AMOUNT, CloudRef, RequestItem

MAX_REASON = 2000


def parse_class(value: str | ResourceClass, where: str) -> ResourceClass:
    try:
        return ResourceClass(value)
    except ValueError:
        known = ", ".join(c.value for c in ResourceClass)
        raise InvalidInputError(
            f"{where}: unknown resource class {value!r} (known: {known})",
            code="quota.unknown_class",
            problems=[Problem(where, f"unknown resource class {value!r}")],
            extra={"resource_class": str(value)},
        ) from None


def check_amount(amount: int, where: str, *, allow_zero: bool) -> None:
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise InvalidInputError(
            f"{where}: an amount is a whole number", code="quota.invalid_amount"
        )
    low = 0 if allow_zero else 1
    if amount < low or amount > MAX_AMOUNT:
        bound = "≥ 0" if allow_zero else "> 0"
        raise InvalidInputError(
            f"{where}: amount {amount} must be {bound} and ≤ {MAX_AMOUNT}",
            code="quota.invalid_amount",
            problems=[Problem(where, f"amount {amount} must be {bound}")],
            extra={"amount": amount},
        )


def check_supported(cloud: CloudRef, classes: Sequence[ResourceClass]) -> None:
    bad = [c for c in classes if not cloud.supports(c)]
    if bad:
        supported = sorted(c.value for c in supported_classes(cloud.kind))
        names = ", ".join(c.value for c in bad)
        raise InvalidInputError(
            f"cloud {cloud.code!r} ({cloud.kind.value}) does not support {names}; "
            f"it supports {', '.join(supported)}",
            code="quota.unsupported_class",
            extra={
                "cloud": cloud.code,
                "kind": cloud.kind.value,
                "unsupported": [c.value for c in bad],
                "supported": supported,
            },
        )


def parse_items(raw: Sequence[Mapping[str, Any]]) -> list[RequestItem]:
    """`[{"resource_class": "vcpu", "delta": 8}, {"resource_class": ..., "absolute": 64}]`."""
    items = []
    for n, entry in enumerate(raw):
        where = f"items[{n}]"
        keys = {"delta", "absolute"} & set(entry)
        if len(keys) != 1 or set(entry) - {"delta", "absolute", "resource_class"}:
            raise InvalidInputError(
                f"{where}: give resource_class and exactly one of delta or absolute",
                code="request.invalid",
                problems=[Problem(where, "give resource_class and one of delta, absolute")],
            )
        (key,) = keys
        cls = parse_class(entry.get("resource_class", ""), f"{where}.resource_class")
        items.append(RequestItem(cls, entry[key], absolute=key == "absolute"))
    return items


def check_items(items: Sequence[RequestItem]) -> tuple[RequestItem, ...]:
    if not items:
        raise InvalidInputError("a request needs at least one item", code="request.invalid")
    seen = set()
    for n, item in enumerate(items):
        check_amount(item.amount, f"items[{n}]", allow_zero=item.absolute)
        if item.resource_class in seen:
            raise InvalidInputError(
                f"items[{n}]: {item.resource_class.value} is listed twice",
                code="request.invalid",
            )
        seen.add(item.resource_class)
    return tuple(sorted(items, key=lambda i: i.resource_class.value))
