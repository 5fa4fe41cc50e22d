"""A small "legacy" notes app and a one-command demo that starts it behind the gateway."""
