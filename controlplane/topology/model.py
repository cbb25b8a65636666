"""The topology document: the declarative description `yunguan topology apply` reads.

Shape (YAML)::

    province: {code: hunan, name: 湖南省}
    prefectures: [{code: changsha, name: 长沙市}, ...]
    departments: [{code: hn-drc, name: ..., parent: hunan}, ...]   # parent: province or prefecture
    projects:    [{code: ..., name: ..., department: hn-drc}, ...]
    clouds:      [{code: provincial, kind: openstack, role: provincial, owner: hunan, ...}, ...]

Lists with parent references (rather than nesting) keep every entry addressable
by a short path such as ``departments[3].parent`` in error messages, and let a
department move between prefectures by changing one line.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from controlplane.vocabulary import Architecture, CloudKind, CloudRole, ResourceClass

CODE_PATTERN = r"^[a-z][a-z0-9-]{0,62}$"
_CODE_RE = re.compile(CODE_PATTERN)

Code = Annotated[str, Field(pattern=CODE_PATTERN, description="stable ASCII id, e.g. changsha")]
Name = Annotated[str, Field(min_length=1, max_length=200)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProvinceSpec(_Strict):
    code: Code
    name: Name


class PrefectureSpec(_Strict):
    code: Code
    name: Name


class DepartmentSpec(_Strict):
    code: Code
    name: Name
    parent: Code = Field(description="the province's code or a prefecture's code")


class ProjectSpec(_Strict):
    code: Code
    name: Name
    department: Code


class OpenStackConnection(_Strict):
    """An entry of an openstacksdk clouds.yaml (the file cloud admins already keep)."""

    kind: Literal["openstack"] = "openstack"
    cloud: str = Field(min_length=1, description="entry name in clouds.yaml")
    clouds_yaml: str | None = Field(default=None, description="path; default search path if absent")
    system_cloud: str | None = Field(
        default=None,
        min_length=1,
        description="clouds.yaml entry with system scope (writes Keystone unified limits)",
    )
    quota_model: Literal["db", "unified"] | None = Field(
        default=None, description="Nova's quota model; detected when absent"
    )
    domain_prefix: str | None = Field(
        default=None,
        pattern=r"^[a-z][a-z0-9-]{0,30}$",
        description="Keystone domains are <prefix>-<scope> (default yg)",
    )


class KubernetesConnection(_Strict):
    """A context of a kubeconfig file."""

    kind: Literal["kubernetes"] = "kubernetes"
    context: str = Field(min_length=1)
    kubeconfig: str | None = Field(default=None, description="path; $KUBECONFIG if absent")


class SlurmConnection(_Strict):
    """A slurmrestd endpoint and the HS256 key its JWTs are minted from."""

    kind: Literal["slurm"] = "slurm"
    url: str = Field(pattern=r"^https?://")
    jwt_key_file: str = Field(min_length=1)
    user: str = Field(default="slurm", min_length=1)
    cluster: str | None = Field(
        default=None, min_length=1, description="Slurm cluster name; discovered when only one"
    )
    slurm_conf: str | None = Field(
        default=None, min_length=1, description="slurm.conf for sacctmgr/scontrol; default path"
    )


Connection = Annotated[
    OpenStackConnection | KubernetesConnection | SlurmConnection,
    Field(discriminator="kind"),
]


class CloudSpec(_Strict):
    code: Code
    name: Name
    kind: CloudKind
    role: CloudRole
    owner: Code = Field(description="the province's code or the owning prefecture's code")
    architectures: list[Architecture] = Field(min_length=1)
    region: str = Field(min_length=1, max_length=64)
    connection: Connection
    overcommit: dict[ResourceClass, float] = Field(default_factory=dict)
    accelerators: list[str] = Field(
        default_factory=list, description="device resources, e.g. nvidia.com/gpu"
    )
    enabled: bool = True

    @field_validator("architectures")
    @classmethod
    def _no_repeated_arch(cls, value: list[Architecture]) -> list[Architecture]:
        if len(set(value)) != len(value):
            raise ValueError("an architecture is listed twice")
        return value


class TopologyDocument(_Strict):
    """A whole topology file, after schema validation (cross-references unchecked)."""

    province: ProvinceSpec
    prefectures: list[PrefectureSpec] = Field(default_factory=list)
    departments: list[DepartmentSpec] = Field(default_factory=list)
    projects: list[ProjectSpec] = Field(default_factory=list)
    clouds: list[CloudSpec] = Field(default_factory=list)


def is_code(value: str) -> bool:
    return bool(_CODE_RE.match(value))
