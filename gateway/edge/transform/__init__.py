"""Request and response transformations of encrypting rules (DESIGN.md section 8).

Owns the streaming paths around the `gateway.crypto` recipes: form, JSON, multipart and
whole-body requests sealed on the way in, tokens and envelopes opened on the way out. Never
logs plaintext; a corrupt envelope is a 502, never partial plaintext.

May import what the edge may; never the rest of the edge but the per-request state.
"""
