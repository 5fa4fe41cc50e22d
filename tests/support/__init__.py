"""Reusable test helpers that start real services (redis-server, cluster, sentinel)."""
