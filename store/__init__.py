"""jetjobs store: the only package that talks to PostgreSQL.

It projects the bus into Postgres, keeps the templates KV for schedulers and
serves the API over NATS.
"""

from .db import StoreUnavailable
from .migrate import UnsupportedPostgres, migrate
from .service import StoreConfig, StoreService

__all__ = ["StoreConfig", "StoreService", "StoreUnavailable", "UnsupportedPostgres", "migrate"]
