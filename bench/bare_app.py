"""The web stack's own ceiling for bench/quota_http.py: FastAPI + uvicorn, one
conditional UPDATE on a single hot row per POST, nothing else. Served exactly
as `yunguan serve` serves the API (api.server: the same uvicorn protocol).

    python -m bench.bare_app PORT WORKERS   (BARE_DB_URL set)
"""

from __future__ import annotations

import os
import sys

from fastapi import FastAPI
from sqlalchemy import create_engine, text


def create_app() -> FastAPI:
    engine = create_engine(os.environ["BARE_DB_URL"], pool_size=20, max_overflow=20)
    app = FastAPI()
    update = text("UPDATE bare_hot SET used = used + 1 WHERE id = 1 AND used + 1 <= cap")

    @app.post("/v1/requests", status_code=201)
    def post() -> dict[str, int]:
        with engine.begin() as conn:
            done = conn.execute(update).rowcount
        return {"admitted": done}

    return app


if __name__ == "__main__":
    from api import server

    server.run(
        "bench.bare_app:create_app",
        factory=True,
        host="127.0.0.1",
        port=int(sys.argv[1]),
        workers=int(sys.argv[2]),
        log_level="warning",
    )
