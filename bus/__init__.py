"""jetjobs bus: the only package that talks to NATS.

Services see small typed pieces: `Bus` (connection + publisher), `PullConsumer`
with `decode`/`settle`, `TemplateBoard`, and `ApiServer`/`ApiClient`.
"""

from .api import ApiClient, ApiServer
from .boards import CancelBoard, CancelFeed, RunnerBoard, delete_dispatch, last_event, store_backlog
from .connection import BusUnavailable, UnsupportedNats
from .consume import (
    Ack,
    Action,
    Delivery,
    Invalid,
    Nak,
    PullConsumer,
    PullFeed,
    Term,
    decode,
    misaddressed,
    settle,
)
from .infra import InfrastructureDrift, Layout
from .publish import EventTrail, Publisher, PublishFailed, encode
from .session import Bus
from .templates import Loaded, Removed, TemplateBoard
from .watch import job_events, live_events

__all__ = [
    "Ack",
    "Action",
    "ApiClient",
    "ApiServer",
    "Bus",
    "BusUnavailable",
    "CancelBoard",
    "CancelFeed",
    "Delivery",
    "EventTrail",
    "InfrastructureDrift",
    "Invalid",
    "Layout",
    "Loaded",
    "Nak",
    "PublishFailed",
    "Publisher",
    "PullConsumer",
    "PullFeed",
    "Removed",
    "RunnerBoard",
    "TemplateBoard",
    "Term",
    "UnsupportedNats",
    "decode",
    "delete_dispatch",
    "encode",
    "job_events",
    "last_event",
    "live_events",
    "misaddressed",
    "settle",
    "store_backlog",
]
