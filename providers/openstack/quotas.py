"""Quotas: Yunguan's resource classes onto Nova, Cinder, Neutron and Keystone limits.

The mapping table (one place; `MAPPING`)::

    class         DB quota driver (legacy)      unified limits (Keystone)
    vcpu          nova cores                    compute  class:VCPU
    memory_mib    nova ram (MiB)                compute  class:MEMORY_MB
    instances     nova instances                compute  servers
    gpu           (none: UnsupportedResource-   compute  class:VGPU (needs the cloud's
                   Class; Nova's DB driver                registered limit, else
                   has no GPU quota)                      UnsupportedResourceClass)
    disk_gib      cinder gigabytes              cinder gigabytes (Cinder keeps its own)
    floating_ips  neutron floatingip            neutron floatingip

Cinder's `volumes` count and Neutron's `network`, `port`, `router` limits have
no Yunguan resource class and are left at the cloud's defaults: set_quota
writes only the keys above, never the others.

Which model a cloud uses is configuration (`quota_model` in the connection) or
detected once per adapter: write `metadata_items + 1` to the tenant's Nova
quota-set and read back. Nova's DB driver keeps the value (we write the old one
back at once, so the tenant keeps an explicit row with its old value);
UnifiedLimitsDriver answers 200 and silently ignores quota-set
writes (nova 34), reporting Keystone's limits instead. After every write the
limits are verified as Nova reports them; a mismatch means the cloud switched
models, so detection runs again once.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from controlplane.vocabulary import CloudKind, ResourceClass, supported_classes
from providers.base import (
    ProviderAuthError,
    ProviderRejected,
    QuotaReading,
    UnsupportedResourceClass,
)
from providers.openstack.connection import CloudSession, QuotaModel, Service
from providers.openstack.limits import KeystoneLimits

log = logging.getLogger(__name__)

NOVA_MICROVERSION = "2.57"  # Queens; drops the nova-network keys from quota-sets
PLACEMENT_USAGES_MICROVERSION = "1.9"  # GET /usages?project_id=
PROBE_KEY = "metadata_items"  # a key Yunguan never manages, for the detection probe
UNLIMITED = -1


@dataclass(frozen=True)
class Target:
    service: Service
    legacy_key: str | None  # the quota-set key under the DB driver (None: not quotable)
    unified_name: str | None  # Keystone limit resource name under unified limits


MAPPING: dict[ResourceClass, Target] = {
    ResourceClass.VCPU: Target(Service.COMPUTE, "cores", "class:VCPU"),
    ResourceClass.MEMORY_MIB: Target(Service.COMPUTE, "ram", "class:MEMORY_MB"),
    ResourceClass.INSTANCES: Target(Service.COMPUTE, "instances", "servers"),
    ResourceClass.GPU: Target(Service.COMPUTE, None, "class:VGPU"),
    ResourceClass.DISK_GIB: Target(Service.VOLUME, "gigabytes", None),
    ResourceClass.FLOATING_IPS: Target(Service.NETWORK, "floatingip", None),
}
NOVA_CLASSES = tuple(
    rc for rc, t in MAPPING.items() if t.service is Service.COMPUTE and t.legacy_key
)
# Nova's /limits names for them: (limit, used).
NOVA_LIMITS_KEYS = {
    ResourceClass.VCPU: ("maxTotalCores", "totalCoresUsed"),
    ResourceClass.MEMORY_MIB: ("maxTotalRAMSize", "totalRAMUsed"),
    ResourceClass.INSTANCES: ("maxTotalInstances", "totalInstancesUsed"),
}


class Quotas:
    def __init__(self, session: CloudSession) -> None:
        self._s = session
        self._model: QuotaModel | None = session.settings.quota_model
        self._limits = KeystoneLimits(session)

    def supported(self) -> frozenset[ResourceClass]:
        classes = supported_classes(CloudKind.OPENSTACK) & set(MAPPING)
        if self._model is QuotaModel.DB:
            return classes - {ResourceClass.GPU}
        # Under unified limits GPU also needs a registered limit for class:VGPU;
        # that is checked (fresh) when one is written, not guessed here.
        return classes

    # -- write -----------------------------------------------------------------

    def set(
        self, project_id: str, limits: Mapping[ResourceClass, int], *, force: bool = False
    ) -> None:
        """Writes exactly `limits`. `force` (retirement) lets limits go below usage
        where the service allows it."""
        model = self._model or self._detect(project_id)
        if ResourceClass.GPU in limits and model is QuotaModel.DB:
            raise UnsupportedResourceClass(
                "gpu: Nova's DB quota driver has no GPU quota; GPU quotas need Keystone "
                "unified limits (class:VGPU)",
                cloud=self._s.cloud,
            )
        network = {rc: v for rc, v in limits.items() if MAPPING[rc].service is Service.NETWORK}
        if network:
            self._check_neutron_has(project_id, network)
        compute = {rc: v for rc, v in limits.items() if MAPPING[rc].service is Service.COMPUTE}
        if compute:
            self._set_compute(project_id, compute, model, force=force)
        volume = {rc: v for rc, v in limits.items() if MAPPING[rc].service is Service.VOLUME}
        if volume:
            self._set_cinder(project_id, volume, force=force)
        if network:
            body = {"quota": {MAPPING[rc].legacy_key: v for rc, v in network.items()}}
            self._call(
                Service.NETWORK, "PUT", f"/quotas/{project_id}", "set neutron quota", json=body
            )

    def retire(self, project_id: str) -> None:
        """Every managed limit to zero (Cinder: to current usage, see _set_cinder)."""
        model = self._model or self._detect(project_id)
        classes = set(self.supported())
        gpu = MAPPING[ResourceClass.GPU].unified_name
        if model is QuotaModel.UNIFIED and gpu not in self._limits.registered():
            classes.discard(ResourceClass.GPU)  # no registered limit: nothing to zero
        if "floatingip" not in self._neutron(project_id):
            classes.discard(ResourceClass.FLOATING_IPS)
        self.set(project_id, dict.fromkeys(classes, 0), force=True)

    def _set_compute(
        self,
        project_id: str,
        limits: Mapping[ResourceClass, int],
        model: QuotaModel,
        *,
        force: bool,
    ) -> None:
        self._write_compute(project_id, limits, model, force=force)
        if self._nova_agrees(project_id, limits, model):
            return
        if self._s.settings.quota_model is None:
            # Detected once, but the cloud switched quota models since: detect and retry once.
            previous, self._model = model, None
            model = self._detect(project_id)
            if model is not previous:
                log.warning("%s: Nova's quota model changed to %s", self._s.cloud, model.value)
                self._write_compute(project_id, limits, model, force=force)
                if self._nova_agrees(project_id, limits, model):
                    return
        raise ProviderRejected(
            f"Nova does not report the limits written ({_names(limits)}) with the "
            f"{model.value} quota model; check the cloud's [quota] driver",
            cloud=self._s.cloud,
        )

    def _write_compute(
        self,
        project_id: str,
        limits: Mapping[ResourceClass, int],
        model: QuotaModel,
        *,
        force: bool,
    ) -> None:
        if model is QuotaModel.UNIFIED:
            named = {str(MAPPING[rc].unified_name): v for rc, v in limits.items()}
            self._limits.set(project_id, named)
            return
        body: dict[str, Any] = {str(MAPPING[rc].legacy_key): v for rc, v in limits.items()}
        if force:
            body["force"] = True  # Nova otherwise refuses limits below current usage
        self._call(
            Service.COMPUTE,
            "PUT",
            f"/os-quota-sets/{project_id}",
            "set nova quota",
            json={"quota_set": body},
            microversion=NOVA_MICROVERSION,
        )

    def _nova_agrees(
        self, project_id: str, limits: Mapping[ResourceClass, int], model: QuotaModel
    ) -> bool:
        nova = self._nova_detail(project_id)
        for rc, value in limits.items():
            key = MAPPING[rc].legacy_key
            if key is None:
                continue  # GPU: Nova's quota-set has no such key; Keystone holds it
            if nova[key]["limit"] != value:
                return False
        return True

    def _set_cinder(
        self, project_id: str, limits: Mapping[ResourceClass, int], *, force: bool
    ) -> None:
        wanted = {str(MAPPING[rc].legacy_key): v for rc, v in limits.items()}
        if force:
            # Cinder has no force flag and refuses a limit below usage: a retired
            # tenant gets its current usage as the limit, so it cannot grow.
            current = self._cinder(project_id)
            wanted = {k: max(v, _used(current[k])) for k, v in wanted.items()}
        self._call(
            Service.VOLUME,
            "PUT",
            f"/os-quota-sets/{project_id}",
            "set cinder quota",
            json={"quota_set": wanted},
        )

    def _check_neutron_has(self, project_id: str, limits: Mapping[ResourceClass, int]) -> None:
        have = self._neutron(project_id)
        missing = [rc for rc in limits if MAPPING[rc].legacy_key not in have]
        if missing:
            raise UnsupportedResourceClass(
                f"{_names(dict.fromkeys(missing, 0))}: this cloud's Neutron has no such quota "
                "(floating IPs need the L3 router service plugin)",
                cloud=self._s.cloud,
            )

    # -- read ------------------------------------------------------------------

    def read(self, project_id: str) -> QuotaReading:
        """Limits and usage as the services enforce them (Nova reports Keystone's
        limits under unified limits, so its quota-set detail serves both models)."""
        limits: dict[ResourceClass, int | None] = {}
        in_use: dict[ResourceClass, int] = {}
        nova = self._nova_detail(project_id)
        for rc in NOVA_CLASSES:
            entry = nova[str(MAPPING[rc].legacy_key)]
            limits[rc], in_use[rc] = _limit(entry["limit"]), _used(entry)
        neutron = self._neutron(project_id)
        if "floatingip" in neutron:
            limits[ResourceClass.FLOATING_IPS] = _limit(neutron["floatingip"]["limit"])
            in_use[ResourceClass.FLOATING_IPS] = int(neutron["floatingip"].get("used", 0))
        self._read_volume_and_gpu(project_id, limits, in_use)
        return QuotaReading(limits=limits, in_use=in_use)

    def read_swept(self, project_id: str, floating_ips: tuple[int, int] | None) -> QuotaReading:
        """`read` for the quota sweep (sweep.py), in two calls instead of four:
        Nova's `/limits?tenant_id=` answers from the same quota-driver call as
        the quota-set detail (limits and counted usage, in both quota models)
        without the detail's round trip to Keystone to check the project, and
        Neutron's part (`floating_ips`: limit, used) comes from the sweep's
        cloud-wide listings."""
        limits: dict[ResourceClass, int | None] = {}
        in_use: dict[ResourceClass, int] = {}
        absolute = self._call(
            Service.COMPUTE,
            "GET",
            "/limits",
            "read nova limits",
            params={"tenant_id": project_id},
            microversion=NOVA_MICROVERSION,
        )["limits"]["absolute"]
        for rc, (limit_key, used_key) in NOVA_LIMITS_KEYS.items():
            limits[rc], in_use[rc] = _limit(absolute[limit_key]), int(absolute[used_key])
        if floating_ips is not None:
            limits[ResourceClass.FLOATING_IPS] = _limit(floating_ips[0])
            in_use[ResourceClass.FLOATING_IPS] = floating_ips[1]
        self._read_volume_and_gpu(project_id, limits, in_use)
        return QuotaReading(limits=limits, in_use=in_use)

    def _read_volume_and_gpu(
        self,
        project_id: str,
        limits: dict[ResourceClass, int | None],
        in_use: dict[ResourceClass, int],
    ) -> None:
        cinder = self._cinder(project_id)
        limits[ResourceClass.DISK_GIB] = _limit(cinder["gigabytes"]["limit"])
        in_use[ResourceClass.DISK_GIB] = _used(cinder["gigabytes"])
        if self._model is QuotaModel.UNIFIED:
            gpu = str(MAPPING[ResourceClass.GPU].unified_name)
            limits[ResourceClass.GPU] = self._limits.effective(project_id, gpu)
            in_use[ResourceClass.GPU] = self._placement_usage(project_id, "VGPU")

    def _nova_detail(self, project_id: str) -> dict[str, Any]:
        found = self._call(
            Service.COMPUTE,
            "GET",
            f"/os-quota-sets/{project_id}/detail",
            "read nova quota",
            microversion=NOVA_MICROVERSION,
        )
        quota_set: dict[str, Any] = found["quota_set"]
        return quota_set

    def _cinder(self, project_id: str) -> dict[str, Any]:
        found = self._call(
            Service.VOLUME,
            "GET",
            f"/os-quota-sets/{project_id}",
            "read cinder quota",
            params={"usage": "True"},
        )
        quota_set: dict[str, Any] = found["quota_set"]
        return quota_set

    def _neutron(self, project_id: str) -> dict[str, Any]:
        found = self._call(
            Service.NETWORK, "GET", f"/quotas/{project_id}/details", "read neutron quota"
        )
        quota: dict[str, Any] = found["quota"]
        return quota

    def _placement_usage(self, project_id: str, resource_class: str) -> int:
        found = self._call(
            Service.PLACEMENT,
            "GET",
            "/usages",
            "read placement usages",
            params={"project_id": project_id},
            microversion=PLACEMENT_USAGES_MICROVERSION,
        )
        return int(found["usages"].get(resource_class, 0))

    # -- detection -------------------------------------------------------------

    def _detect(self, project_id: str) -> QuotaModel:
        """Write-and-read-back probe on a key Yunguan does not manage, restored at once."""
        path = f"/os-quota-sets/{project_id}"
        before = self._call(
            Service.COMPUTE, "GET", path, "probe the quota model", microversion=NOVA_MICROVERSION
        )["quota_set"][PROBE_KEY]
        probe = before + 1 if before >= 0 else 1
        echoed = self._call(
            Service.COMPUTE,
            "PUT",
            path,
            "probe the quota model",
            json={"quota_set": {PROBE_KEY: probe}},
            microversion=NOVA_MICROVERSION,
        )["quota_set"][PROBE_KEY]
        if echoed == probe:
            self._call(
                Service.COMPUTE,
                "PUT",
                path,
                "restore after the quota-model probe",
                json={"quota_set": {PROBE_KEY: before}},
                microversion=NOVA_MICROVERSION,
            )
            model = QuotaModel.DB
        else:
            model = QuotaModel.UNIFIED
            if not self._limits.registered():
                raise ProviderAuthError(
                    "Nova ignores quota-set writes but Keystone has no registered limits "
                    "for compute: unified limits are not set up on this cloud",
                    cloud=self._s.cloud,
                )
        log.info("%s: Nova quota model detected: %s", self._s.cloud, model.value)
        self._model = model
        return model

    def _call(self, service: Service, method: str, path: str, action: str, **kwargs: Any) -> Any:
        return self._s.call(service, method, path, action=action, **kwargs)


def _limit(value: int) -> int | None:
    return None if value == UNLIMITED else int(value)


def _used(entry: Mapping[str, Any]) -> int:
    return int(entry.get("in_use", 0)) + int(entry.get("reserved", 0))


def _names(limits: Mapping[ResourceClass, int]) -> str:
    return ", ".join(sorted(rc.value for rc in limits))
