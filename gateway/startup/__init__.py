"""Start-up wiring: from a config file to a serving process.

`checks` is `gateway check` (config and policies, every problem at once), `assemble` builds
one worker's application (store, keys, accounts, plugins, policies, endpoints), `plugins`
starts the configured plugins, `audit_events` connects key and policy events to the audit
trail, `server` runs the listeners, the workers and the signals (SIGTERM drains, SIGHUP
reloads the policies).

May import every package but the CLI. Only the CLI and `gateway.demo` import it.
"""
