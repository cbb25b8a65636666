"""What every command shares: the --debug flag and building the container."""

from __future__ import annotations

from dataclasses import dataclass

from controlplane.bootstrap import Container, build_container
from controlplane.settings import Settings, get_settings


@dataclass
class State:
    debug: bool = False


def container_for(settings: Settings | None = None) -> Container:
    return build_container(settings or get_settings())
