"""Background services that run beside the API in the embedded all-in-one (`yunguan up`).

The in-process worker and the metrics exporter plug in here; in production
they run as their own processes (`yunguan worker`, `yunguan exporter`).
"""

from __future__ import annotations

from typing import Protocol


class BackgroundService(Protocol):
    """Something `yunguan up` starts with the API and stops when it stops."""

    name: str

    def start(self) -> None: ...

    def stop(self, timeout: float) -> None: ...
