"""The shared provider contract, run against the real OpenStack testbed (DB quotas).

test_unified_limits.py runs the same suite again with Nova on Keystone unified limits.
"""

from __future__ import annotations

from tests.contract.suite import ProviderContract


class TestOpenStackContract(ProviderContract):
    pass
