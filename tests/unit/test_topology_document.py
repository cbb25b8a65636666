"""Validation of topology documents: every problem names the place and what is wrong."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from controlplane.topology.document import load_document, parse_document
from controlplane.vocabulary import CloudKind, InvalidInputError
from tests.conftest import SAMPLE


@pytest.fixture
def sample() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(SAMPLE.read_text(encoding="utf-8"))
    return data


def problems_of(data: Any) -> list[str]:
    with pytest.raises(InvalidInputError) as info:
        parse_document(data, "t.yaml")
    assert info.value.code == "topology.invalid"
    assert info.value.message.startswith("t.yaml: ")
    return [str(p) for p in info.value.problems]


def test_sample_is_the_whole_1_1_n_14_cloud() -> None:
    doc = load_document(SAMPLE)
    assert len(doc.prefectures) == 14
    assert len(doc.clouds) == 20
    kinds = {c.code: c.kind for c in doc.clouds}
    assert kinds["provincial"] is CloudKind.OPENSTACK
    assert kinds["nscc-changsha"] is CloudKind.SLURM
    assert kinds["ai-centre"] is CloudKind.KUBERNETES
    xc = next(c for c in doc.clouds if c.code == "xinchuang")
    assert {a.value for a in xc.architectures} == {"aarch64", "loongarch64"}
    assert sum(c.role.value == "prefecture" for c in doc.clouds) == 14
    assert sum(c.role.value == "industry" for c in doc.clouds) == 2
    prefecture_codes = {p.code for p in doc.prefectures}
    assert {"changsha", "xiangxi", "zhangjiajie"} <= prefecture_codes
    assert any(d.parent == doc.province.code for d in doc.departments)
    assert any(d.parent in prefecture_codes for d in doc.departments)


def test_unknown_kind(sample: dict[str, Any]) -> None:
    sample["clouds"][3]["kind"] = "vmware"
    (problem,) = problems_of(sample)
    assert problem.startswith("clouds[3].kind: unknown value 'vmware'")
    assert "openstack" in problem


def test_duplicate_code(sample: dict[str, Any]) -> None:
    sample["clouds"].append(copy.deepcopy(sample["clouds"][0]))
    (problem,) = problems_of(sample)
    assert problem == "clouds[20].code: duplicate cloud code 'provincial' (first at clouds[0].code)"


def test_duplicate_org_code_across_levels(sample: dict[str, Any]) -> None:
    sample["departments"].append({"code": "changsha", "name": "x", "parent": "hunan"})
    (problem,) = problems_of(sample)
    assert "duplicate organisation code 'changsha' (first at prefectures[0].code)" in problem


def test_department_under_missing_prefecture(sample: dict[str, Any]) -> None:
    sample["departments"].append({"code": "nowhere-data", "name": "x", "parent": "wuhan"})
    (problem,) = problems_of(sample)
    n = len(sample["departments"]) - 1
    assert problem == f"departments[{n}].parent: no province or prefecture 'wuhan' in this document"


@pytest.mark.parametrize("ratio", [0, -1.5])
def test_overcommit_ratio_must_be_positive(sample: dict[str, Any], ratio: float) -> None:
    sample["clouds"][0]["overcommit"]["vcpu"] = ratio
    (problem,) = problems_of(sample)
    assert problem == f"clouds[0].overcommit.vcpu: overcommit ratio must be > 0, got {float(ratio)}"


def test_overcommit_of_a_class_the_kind_lacks(sample: dict[str, Any]) -> None:
    sample["clouds"][0]["overcommit"]["hpc_core_hours"] = 1.0
    (problem,) = problems_of(sample)
    assert problem == "clouds[0].overcommit.hpc_core_hours: a openstack cloud has no hpc_core_hours"


def test_connection_must_match_kind(sample: dict[str, Any]) -> None:
    sample["clouds"][0]["connection"] = {"kind": "kubernetes", "context": "x"}
    (problem,) = problems_of(sample)
    assert problem.startswith("clouds[0].connection.kind: a openstack cloud needs")


def test_missing_connection_field_has_a_clean_path(sample: dict[str, Any]) -> None:
    del sample["clouds"][0]["connection"]["cloud"]
    (problem,) = problems_of(sample)
    assert problem == "clouds[0].connection.cloud: Field required"


def test_unknown_field_and_bad_code_are_all_reported(sample: dict[str, Any]) -> None:
    sample["clouds"][0]["colour"] = "red"
    sample["prefectures"][1]["code"] = "Zhu Zhou"
    found = problems_of(sample)
    assert "clouds[0].colour: unknown field" in found
    assert any(p.startswith("prefectures[1].code: String should match pattern") for p in found)


def test_not_a_mapping() -> None:
    with pytest.raises(InvalidInputError, match="must be a mapping"):
        parse_document(["a", "list"], "t.yaml")


def test_non_yaml_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("province: {code: hunan\nclouds: [\n", encoding="utf-8")
    with pytest.raises(InvalidInputError) as info:
        load_document(bad)
    assert info.value.message.startswith(f"{bad}: not valid YAML: line ")


def test_binary_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(InvalidInputError, match="cannot read"):
        load_document(bad)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="no such file"):
        load_document(tmp_path / "absent.yaml")
