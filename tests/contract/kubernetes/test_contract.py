"""The shared provider contract, against the real kube-apiserver of the testbed."""

from __future__ import annotations

from tests.contract.suite import ProviderContract


class TestKubernetesContract(ProviderContract):
    """Fixtures (provider, tenant_spec, retire_after, quota_sample,
    unsupported_class) come from conftest.py."""
