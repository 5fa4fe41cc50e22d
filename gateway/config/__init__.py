"""gateway.yaml, parsed once at start-up into frozen typed models (DESIGN.md section 3).

`model` holds the schema and the `gateway check` report, `units` the duration and size
syntax, `shown` how a value appears in an error (never a secret), `plugins` finding each
`use:` and validating its `with:`. Nothing else in the gateway reads YAML or the environment
at request time.

May import: nothing of the gateway (it is the floor every other package stands on).
"""

from gateway.config.model import (
    Argon2Params,
    Config,
    ConfigError,
    ConfigProblem,
    Duration,
    Lockout,
    Mfa,
    load_config,
    mask_urls,
    parse_config,
    shown_value,
    with_listeners,
)

__all__ = [
    "Argon2Params",
    "Config",
    "ConfigError",
    "ConfigProblem",
    "Duration",
    "Lockout",
    "Mfa",
    "load_config",
    "mask_urls",
    "parse_config",
    "shown_value",
    "with_listeners",
]
