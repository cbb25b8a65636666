"""The Slurm adapter: NSCC Changsha's accounts and association limits behind the provider port.

A Yunguan tenant is a Slurm account whose parents mirror the org tree
(province → prefecture → department → project), so slurmctld itself enforces
every level of the grants. Built by `providers.registry` from a cloud's
`{kind: slurm, url, jwt_key_file, user, cluster?, slurm_conf?}` connection;
see `adapter.SlurmProvider` and the README section "Slurm (NSCC Changsha)".

Modules, by operation family: `client` (slurmrestd over httpx), `tokens`
(HS256 JWTs), `commands` (the sacctmgr/scontrol runner), `errors` (Slurm's
replies → the port's error tree), `naming`, `tres`, `tenants`, `quotas`,
`capacity`, `health`, `inventory`, and `adapter` tying them together.
"""
