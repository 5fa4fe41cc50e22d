"""Portcullis: a reverse-proxy security gateway for legacy web apps."""

__version__ = "0.1.0"
__all__ = ["__version__"]
