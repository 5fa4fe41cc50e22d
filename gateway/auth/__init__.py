"""Accounts, the first factor and server-side sessions (DESIGN.md sections 5, 6, 7).

`users` owns user records and Argon2id, `sessions` owns session records and the cookie,
`identify` is the pipeline step that turns a cookie into an Identity, `pages` and `api` are the
/.gateway endpoints, `cli` the admin verbs. This package never decides route access (that is
the policy engine's job) and never logs a password, a session id or a cookie.
"""
