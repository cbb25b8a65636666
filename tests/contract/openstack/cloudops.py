"""Test-side operations on the OpenStack testbed, with the SDK directly.

What the adapter must never do but a test must: boot servers as a tenant's
user, create users, resource providers, flavors and images, and delete
everything a run created (state survives testbed restarts). Cleanup is
best-effort and tolerant of what is already gone, so one failed test does not
make the next teardown fail.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openstack
from openstack import config as os_config
from openstack import exceptions as sdk_exc
from openstack.connection import Connection

from tests.secrets_scan import register_secret

log = logging.getLogger(__name__)
BOOT_WAIT_S = 120


def connect_entry(clouds_yaml: Path, entry: str, *, timeout: float = 30) -> Connection:
    config = os_config.OpenStackConfig(
        config_files=[str(clouds_yaml)], secure_files=[], load_envvars=False
    )
    return Connection(config=config.get_one(cloud=entry, api_timeout=timeout))


def connect_as(
    auth_url: str, username: str, password: str, user_domain_id: str, project_id: str
) -> Connection:
    # load_yaml_config/load_envvars off: otherwise clouds.yaml (OS_CLIENT_CONFIG_FILE)
    # would be merged in and we would silently act as its admin (testbed gotcha 11).
    return openstack.connect(
        load_yaml_config=False,
        load_envvars=False,
        auth_type="password",
        auth={
            "auth_url": auth_url,
            "username": username,
            "password": password,
            "user_domain_id": user_domain_id,
            "project_id": project_id,
        },
        region_name="RegionOne",
        interface="public",
        identity_api_version="3",
        api_timeout=30,
    )


def new_password() -> str:
    return register_secret("pw-" + secrets.token_urlsafe(18))


def create_user(admin: Connection, name: str, password: str, domain_id: str) -> str:
    """Creates a Keystone user. `log=False`: keystoneauth logs request bodies at
    DEBUG, and this one holds the password (the log scan would catch it)."""
    body = {"user": {"name": name, "password": password, "domain_id": domain_id, "enabled": True}}
    response = admin.identity.post("/users", json=body, log=False)
    sdk_exc.raise_from_response(response)
    return str(response.json()["user"]["id"])


def grant(
    admin: Connection,
    user_id: str,
    role: str,
    *,
    project_id: str | None = None,
    system: bool = False,
) -> None:
    role_id = admin.identity.find_role(role, ignore_missing=False).id
    path = (
        f"/system/users/{user_id}/roles/{role_id}"
        if system
        else f"/projects/{project_id}/users/{user_id}/roles/{role_id}"
    )
    sdk_exc.raise_from_response(admin.identity.put(path))


def member_connection(admin: Connection, auth_url: str, login: str, project_id: str) -> Connection:
    """A new user of the project's domain with the member role, connected to it."""
    domain_id = admin.identity.get_project(project_id).domain_id
    password = new_password()
    user_id = create_user(admin, login, password, domain_id)
    grant(admin, user_id, "member", project_id=project_id)
    return connect_as(auth_url, login, password, domain_id, project_id)


@contextlib.contextmanager
def flavor_and_image(admin: Connection, prefix: str) -> Iterator[tuple[str, str]]:
    """A 1-vCPU / 64 MiB / 1 GiB flavor and a 1 KiB raw image (the fake driver
    never reads it), tagged x86_64 so inventory can tell the architecture."""
    flavor = admin.compute.create_flavor(name=prefix, vcpus=1, ram=64, disk=1, is_public=True)
    image = admin.image.create_image(
        name=prefix,
        data=b"\0" * 1024,
        disk_format="raw",
        container_format="bare",
        visibility="public",
        architecture="x86_64",
    )
    try:
        yield flavor.id, image.id
    finally:
        with contextlib.suppress(sdk_exc.SDKException):
            admin.compute.delete_flavor(flavor.id)
        with contextlib.suppress(sdk_exc.SDKException):
            admin.image.delete_image(image.id)


def boot(user: Connection, name: str, flavor_id: str, image_id: str) -> Any:
    """Boots with networks="none": Neutron has no agents, ports would never bind."""
    server = user.compute.create_server(
        name=name, flavor_id=flavor_id, image_id=image_id, networks="none"
    )
    return user.compute.wait_for_server(server, status="ACTIVE", wait=BOOT_WAIT_S)


def delete_servers(admin: Connection, project_id: str) -> None:
    servers = list(admin.compute.servers(all_projects=True, project_id=project_id))
    for server in servers:
        with contextlib.suppress(sdk_exc.NotFoundException):
            admin.compute.delete_server(server.id)
    for server in servers:
        with contextlib.suppress(sdk_exc.NotFoundException):
            admin.compute.wait_for_delete(server, wait=BOOT_WAIT_S)


def delete_volumes(admin: Connection, project_id: str) -> None:
    """The testbed has no volume service: volumes never leave "creating" and
    have no host, so Cinder deletes them at once (and releases the quota)."""
    for volume in list(admin.block_storage.volumes(all_projects=True, project_id=project_id)):
        with contextlib.suppress(sdk_exc.NotFoundException):
            admin.block_storage.delete_volume(volume.id)


def delete_floating_ips(admin: Connection, project_id: str) -> None:
    for ip in list(admin.network.ips(project_id=project_id)):
        with contextlib.suppress(sdk_exc.NotFoundException):
            admin.network.delete_ip(ip.id)


def purge_project(admin: Connection, system: Connection, project_id: str) -> None:
    """Servers, volumes, floating IPs, quota rows (Nova, Cinder, Neutron),
    Keystone limits, then the project."""
    steps = [
        lambda: delete_servers(admin, project_id),
        lambda: delete_volumes(admin, project_id),
        lambda: delete_floating_ips(admin, project_id),
        lambda: admin.compute.delete(f"/os-quota-sets/{project_id}"),
        lambda: admin.block_storage.delete(f"/os-quota-sets/{project_id}"),
        lambda: admin.network.delete(f"/quotas/{project_id}"),
        lambda: [
            system.identity.delete_limit(limit)
            for limit in system.identity.limits(project_id=project_id)
        ],
        lambda: admin.identity.delete_project(project_id, ignore_missing=True),
    ]
    for step in steps:
        try:
            step()
        except Exception as exc:  # best effort: report, carry on with the rest
            log.warning("cleanup of project %s: %s", project_id, exc)


def purge_domains(admin: Connection, system: Connection, prefix: str) -> None:
    """Every domain named `<prefix>-*`, with its projects and users."""
    for domain in list(admin.identity.domains()):
        if not domain.name.startswith(f"{prefix}-"):
            continue
        for project in list(admin.identity.projects(domain_id=domain.id)):
            purge_project(admin, system, project.id)
        for user in list(admin.identity.users(domain_id=domain.id)):
            admin.identity.delete_user(user.id, ignore_missing=True)
        admin.identity.update_domain(domain.id, is_enabled=False)
        admin.identity.delete_domain(domain.id, ignore_missing=True)


def wait_until(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.5)
