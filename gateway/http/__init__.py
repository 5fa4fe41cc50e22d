"""The vocabulary of one HTTP request, shared by the edge, the auth pages and plugins.

`canonical` is the one canonical form of a request path (what rules match and the upstream
receives); `headers` the client's view (address, scheme, host) and the identity headers;
`errors` the error hierarchy and the one place an error becomes a response; `exchange` the
per-request state the pipeline steps fill in. Nothing here does I/O or knows a rule, a store
or a session.

May import: the config package and the foundation modules (`gateway.clock`, `gateway.metrics`,
`gateway.logs`). `canonical` imports nothing at all, so the policy library can use it.
"""
