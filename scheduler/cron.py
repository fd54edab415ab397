"""When a template fires: the contract's pure cron arithmetic, re-exported for
the scheduler (see `contracts.cron` for the DST rules)."""

from contracts.cron import fires_between, next_fire, next_fires, resolve

__all__ = ["fires_between", "next_fire", "next_fires", "resolve"]
