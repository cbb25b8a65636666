"""Does refusing an unknown token take as long as refusing a wrong one?

Times `IdentityStore.authenticate` for (a) a well-formed token whose selector
does not exist and (b) a real selector with a wrong secret, interleaved, on
an SQLite file. Prints medians and their ratio; near 1.0 means no difference
worth measuring (both paths do one HMAC and one constant-time comparison).

    .venv/bin/python bench/auth_timing.py --rounds 3000
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import time
from pathlib import Path

from controlplane.db.base import utcnow
from controlplane.db.engine import make_engine, make_session_factory
from controlplane.db.migrate import upgrade
from controlplane.db.uow import UnitOfWork
from controlplane.identity import tokens
from controlplane.identity.store import AuthError, IdentityStore
from controlplane.topology.apply import apply_topology
from controlplane.topology.document import load_document

SECRET = "bench-secret-key-0123456789abcdef0123456789"
SAMPLE = Path(__file__).resolve().parent.parent / "examples" / "hunan.yaml"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{tmp}/bench.db")
        upgrade(engine)
        factory = make_session_factory(engine)
        apply_topology(factory, load_document(SAMPLE), source="sample")
        with UnitOfWork(factory) as uow:
            store = IdentityStore(uow.session)
            user = store.create_user("bench", "bench", "hunan")
            real = store.issue_token(SECRET, user, "b", 1).plaintext
            uow.commit()
        wrong = real[:-4] + ("AAAA" if not real.endswith("AAAA") else "BBBB")
        # The same secret under a selector nobody holds. (Not rsplit("_"): the
        # secret's alphabet has "_", and a shorter one is refused as malformed
        # before any lookup, which made some runs compare nothing.)
        unknown = "ygt_" + "f" * 16 + real[len("ygt_") + 16 :]
        assert tokens.selector_of(unknown) == "f" * 16
        times: dict[str, list[float]] = {"unknown": [], "wrong": []}
        with UnitOfWork(factory) as uow:
            store = IdentityStore(uow.session)
            for _ in range(args.rounds):
                for name, token in (("unknown", unknown), ("wrong", wrong)):
                    t0 = time.perf_counter()
                    with contextlib.suppress(AuthError):
                        store.authenticate(SECRET, token, utcnow())
                    times[name].append(time.perf_counter() - t0)
        engine.dispose()
    unknown_us = statistics.median(times["unknown"]) * 1e6
    wrong_us = statistics.median(times["wrong"]) * 1e6
    print(
        f"unknown_median_us={unknown_us:.1f} wrong_median_us={wrong_us:.1f} "
        f"ratio={unknown_us / wrong_us:.3f}"
    )


if __name__ == "__main__":
    main()
