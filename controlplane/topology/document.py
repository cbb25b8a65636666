"""Reading and validating a topology file; pure, writes nothing.

Called by the CLI (`yunguan topology apply`) and by `yunguan up`. Every
problem found is reported with the file, the path inside the document and
what is wrong, and all of them at once, so an admin fixes a file in one pass.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from controlplane.topology.model import TopologyDocument
from controlplane.vocabulary import CloudKind, InvalidInputError, Problem, supported_classes


def _path(loc: Sequence[int | str]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(document)"


def _pydantic_problems(exc: ValidationError) -> list[Problem]:
    problems = []
    for err in exc.errors(include_url=False):
        # Discriminated unions add the tag to the location (connection.openstack.cloud);
        # the tag is not part of the document, so drop it for a path the admin can find.
        loc = [p for p in err["loc"] if p not in {k.value for k in CloudKind}]
        msg = err["msg"]
        if err["type"] == "enum":
            allowed = err.get("ctx", {}).get("expected", "")
            msg = f"unknown value {err['input']!r} (expected {allowed})"
        elif err["type"] == "extra_forbidden":
            msg = "unknown field"
        problems.append(Problem(_path(loc), msg))
    return problems


def _duplicates(entries: Iterable[tuple[str, str]], what: str) -> list[Problem]:
    seen: dict[str, str] = {}
    problems = []
    for where, code in entries:
        if code in seen:
            problems.append(
                Problem(where, f"duplicate {what} code {code!r} (first at {seen[code]})")
            )
        else:
            seen[code] = where
    return problems


def cross_check(doc: TopologyDocument) -> list[Problem]:
    """Checks that need the whole document: unique codes and references."""
    org = [("province.code", doc.province.code)]
    org += [(f"prefectures[{i}].code", p.code) for i, p in enumerate(doc.prefectures)]
    org += [(f"departments[{i}].code", d.code) for i, d in enumerate(doc.departments)]
    org += [(f"projects[{i}].code", p.code) for i, p in enumerate(doc.projects)]
    problems = _duplicates(org, "organisation")
    problems += _duplicates(
        ((f"clouds[{i}].code", c.code) for i, c in enumerate(doc.clouds)), "cloud"
    )

    scopes = {doc.province.code} | {p.code for p in doc.prefectures}
    departments = {d.code for d in doc.departments}
    for i, dept in enumerate(doc.departments):
        if dept.parent not in scopes:
            problems.append(
                Problem(
                    f"departments[{i}].parent",
                    f"no province or prefecture {dept.parent!r} in this document",
                )
            )
    for i, proj in enumerate(doc.projects):
        if proj.department not in departments:
            problems.append(
                Problem(f"projects[{i}].department", f"no department {proj.department!r}")
            )
    for i, cloud in enumerate(doc.clouds):
        if cloud.owner not in scopes:
            problems.append(
                Problem(f"clouds[{i}].owner", f"no province or prefecture {cloud.owner!r}")
            )
        if cloud.connection.kind != cloud.kind.value:
            problems.append(
                Problem(
                    f"clouds[{i}].connection.kind",
                    f"a {cloud.kind.value} cloud needs a {cloud.kind.value} connection, "
                    f"not {cloud.connection.kind}",
                )
            )
        allowed = supported_classes(cloud.kind)
        for rc, ratio in cloud.overcommit.items():
            where = f"clouds[{i}].overcommit.{rc.value}"
            if rc not in allowed:
                problems.append(Problem(where, f"a {cloud.kind.value} cloud has no {rc.value}"))
            if not ratio > 0:
                problems.append(Problem(where, f"overcommit ratio must be > 0, got {ratio}"))
    return problems


def parse_document(data: Any, source: str) -> TopologyDocument:
    """Validates already-loaded data; raises InvalidInputError listing every problem."""
    if not isinstance(data, dict):
        raise InvalidInputError(
            f"{source}: a topology document must be a mapping, got {type(data).__name__}",
            code="topology.invalid",
            problems=[Problem("(document)", "not a mapping")],
        )
    try:
        doc = TopologyDocument.model_validate(data)
    except ValidationError as exc:
        problems = _pydantic_problems(exc)
    else:
        problems = cross_check(doc)
        if not problems:
            return doc
    first = problems[0]
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    raise InvalidInputError(f"{source}: {first}{more}", code="topology.invalid", problems=problems)


def load_document(path: Path) -> TopologyDocument:
    """Reads and validates a topology YAML file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidInputError(f"{path}: no such file", code="topology.invalid") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"{path}: cannot read: {exc}", code="topology.invalid") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        reason = getattr(exc, "problem", None) or str(exc)
        raise InvalidInputError(
            f"{path}: not valid YAML: {where}{reason}", code="topology.invalid"
        ) from exc
    return parse_document(data, str(path))
