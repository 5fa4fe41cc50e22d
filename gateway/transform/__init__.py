"""Request and response transformations of encrypting rules (DESIGN.md section 8)."""
