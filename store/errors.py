"""The store's errors a client may catch, apart from the modules that import asyncpg."""

from __future__ import annotations


class StoreUnavailable(Exception):
    """PostgreSQL could not be reached; the message names the URL and how to fix it."""
