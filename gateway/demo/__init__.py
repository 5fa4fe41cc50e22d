"""A small "legacy" notes app and a one-command demo that starts it behind the gateway.

The demo runs the gateway as a separate process (`python -m gateway.cli`), as an operator would.
May import: the config package only.
"""
