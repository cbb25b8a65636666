"""Bringing testbeds up from worker tests and reading their `env` exports.

A testbed that does not come up fails the test: a skip would hide it.
"""

from __future__ import annotations

import functools
import shlex
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@functools.cache
def bring_up(name: str, *up_args: str) -> dict[str, str]:
    script = REPO / "scripts" / "testbed" / f"{name}.sh"
    up = subprocess.run(
        ["bash", str(script), "up", *up_args],
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    if up.returncode != 0:
        pytest.fail(
            f"{name} testbed did not come up (exit {up.returncode}):\n{up.stderr[-3000:]}",
            pytrace=False,
        )
    out = subprocess.run(
        ["bash", str(script), "env"], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    values: dict[str, str] = {}
    for line in out.splitlines():
        words = shlex.split(line, comments=True)
        if len(words) == 2 and words[0] == "export" and "=" in words[1]:
            key, _, value = words[1].partition("=")
            values[key] = value
    return values
