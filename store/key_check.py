"""Saying at start what no configured key opens: values sealed under a key that has
since been dropped (an old CLI's `rotate-key` left template secrets under the old key,
say) fail each job that needs them, so the operator hears of it before any job does."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import structlog

from .credentials import Keyring
from .tenant_queries import TenantQueries

log = structlog.get_logger("jetjobs.store")


async def warn_unopenable(pool: Any, keyring: Keyring | None) -> dict[str, dict[str, int]]:
    """Log a warning naming each key that sealed values use and the store lacks, with how
    many of each kind; returns them, by key id."""
    missing: dict[str, dict[str, int]] = defaultdict(dict)
    for key, kind, count in await TenantQueries(pool).sealed_by_key():
        if keyring is None or not keyring.holds(key):
            missing[key][kind] = count
    for key, kinds in sorted(missing.items()):
        counted = ", ".join(f"{count} {kind}" for kind, count in sorted(kinds.items()))
        log.warning(
            "store.key_missing",
            key=key,
            sealed=dict(kinds),
            fix=(
                f"{counted} are encrypted with key {key}, which this store does not have: jobs that "
                "need them fail; add that key to JETJOBS_SECRET_KEY_FILE (then `jetjobs credentials "
                "rotate-key` moves them to the first key)"
            ),
        )
    return dict(missing)
