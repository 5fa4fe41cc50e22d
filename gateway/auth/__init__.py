"""Accounts, factors and sessions: the identity library the edge and the pages use.

`users` owns user records and Argon2id, `sessions` the server-side session records and the
cookie's settings, `lockout` the failure counters (`Regulator`), `mfa` and `totp` the second
factor and backup codes, `audit` the audit trail writer, `redirects` where `next=` may go,
`service` bundles them per app (`AUTH`). The pages and JSON handlers that serve them are
`gateway.portal`; the admin verbs `gateway.cli.users`. This package never decides route access
(that is the policy engine's job) and never logs a password, a code, a session id or a cookie.

May import: config, the foundation modules, http, store and crypto. Never the edge, the portal
or hooks (plugins' password checks and audit observers are handed in).
"""
