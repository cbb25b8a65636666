"""The Kubernetes adapter: namespaces, ResourceQuotas and node capacity behind the provider port.

The only package of Yunguan that imports the `kubernetes` client. Built by
`providers.registry` as `providers.kubernetes.adapter:KubernetesProvider`;
nothing here runs at import time.
"""
