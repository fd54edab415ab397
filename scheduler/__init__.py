"""jetjobs scheduler: publishes each run template's slots to the dispatch stream.

The public surface is the service and its config; `next_fire` / `fires_between`
are the pure schedule arithmetic other parts (CLI previews, tests) may reuse.
"""

from .cron import fires_between, next_fire
from .service import SchedulerConfig, SchedulerService

__all__ = ["SchedulerConfig", "SchedulerService", "fires_between", "next_fire"]
