"""`topology apply` against real databases: idempotent, all or nothing."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from controlplane.bootstrap import Container
from controlplane.db.uow import UnitOfWork
from controlplane.topology.apply import apply_topology
from controlplane.topology.diff import Action
from controlplane.topology.document import load_document, parse_document
from controlplane.topology.store import TopologyStore
from controlplane.vocabulary import InvalidInputError
from tests.conftest import SAMPLE


def snapshot(c: Container) -> tuple[dict[str, Any], dict[str, Any]]:
    with UnitOfWork(c.session_factory) as uow:
        store = TopologyStore(uow.session)
        return store.org_records(), store.cloud_records()


def sample_data() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(SAMPLE.read_text(encoding="utf-8"))
    return data


def apply_data(c: Container, data: dict[str, Any], **kw: Any) -> Any:
    return apply_topology(c.session_factory, parse_document(data, "t.yaml"), source="t.yaml", **kw)


def test_apply_sample_then_again_is_a_no_op(container: Container) -> None:
    first = apply_topology(container.session_factory, load_document(SAMPLE), source="s")
    org, clouds = snapshot(container)
    assert len(clouds) == 20
    assert sum(r.level == "prefecture" for r in org.values()) == 14
    assert all(c.action is Action.CREATE for c in first.changes)
    again = apply_topology(container.session_factory, load_document(SAMPLE), source="s")
    assert again.empty
    assert snapshot(container) == (org, clouds)


def test_dry_run_writes_nothing(container: Container) -> None:
    result = apply_data(container, sample_data(), dry_run=True)
    assert len(result.changes) > 20
    assert snapshot(container) == ({}, {})


def test_update_and_move(container: Container) -> None:
    apply_data(container, sample_data())
    data = sample_data()
    data["clouds"][0]["region"] = "hunan-2"
    dept = next(d for d in data["departments"] if d["code"] == "cs-health")
    dept["parent"] = "zhuzhou"
    result = apply_data(container, data)
    described = sorted(c.describe() for c in result.changes)
    assert described == [
        "~ cloud provincial (region: 'hunan-1' -> 'hunan-2')",
        "~ department cs-health (parent: 'changsha' -> 'zhuzhou')",
    ]
    org, clouds = snapshot(container)
    assert org["cs-health"].parent == "zhuzhou"
    assert clouds["provincial"]["region"] == "hunan-2"


def test_prune_removes_what_the_file_drops(container: Container) -> None:
    apply_data(container, sample_data())
    data = sample_data()
    data["clouds"] = [c for c in data["clouds"] if c["code"] != "loudi"]
    data["projects"] = [p for p in data["projects"] if p["code"] != "zz-data-portal"]
    kept = apply_data(container, data)
    assert kept.empty  # without --prune, absent entries stay
    pruned = apply_data(container, data, prune=True)
    assert sorted(c.describe() for c in pruned.changes) == [
        "- cloud loudi",
        "- project zz-data-portal",
    ]
    org, clouds = snapshot(container)
    assert "loudi" not in clouds and "zz-data-portal" not in org


def _bad_documents() -> list[tuple[str, dict[str, Any]]]:
    cases = []
    d = sample_data()
    d["clouds"][1]["kind"] = "vmware"
    cases.append(("unknown kind", d))
    d = sample_data()
    d["clouds"].append(copy.deepcopy(d["clouds"][2]))
    cases.append(("duplicate code", d))
    d = sample_data()
    d["departments"].append({"code": "x-data", "name": "x", "parent": "wuhan"})
    cases.append(("department under a missing prefecture", d))
    d = sample_data()
    d["clouds"][0]["overcommit"]["vcpu"] = 0
    cases.append(("overcommit ratio <= 0", d))
    return cases


@pytest.mark.parametrize(("what", "data"), _bad_documents(), ids=[c[0] for c in _bad_documents()])
def test_bad_documents_leave_the_database_unchanged(
    container: Container, what: str, data: dict[str, Any]
) -> None:
    start = sample_data()
    start["clouds"][0]["name"] = "before"
    apply_data(container, start)
    before = snapshot(container)
    data["clouds"][0]["name"] = "after"  # a valid change riding along must not land either
    with pytest.raises(InvalidInputError):
        apply_data(container, data)
    assert snapshot(container) == before


def test_non_yaml_file_leaves_the_database_unchanged(container: Container, tmp_path: Path) -> None:
    apply_data(container, sample_data())
    before = snapshot(container)
    bad = tmp_path / "bad.yaml"
    bad.write_text("clouds: [ {code: x", encoding="utf-8")
    with pytest.raises(InvalidInputError, match="not valid YAML"):
        load_document(bad)
    assert snapshot(container) == before


def _change_kind(d: dict[str, Any]) -> None:
    d["clouds"][0].update(kind="kubernetes", connection={"kind": "kubernetes", "context": "c"})


def _department_becomes_project(d: dict[str, Any]) -> None:
    d["departments"] = [x for x in d["departments"] if x["code"] != "cs-data"]
    for p in d["projects"]:
        if p["department"] == "cs-data":
            p["department"] = "hn-drc"
    d["projects"].append({"code": "cs-data", "name": "x", "department": "hn-drc"})


def _second_province(d: dict[str, Any]) -> None:
    d["province"]["code"] = "hubei"
    for x in d["departments"] + d["clouds"]:
        for key in ("parent", "owner"):
            if x.get(key) == "hunan":
                x[key] = "hubei"


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (_change_kind, "clouds[0].kind: cloud 'provincial' is openstack; a kind never changes"),
        (_department_becomes_project, "'cs-data' already exists as a department"),
        (_second_province, "province.code: this installation already manages province 'hunan'"),
    ],
    ids=["kind change", "level change", "second province"],
)
def test_conflicts_with_stored_state_write_nothing(
    container: Container, mutate: Any, expected: str
) -> None:
    apply_data(container, sample_data())
    before = snapshot(container)
    data = sample_data()
    mutate(data)
    with pytest.raises(InvalidInputError) as info:
        apply_data(container, data)
    assert any(expected in str(p) for p in info.value.problems), info.value.problems
    assert snapshot(container) == before


def test_a_node_holding_grants_cannot_move(container: Container) -> None:
    from controlplane.quotastore.store import SqlQuotaStore
    from quotas import service
    from quotas.model import Actor

    apply_data(container, sample_data())
    with UnitOfWork(container.session_factory) as uow:
        store = SqlQuotaStore(uow.session)
        service.set_capacity(store, Actor("t"), "provincial", "vcpu", 100)
        service.set_grant(store, Actor("t"), "changsha", "provincial", "vcpu", 10)
        service.set_grant(store, Actor("t"), "cs-health", "provincial", "vcpu", 5)
        uow.commit()
    before = snapshot(container)
    data = sample_data()
    next(d for d in data["departments"] if d["code"] == "cs-health")["parent"] = "zhuzhou"
    with pytest.raises(InvalidInputError) as info:
        apply_data(container, data)
    assert "cannot move to 'zhuzhou'" in str(info.value.problems[0])
    assert snapshot(container) == before
