"""Our quantity parser and printer against the apiserver's own (apimachinery, v1.20.2).

Each input is sent as `requests.cpu` of a ResourceQuota created with
dryRun=All (validated and defaulted, never stored) and the apiserver's
spelling is compared with ours:

- the value it stored equals ours, after its one rounding: every
  ResourceList value is rounded UP to milli precision on write;
- where it re-spelled the input, its spelling is our canonical one. (It keeps
  an input verbatim when its parser deems it canonical already, e.g. "1.",
  "+3", "01"; then only the value is compared.)
"""

from __future__ import annotations

import math
from fractions import Fraction

from kubernetes.client import CoreV1Api

from providers.base import TenantRef, TenantSpec
from providers.kubernetes.adapter import KubernetesProvider
from providers.kubernetes.quantities import canonical, parse_value

INPUTS = [
    "1.5", "1500m", "2Gi", "2048Mi", "1e3", "1.5e3", "1E3", "100Ki", "1M", "0.5Gi",
    "1.5Ki", ".5", "1.", "12345", "0.1", "1536", "1024", "1023", "5e-3", "+3", "3.0",
    "0", "0Gi", "1k", "1000k", "1000000m", "1.5e0", "7Ei", "1e18", "1.G", "12e5",
    "123456789e3", "2048Ki", "1025Ki", "10e2", "1E", "1.5Mi", "0.1Mi", "01", "1.50",
    "1.0Gi", "0.5", "5.", "+.5", "1Ti", "3Pi", "1T", "4P", "250m", "1u", "1n", "1500u",
    "0.0001Ki", "1.5n",
]  # fmt: skip


def _milli_ceiling(value: Fraction) -> Fraction:
    return Fraction(math.ceil(value * 1000), 1000)


def test_quantities_match_the_apiserver(
    provider: KubernetesProvider,
    tenant_spec: TenantSpec,
    retire_after: list[TenantRef],
    core: CoreV1Api,
) -> None:
    tenant = provider.ensure_tenant(tenant_spec)
    retire_after.append(tenant)
    respelled = 0
    for text in INPUTS:
        body = {"metadata": {"name": "probe"}, "spec": {"hard": {"requests.cpu": text}}}
        stored = core.create_namespaced_resource_quota(tenant.provider_id, body, dry_run="All")
        theirs = stored.spec.hard["requests.cpu"]
        assert parse_value(theirs) == _milli_ceiling(parse_value(text)), (text, theirs)
        exact_at_milli = parse_value(text) == _milli_ceiling(parse_value(text))
        if theirs != text and exact_at_milli:
            respelled += 1
            assert canonical(text) == theirs, (text, theirs)
    assert respelled >= 20, "the comparison must cover the re-spelling rules"
