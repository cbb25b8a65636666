"""The one router of `/v1/migration/...`; `migration`, `migration_places` and
`migration_io` add their routes to it, and `api.app` includes it once."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/v1/migration", tags=["migration"])
