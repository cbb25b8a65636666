"""Known secret values of the test run, and a scan of every log record for them.

Tests register each secret they create (API tokens, secret keys, cloud
passwords); a handler on the root logger keeps every record of the session;
at the end `pytest_sessionfinish` fails the run if any record contains one.
"""

from __future__ import annotations

import logging
import threading

KNOWN_SECRETS: set[str] = set()


def register_secret(value: str) -> str:
    KNOWN_SECRETS.add(value)
    return value


class CaptureAll(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []
        self._guard = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except Exception:  # a broken format string is still worth scanning raw
            text = f"{record.msg} {record.args}"
        if record.exc_info and record.exc_info[1] is not None:
            text += f" {record.exc_info[1]!r}"
        with self._guard:
            self.lines.append(f"{record.name}: {text}")


def leaks(lines: list[str], secrets: set[str]) -> list[tuple[str, str]]:
    """(secret prefix, line) for every line containing a known secret."""
    found = []
    for line in lines:
        for secret in secrets:
            if secret and secret in line:
                found.append((secret[:12] + "…", line[:200]))
    return found
