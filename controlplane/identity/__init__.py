"""Identity: users, API tokens, roles bound to scopes, the audit log.

`roles` and `principal` are pure; `tokens` mints and checks secrets; `store`
and `audit` persist inside the caller's unit of work; `oidc` maps government
single sign-on JWTs to a principal.
"""
