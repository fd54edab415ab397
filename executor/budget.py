"""Which earlier attempts of a message spend its retries.

`retries` counts the job's own failures. A message is delivered again for other
reasons too: an executor that stopped handed it back, one that could not start it
(a full TMPDIR, the store out of reach for its secrets) or was too slow to take it
let it go, one that died lost it. Counted as runs, a rolling restart during a job's
backoff left a failing job with fewer retries than it was given. So once a failing
attempt would be past the budget by count, the job's story in the events stream
says how many of the earlier attempts were failures of its own; the lookup is made
only then, never for a job within its budget."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from contracts.enums import ErrorKind, Status
from contracts.messages import JobEvent, JobMessage

Story = Callable[[str, str], Awaitable[Sequence[JobEvent]]]
"""A job's events the bus still holds, oldest first (by company and job id)."""


async def no_story(company: str, job_id: str) -> Sequence[JobEvent]:
    """A runtime without access to the events stream counts every attempt as a run."""
    return ()


def may_spare(message: JobMessage, number: int) -> bool:
    """Whether attempt `number` is past the message's retries by count, so that earlier
    attempts that were not failures could give it more."""
    return message.retries > 0 and number - message.attempt + 1 > message.retries


def spared(events: Sequence[JobEvent], message: JobMessage, number: int) -> int:
    """Attempts of this message before `number` that did not fail on their own: all of
    them but those that ended in an error other than `lost` (an attempt that left no
    event, let go before it was acknowledged, is spared too)."""
    failed = {
        e.attempt
        for e in events
        if message.attempt <= e.attempt < number and e.status is Status.ERROR and e.kind is not ErrorKind.LOST
    }
    return number - message.attempt - len(failed)


async def spared_attempts(story: Story, message: JobMessage, number: int) -> int:
    """`spared` from the job's story, 0 when it is not needed or cannot be read."""
    if not may_spare(message, number):
        return 0
    try:
        events = await story(message.company, message.job_id)
    except Exception:
        return 0
    return spared(events, message, number)
