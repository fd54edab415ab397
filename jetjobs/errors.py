"""Errors the CLI catches whose raisers it imports only when a command needs them."""

from __future__ import annotations


class EmbeddedError(Exception):
    """An embedded server could not be found, started or controlled."""


class MetricsServerError(Exception):
    """The metrics port cannot be opened; the message says which and how to fix it."""
