"""Register the testbed's services, users and (optionally) unified limits in Keystone.

Called by ``scripts/testbed/openstack.sh up`` once Keystone answers and before
any other service starts: nova-conductor and nova-scheduler authenticate at
start-up, and a 401 kills them.

Idempotent: every object is looked up before it is created, so a warm ``up``,
a switch of the quota driver or a re-run after a failure all converge.

Prints the id of the public compute endpoint on its last line: Nova's
``[oslo_limit] endpoint_id``, which ties its unified limits to a service and
region.

Configuration comes from the environment (set by openstack.sh):
TB_AUTH_URL, TB_ADMIN_PASSWORD, TB_SERVICE_PASSWORD, TB_REGION and the
TB_*_URL endpoints.
"""

from __future__ import annotations

import argparse
import os

import openstack

# (service name, service type, env var holding the endpoint URL). Cinder is
# registered twice because clients look it up as either volumev3 or
# block-storage depending on their age.
SERVICES = [
    ("nova", "compute", "TB_NOVA_URL"),
    ("placement", "placement", "TB_PLACEMENT_URL"),
    ("cinderv3", "volumev3", "TB_CINDER_URL"),
    ("cinder", "block-storage", "TB_CINDER_URL"),
    ("neutron", "network", "TB_NEUTRON_URL"),
    ("glance", "image", "TB_GLANCE_URL"),
]
SERVICE_USERS = ["nova", "placement", "cinder", "neutron", "glance"]

# Nova's defaults from its legacy [quota] options, registered under the
# resource names that nova.limit.{local,placement} ask oslo.limit for. With
# UnifiedLimitsDriver, a missing registered limit for "servers" means 0
# ([quota] unified_limits_resource_strategy = require), so all of them are set.
COMPUTE_REGISTERED_LIMITS = {
    "servers": 10,
    "class:VCPU": 20,
    "class:MEMORY_MB": 51200,
    "server_metadata_items": 128,
    "server_injected_files": 5,
    "server_injected_file_content_bytes": 10240,
    "server_injected_file_path_bytes": 255,
    "server_key_pairs": 100,
    "server_groups": 10,
    "server_group_members": 10,
}


def connect(**scope: str) -> openstack.connection.Connection:
    # load_yaml_config/load_envvars off: a clouds.yaml or OS_* variables in the
    # caller's environment must not change who we authenticate as.
    return openstack.connect(
        load_yaml_config=False,
        load_envvars=False,
        auth_type="password",
        auth={
            "auth_url": os.environ["TB_AUTH_URL"],
            "username": "admin",
            "password": os.environ["TB_ADMIN_PASSWORD"],
            "user_domain_name": "Default",
            **scope,
        },
        region_name=os.environ["TB_REGION"],
        interface="public",
        identity_api_version="3",
    )


def ensure_role(conn, name: str):
    return conn.identity.find_role(name) or conn.identity.create_role(name=name)


def ensure_catalog(conn, region: str) -> str:
    """Create service project, users, services and endpoints; return compute's public endpoint id."""
    domain = conn.identity.find_domain("default")
    project = conn.identity.find_project("service", domain_id=domain.id)
    if project is None:
        project = conn.identity.create_project(
            name="service", domain_id=domain.id, description="OpenStack testbed service users"
        )
    roles = [ensure_role(conn, "admin"), ensure_role(conn, "service")]
    password = os.environ["TB_SERVICE_PASSWORD"]
    for name in SERVICE_USERS:
        user = conn.identity.find_user(name, domain_id=domain.id)
        if user is None:
            user = conn.identity.create_user(
                name=name, password=password, domain_id=domain.id, default_project_id=project.id
            )
        for role in roles:
            # Assigning twice is a no-op in Keystone (204), so no lookup needed.
            conn.identity.assign_project_role_to_user(project, user, role)

    compute_endpoint_id = ""
    for name, service_type, url_var in SERVICES:
        url = os.environ[url_var]
        service = next(iter(conn.identity.services(type=service_type)), None)
        if service is None:
            service = conn.identity.create_service(name=name, type=service_type, is_enabled=True)
        existing = {
            e.interface: e for e in conn.identity.endpoints(service_id=service.id, region_id=region)
        }
        for interface in ("public", "internal", "admin"):
            endpoint = existing.get(interface)
            if endpoint is None:
                endpoint = conn.identity.create_endpoint(
                    service_id=service.id,
                    interface=interface,
                    url=url,
                    region_id=region,
                    is_enabled=True,
                )
            elif endpoint.url != url:
                endpoint = conn.identity.update_endpoint(endpoint, url=url)
            if service_type == "compute" and interface == "public":
                compute_endpoint_id = endpoint.id
    return compute_endpoint_id


def ensure_unified_limits(conn, system_conn, region: str) -> None:
    """Let nova read limits (system reader) and register compute's default limits."""
    nova = conn.identity.find_user("nova", domain_id="default")
    reader = ensure_role(conn, "reader")
    # oslo.limit reads endpoints, services and limits: system-scoped reads.
    system_conn.identity.assign_system_role_to_user(nova, reader, "all")

    service = next(iter(conn.identity.services(type="compute")))
    have = {
        r.resource_name
        for r in system_conn.identity.registered_limits(service_id=service.id, region_id=region)
    }
    for resource, default in COMPUTE_REGISTERED_LIMITS.items():
        if resource not in have:
            system_conn.identity.create_registered_limit(
                service_id=service.id,
                region_id=region,
                resource_name=resource,
                default_limit=default,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--unified-limits", action="store_true", help="set up Keystone unified limits for Nova"
    )
    args = parser.parse_args()

    region = os.environ["TB_REGION"]
    conn = connect(project_name="admin", project_domain_name="Default")
    endpoint_id = ensure_catalog(conn, region)
    if args.unified_limits:
        # Keystone's default policies accept limit writes only from a
        # system-scoped token (the bootstrap admin holds admin on system "all").
        ensure_unified_limits(conn, connect(system_scope="all"), region)
    print(endpoint_id)


if __name__ == "__main__":
    main()
