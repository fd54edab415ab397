"""jetjobs store: the only package that talks to PostgreSQL.

It projects the bus into Postgres, keeps the templates KV for schedulers and
serves the API over NATS.
"""

from typing import TYPE_CHECKING

from .errors import StoreUnavailable
from .migrate import NewerSchema, UnsupportedPostgres, migrate

if TYPE_CHECKING:
    from .service import StoreConfig, StoreService
else:

    def __getattr__(name: str) -> object:
        """The service is imported on first use, so importing a light part of this package stays cheap."""
        if name in ("StoreConfig", "StoreService"):
            from . import service

            return getattr(service, name)
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["NewerSchema", "StoreConfig", "StoreService", "StoreUnavailable", "UnsupportedPostgres", "migrate"]
