"""Provider adapters: one small typed port, one adapter per cloud kind
(OpenStack, Kubernetes, Slurm). Only `providers.<kind>` imports its SDK.
"""
