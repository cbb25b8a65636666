"""CPU seconds of a process, from /proc/<pid>/stat (Linux): what the
benchmarks use to say where a run's time went, beside its throughput."""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple


class ProcessCpu(NamedTuple):
    command: str  # the kernel's name of the process (`comm`)
    group: int  # its process group
    cpu_s: float  # user + system seconds so far


def process_cpu(pid: int | str) -> ProcessCpu | None:
    """None when the process is gone (or was never on this machine)."""
    try:
        head, tail = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)
    except OSError:
        return None
    fields = tail.split()  # from field 3 (state) on: 5 is the group, 14/15 the times
    ticks = int(fields[11]) + int(fields[12])
    return ProcessCpu(head.split("(", 1)[1], int(fields[2]), ticks / os.sysconf("SC_CLK_TCK"))
