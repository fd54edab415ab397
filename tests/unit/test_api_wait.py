"""How long the store gives an API request, from the caller's `Jetjobs-Timeout`."""

from __future__ import annotations

import pytest

from bus import api


@pytest.mark.parametrize(
    ("header", "wait"),
    [(None, 10.0), ("3", 3.0), ("0.0001", 1.0), ("0", 10.0), ("-2", 10.0), ("nan", 10.0), ("soon", 10.0)],
)
def test_the_store_takes_the_callers_wait_from_its_header(header: str | None, wait: float) -> None:
    """No header or a nonsensical one is `ApiClient`'s 10 s; a caller's tiny timeout is at
    least a second, so it is not reported as PostgreSQL too slow."""
    headers = {} if header is None else {api.TIMEOUT_HEADER: header}
    assert api._caller_wait(headers) == wait
