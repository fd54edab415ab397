"""jetjobs executor: pulls a pool's job messages and runs them as processes.

`ExecutorService(ExecutorConfig(nats_url=...)).start()` is all a caller needs;
everything else in this package is private."""

from typing import TYPE_CHECKING

from .config import ExecutorConfig, ExecutorConfigError

if TYPE_CHECKING:
    from .service import ExecutorService
else:

    def __getattr__(name: str) -> object:
        """The service is imported on first use, so importing a light part of this package stays cheap."""
        if name == "ExecutorService":
            from . import service

            return getattr(service, name)
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["ExecutorConfig", "ExecutorConfigError", "ExecutorService"]
