"""jetjobs scheduler: publishes each run template's slots to the dispatch stream.

The public surface is the service and its config; `next_fire` / `fires_between`
are the pure schedule arithmetic other parts (CLI previews, tests) may reuse.
"""

from typing import TYPE_CHECKING

from .cron import fires_between, next_fire

if TYPE_CHECKING:
    from .service import SchedulerConfig, SchedulerService
else:

    def __getattr__(name: str) -> object:
        """The service is imported on first use, so importing a light part of this package stays cheap."""
        if name in ("SchedulerConfig", "SchedulerService"):
            from . import service

            return getattr(service, name)
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["SchedulerConfig", "SchedulerService", "fires_between", "next_fire"]
