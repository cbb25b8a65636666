"""Liveness and readiness. Provider health is never part of readiness: a
down cloud must not take the control plane out of its load balancer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from sqlalchemy import text

from api.deps import get_container
from api.schemas import Health
from controlplane.bootstrap import Container
from controlplane.db.migrate import current_revision, head_revision

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    return Health(status="ok")


@router.get("/readyz", response_model=Health, responses={503: {"model": Health}})
def readyz(container: Annotated[Container, Depends(get_container)]) -> JSONResponse:
    checks: dict[str, str] = {}
    try:
        with container.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
        current, head = current_revision(container.engine), head_revision()
        checks["migrations"] = "ok" if current == head else f"at {current}, head is {head}"
    except Exception as exc:  # any failure means "not ready", with the reason
        checks.setdefault("database", f"unreachable: {exc.__class__.__name__}")
    ready = all(v == "ok" for v in checks.values()) and len(checks) == 2
    body = Health(status="ready" if ready else "not ready", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)
