"""Smoke check for the OpenStack testbed (scripts/testbed/openstack.sh).

Proves, end to end, the path Yunguan's OpenStack adapter depends on: a
throwaway project gets a compute quota (cores=2, instances=1), a user of that
project boots a server on a tiny flavor from a 1 KiB raw Glance image, the
allocation shows up in Placement, a second boot is refused by the quota, and
everything is deleted again.

The quota step detects which model the cloud uses, as the adapter must:
Nova's legacy quota-sets (DbQuotaDriver) or Keystone unified limits
(UnifiedLimitsDriver, where Nova ignores quota-set writes and the limits live
in Keystone's /v3/limits).

Run it with the testbed's own python (openstacksdk comes with its venv):

    eval "$(scripts/testbed/openstack.sh env)"
    "$YUNGUAN_TESTBED_OPENSTACK_PYTHON" scripts/testbed/openstack_smoke.py

or as part of ``openstack.sh status --deep``. Exits non-zero on any failure.
"""

from __future__ import annotations

import os
import secrets
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import openstack
from openstack import exceptions

CLOUD = "testbed-admin"
SYSTEM_CLOUD = "testbed-admin-system"
COMPUTE_HOST = "testbed-compute"
WANT_CORES, WANT_INSTANCES = 2, 1


def step(message: str) -> None:
    print(f"[smoke {time.monotonic() - START:5.1f}s] {message}", flush=True)


def default_clouds_yaml() -> str:
    # Same default as lib.sh, so the script also runs without `eval env`.
    cache = os.environ.get("YUNGUAN_CACHE") or str(
        Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "yunguan"
    )
    root = os.environ.get("YUNGUAN_TESTBED_ROOT", str(Path(cache) / "testbed"))
    return str(Path(root) / "openstack" / "clouds.yaml")


def set_compute_quota(admin, project_id: str, cleanup: ExitStack) -> str:
    """Set cores/instances for the project; return the quota model in use.

    Under UnifiedLimitsDriver Nova accepts the quota-set PUT but ignores it,
    so the model is detected by writing and reading back, then confirmed in
    Keystone.
    """
    admin.set_compute_quotas(project_id, cores=WANT_CORES, instances=WANT_INSTANCES)
    quota = admin.get_compute_quotas(project_id)
    if (quota.cores, quota.instances) == (WANT_CORES, WANT_INSTANCES):
        return "nova quota-sets (DbQuotaDriver)"

    # Unified limits: per-project overrides of the compute service's
    # registered limits. Keystone only takes limit writes with system scope.
    system = openstack.connect(cloud=SYSTEM_CLOUD)
    compute = next(iter(system.identity.services(type="compute")))
    registered = {r.resource_name for r in system.identity.registered_limits(service_id=compute.id)}
    if not {"servers", "class:VCPU"} <= registered:
        raise SystemExit(f"quota-set write ignored and no unified limits registered: {quota}")
    for resource, value in (("class:VCPU", WANT_CORES), ("servers", WANT_INSTANCES)):
        limit = system.identity.create_limit(
            service_id=compute.id,
            project_id=project_id,
            region_id=compute_region(admin),
            resource_name=resource,
            resource_limit=value,
        )
        cleanup.callback(system.identity.delete_limit, limit)
    quota = admin.get_compute_quotas(project_id)
    if (quota.cores, quota.instances) != (WANT_CORES, WANT_INSTANCES):
        raise SystemExit(f"Nova does not report the Keystone limits: {quota}")
    return "Keystone unified limits (UnifiedLimitsDriver)"


def compute_region(conn) -> str:
    return conn.config.get_region_name("compute") or "RegionOne"


def placement_usages(admin, project_id: str) -> dict[str, int]:
    # Project usages need placement microversion >= 1.9.
    response = admin.placement.get(f"/usages?project_id={project_id}", microversion="1.9")
    response.raise_for_status()
    return response.json()["usages"]


