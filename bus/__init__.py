"""jetjobs bus: the only package that talks to NATS.

Services see small typed pieces: `Bus` (connection + publisher), `PullConsumer`
with `decode`/`settle`, `TemplateBoard`, and `ApiServer`/`ApiClient`.
"""

from .api import ApiClient, ApiServer
from .boards import (
    CancelBoard,
    CancelFeed,
    RunnerBoard,
    StoredMessage,
    delete_dispatch,
    dispatch_message,
    last_event,
    store_backlog,
)
from .connection import NATS_ERRORS, BusUnavailable, UnsupportedNats
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
from .peers import OlderStoreRunning, refuse_beside_older_stores
from .publish import EventTrail, Publisher, PublishFailed, TooLarge, encode
from .session import Bus
from .slots import stored_events
from .templates import Loaded, Removed, TemplateBoard, Unreadable
from .watch import job_events, live_events

__all__ = [
    "NATS_ERRORS",
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
    "OlderStoreRunning",
    "PublishFailed",
    "Publisher",
    "PullConsumer",
    "PullFeed",
    "Removed",
    "RunnerBoard",
    "StoredMessage",
    "TemplateBoard",
    "Term",
    "TooLarge",
    "Unreadable",
    "UnsupportedNats",
    "decode",
    "delete_dispatch",
    "dispatch_message",
    "encode",
    "job_events",
    "last_event",
    "live_events",
    "misaddressed",
    "refuse_beside_older_stores",
    "settle",
    "store_backlog",
    "stored_events",
]
