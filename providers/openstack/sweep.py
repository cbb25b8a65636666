"""Every tenant's quota and usage in few calls: the adapter's `read_quotas`,
which the quota sync uses instead of one `read_quota` per tenant.

`Quotas.read` costs four requests per tenant (Keystone project, Nova
quota-set detail, Cinder, Neutron details), and Nova's detail makes a fifth
of its own, a Keystone lookup of the project. The sweep makes::

    Keystone  GET /v3/projects?tags=yg-cloud:<cloud>      once: which tenants exist and are ours
    Neutron   GET /v2.0/quotas/<id>/default               once: the floating-IP default
              GET /v2.0/quotas                            once: every project with limits of its own
              GET /v2.0/floatingips?fields=project_id     once, paged: used = rows per project
    Nova      GET /limits?tenant_id=<id>                  per tenant (no list API for quotas)
    Cinder    GET /os-quota-sets/<id>?usage=True          per tenant (no list API either)
    (unified limits: + the Keystone limit and Placement usage for GPU, per tenant)

so about two light requests per tenant. The values are the services' own:
Nova's /limits and quota-set detail come from the same quota-driver call;
Neutron's "used" is the count of the project's floating-IP rows (its no-lock
quota driver counts exactly those); Cinder is read as in `read`. The contract
tests check the sweep against `read_quota` on tenants with a server, a
volume and a floating IP.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from providers.base import ProviderError, QuotaReading, TenantRef, fan_out
from providers.openstack.connection import CloudSession, Service
from providers.openstack.quotas import Quotas
from providers.openstack.tenants import Tenants

FLOATING_IP_PAGE = 1000


@dataclass(frozen=True)
class FloatingIpQuotas:
    """Neutron's floating-IP limits and usage for every project, from three listings."""

    explicit: dict[str, int]  # project id -> its own limit (a quota row)
    default: int
    used: Counter[str]

    def of(self, project_id: str) -> tuple[int, int]:
        return self.explicit.get(project_id, self.default), self.used[project_id]


class QuotaSweep:
    def __init__(self, session: CloudSession, tenants: Tenants, quotas: Quotas) -> None:
        self._s = session
        self._tenants = tenants
        self._quotas = quotas

    def read(
        self, tenants: Sequence[TenantRef], parallel: int
    ) -> dict[TenantRef, QuotaReading | ProviderError]:
        if not tenants:
            return {}
        owned = self._tenants.owned()
        floating = self._floating_ips(tenants[0].provider_id)

        def one(ref: TenantRef) -> QuotaReading:
            if ref.provider_id not in owned:
                # Gone or another cloud's (ProviderNotFound), unless the
                # listing was cut short by Keystone's list_limit.
                self._tenants.get(ref)
            fip = floating.of(ref.provider_id) if floating else None
            return self._quotas.read_swept(ref.provider_id, fip)

        return fan_out(one, tenants, parallel)

    def _floating_ips(self, any_project: str) -> FloatingIpQuotas | None:
        """None when Neutron has no floating-IP quota (no L3 plugin), as `read` says."""
        default = self._network(f"/quotas/{any_project}/default", "read neutron default quota")
        if "floatingip" not in default["quota"]:
            return None
        explicit = {
            str(q["project_id"]): int(q["floatingip"])
            for q in self._network("/quotas", "list neutron quotas")["quotas"]
            if "floatingip" in q
        }
        used: Counter[str] = Counter()
        params: dict[str, Any] = {"fields": ["id", "project_id"], "limit": FLOATING_IP_PAGE}
        while True:
            found = self._network("/floatingips", "list floating IPs", params=params)
            page = found["floatingips"]
            used.update(str(f["project_id"]) for f in page)
            # Neutron links the next page only when it paginates (a cloud may
            # turn pagination off and answer everything at once).
            links = found.get("floatingips_links") or []
            if not page or not any(link.get("rel") == "next" for link in links):
                break
            params = {**params, "marker": str(page[-1]["id"])}
        return FloatingIpQuotas(explicit, int(default["quota"]["floatingip"]), used)

    def _network(self, path: str, action: str, **kwargs: Any) -> Any:
        return self._s.call(Service.NETWORK, "GET", path, action=action, **kwargs)
