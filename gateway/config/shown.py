"""How a config value appears in an error report: never a secret, never a URL's credentials.

Used by the config report and by plugin option checks alike. Pure functions.
"""

from __future__ import annotations

import re

__all__ = ["mask_urls", "shown_value"]

# The userinfo of any URL (`scheme://user:password@host`), wherever it appears in a value.
_USERINFO = re.compile(r"(?<=://)[^/@\s'\"]*@")


def mask_urls(text: str) -> str:
    """`text` with the credentials of every URL in it replaced by `***`."""
    return _USERINFO.sub("***@", text)


def shown_value(value: object) -> str:
    """A value as an error report shows it once its key is known not to be secret: a mapping
    by its key names, URL credentials masked, at most 80 characters."""
    if isinstance(value, dict):
        # Key names only: a mapping under an unknown key may hold a secret under any name.
        return "{" + ", ".join(f"{k}: ..." for k in map(str, value)) + "}"
    text = mask_urls(repr(value))
    return text if len(text) <= 80 else text[:77] + "..."
