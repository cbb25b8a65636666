"""Deletes every Keystone domain named `<prefix>-*` on the testbed, with its
projects and their quota rows (the benchmark's cleanup).

    .venv/bin/python bench/purge_openstack.py ygb1a2b3c
"""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.contract.openstack import cloudops  # noqa: E402
from tests.worker.testbeds import bring_up  # noqa: E402


def main() -> None:
    prefix = sys.argv[1]
    env = bring_up("openstack")
    clouds = Path(env["OS_CLIENT_CONFIG_FILE"])
    admin = cloudops.connect_entry(clouds, env["OS_CLOUD"])
    system = cloudops.connect_entry(clouds, "testbed-admin-system")
    for domain in list(admin.identity.domains()):
        if not domain.name.startswith(f"{prefix}-"):
            continue
        projects = list(admin.identity.projects(domain_id=domain.id))
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda p: cloudops.purge_project(admin, system, p.id), projects))
        admin.identity.update_domain(domain.id, is_enabled=False)
        admin.identity.delete_domain(domain.id, ignore_missing=True)
        print(f"purged {domain.name}: {len(projects)} projects")


if __name__ == "__main__":
    main()
