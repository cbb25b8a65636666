"""Provisioning and reconciliation: outbox relay, operations, idempotent task
bodies, and the two ways to run them (Celery workers, or the in-process pool
of `yunguan up`). Task bodies take ids only and re-read desired state.
"""
