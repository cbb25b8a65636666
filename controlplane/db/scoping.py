"""SQL filters for scopes: org paths compared by prefix, inside the query.

Filtering in SQL (never in Python after the fact) keeps pagination honest:
a page holds only what the caller may see.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, false, literal, or_
from sqlalchemy.orm import QueryableAttribute

PathColumn = ColumnElement[str] | QueryableAttribute[str]


def within_clause(path: PathColumn, scopes: tuple[str, ...]) -> ColumnElement[bool]:
    """`path` lies in one of the scopes' subtrees (false when there are none)."""
    return or_(false(), *[path.startswith(s) for s in scopes])


def on_path_clause(path: PathColumn, scopes: tuple[str, ...]) -> ColumnElement[bool]:
    """`path` is within a scope or an ancestor of one (the way down is visible)."""
    return or_(false(), *[or_(path.startswith(s), literal(s).startswith(path)) for s in scopes])