def main() -> int:
    os.environ.setdefault("OS_CLIENT_CONFIG_FILE", default_clouds_yaml())
    admin = openstack.connect(cloud=CLOUD)
    prefix = f"yg-smoke-{secrets.token_hex(3)}"
    password = secrets.token_urlsafe(16)

    # Everything created is registered for deletion right away, so a failure
    # anywhere still leaves the cloud as it was (state survives restarts).
    with ExitStack() as cleanup:
        project = admin.identity.create_project(name=prefix, domain_id="default")
        cleanup.callback(admin.identity.delete_project, project)
        step(f"project {project.name} ({project.id})")

        model = set_compute_quota(admin, project.id, cleanup)
        cleanup.callback(admin.delete_compute_quotas, project.id)
        step(f"quota cores={WANT_CORES} instances={WANT_INSTANCES} via {model}")

        user = admin.identity.create_user(name=prefix, password=password, domain_id="default")
        cleanup.callback(admin.identity.delete_user, user)
        member = admin.identity.find_role("member")
        admin.identity.assign_project_role_to_user(project, user, member)

        # Disk 1 GiB: new-default policy refuses zero-disk flavors to non-admins.
        flavor = admin.compute.create_flavor(name=prefix, vcpus=1, ram=64, disk=1, is_public=True)
        cleanup.callback(admin.compute.delete_flavor, flavor)
        # The fake virt driver never reads the image; Nova only needs it to exist.
        image = admin.image.create_image(
            name=prefix,
            data=b"\0" * 1024,
            disk_format="raw",
            container_format="bare",
            visibility="public",
        )
        cleanup.callback(admin.image.delete_image, image)
        image = admin.image.get_image(image)
        if image.status != "active" or image.size != 1024:
            raise SystemExit(f"image not stored by Glance: status={image.status} size={image.size}")
        step(f"flavor {flavor.id}, image {image.id} (active, {image.size} bytes)")

        # Gotcha: openstack.connect(**kwargs) merges with clouds.yaml and
        # OS_* variables; a connection as another user must ignore both.
        auth_url = admin.config.get_auth_args()["auth_url"]
        user_conn = openstack.connect(
            load_yaml_config=False,
            load_envvars=False,
            auth={
                "auth_url": auth_url,
                "username": prefix,
                "password": password,
                "user_domain_name": "Default",
                "project_id": project.id,
            },
            region_name=compute_region(admin),
            interface="public",
        )

        # networks="none" (microversion >= 2.37): Neutron runs without agents,
        # so ports would never bind.
        server = user_conn.compute.create_server(
            name=prefix, flavor_id=flavor.id, image_id=image.id, networks="none"
        )
        cleanup.callback(delete_server, admin, server.id)
        server = user_conn.compute.wait_for_server(server, status="ACTIVE", wait=120)
        host = admin.compute.get_server(server.id).hypervisor_hostname  # admin-only field
        if host != COMPUTE_HOST:
            raise SystemExit(f"server landed on {host!r}, not {COMPUTE_HOST!r}")
        step(f"server {server.id} ACTIVE on {host}")

        usages = placement_usages(admin, project.id)
        if usages.get("VCPU") != 1 or usages.get("MEMORY_MB") != 64:
            raise SystemExit(f"unexpected placement usages for the project: {usages}")
        step(f"placement usages {usages}")

        try:
            extra = user_conn.compute.create_server(
                name=f"{prefix}-2", flavor_id=flavor.id, image_id=image.id, networks="none"
            )
        except exceptions.HttpException as exc:
            if exc.status_code != 403:
                raise
            step(f"second server refused by the quota (HTTP 403): {exc.details or exc.message}")
        else:
            cleanup.callback(delete_server, admin, extra.id)
            raise SystemExit("second server accepted although instances=1")

        delete_server(admin, server.id)
        usages = placement_usages(admin, project.id)
        if usages.get("VCPU", 0) != 0:
            raise SystemExit(f"allocation left behind after delete: {usages}")
        step("server deleted, allocation released; cleaning up")
    step("OK")
    return 0


def delete_server(conn, server_id: str) -> None:
    server = conn.compute.find_server(server_id, all_projects=True)
    if server is None:
        return
    conn.compute.delete_server(server)
    conn.compute.wait_for_delete(server, wait=120)


START = time.monotonic()

if __name__ == "__main__":
    sys.exit(main())
