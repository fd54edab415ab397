"""jetjobs executor: pulls a pool's job messages and runs them as processes.

`ExecutorService(ExecutorConfig(nats_url=...)).start()` is all a caller needs;
everything else in this package is private."""

from .config import ExecutorConfig, ExecutorConfigError
from .service import ExecutorService

__all__ = ["ExecutorConfig", "ExecutorConfigError", "ExecutorService"]
