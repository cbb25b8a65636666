"""The core vocabulary every part of Yunguan speaks: ids, enums and the error tree.

Nothing here imports a web framework, an ORM, Celery or a cloud SDK (an
import-linter contract enforces it), so quotas/, migration/ and providers/
can share these words without dragging infrastructure along.
"""

from controlplane.vocabulary.enums import (
    Architecture,
    CloudKind,
    CloudRole,
    OrgLevel,
    ResourceClass,
    supported_classes,
)
from controlplane.vocabulary.errors import (
    ConflictError,
    ForbiddenError,
    InvalidInputError,
    NotFoundError,
    PreconditionFailedError,
    Problem,
    UnauthenticatedError,
    YunguanError,
)

__all__ = [
    "Architecture",
    "CloudKind",
    "CloudRole",
    "ConflictError",
    "ForbiddenError",
    "InvalidInputError",
    "NotFoundError",
    "OrgLevel",
    "PreconditionFailedError",
    "Problem",
    "ResourceClass",
    "UnauthenticatedError",
    "YunguanError",
    "supported_classes",
]
