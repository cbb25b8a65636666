"""Quota allocation: the hierarchical grant tree, requests, approvals and admission.

Pure domain code: no web framework, ORM, Celery or cloud SDK (import-linter enforces it).
"""
