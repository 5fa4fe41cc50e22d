"""The request path: everything a proxied request passes, in the order it meets it.

`app` (the aiohttp application and its observe middleware: metrics and the access log) hands
each request to `pipeline`, which runs the stages: canonicalize (`gateway.http.canonical`),
`endpoints` (the reserved /.gateway routes), `access` (match the rule), `identify` (session
cookie or plugin), `cross_site` (unsafe methods from another site), `access` again
(decide), `override` (method overrides refused),
`transform.request` (strip, identity headers, encrypt), `proxy` (forward, streaming),
`transform.response` (decrypt tokens and envelopes), `transform.accounting` (crypto counts).
`session` is the aiohttp-session storage the identify step and the portal use; `state` is
the per-app `Gateway` those stages share.

May import: config, the foundation modules, http, store, crypto, policy, auth (the accounts)
and hooks. Nothing below it imports the edge; the portal's handlers do.
"""
