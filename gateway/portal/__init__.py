"""The portal: the gateway's own /.gateway pages and JSON handlers (DESIGN.md section 5).

`pages` serves login, logout, password change and the account page, `mfa_pages` the
challenge, enrollment and backup codes, `api` the account API (me, sessions), `forms` reads
posted forms and JSON and checks CSRF and origin, `mfa_flow` the steps between a first factor
and a full session; `templates/` and `static/` are their HTML and CSS. Each handler registers
with `gateway.edge.endpoints.route`. New sign-in pages (OIDC callbacks, passkeys) belong here;
what they verify belongs in `gateway.auth`.

May import: everything the edge may, plus the edge itself (the route registry, `identify`,
the shared state). Only `gateway.startup` imports it (to register the routes).
"""
