"""The OpenStack adapter: provincial, prefecture and Xinchuang clouds.

The only package that imports openstacksdk or keystoneauth1 (an import-linter
contract checks it). `adapter.OpenStackProvider` is its entry point, built by
`providers.registry`.
"""
