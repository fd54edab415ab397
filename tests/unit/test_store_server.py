"""The PostgreSQL versions the store accepts, said before any migration runs."""

from __future__ import annotations

import pytest

from store import UnsupportedPostgres
from store.migrate import OLDEST_POSTGRES, check_server


def test_an_older_server_is_refused_with_what_to_do() -> None:
    with pytest.raises(UnsupportedPostgres) as refused:
        check_server(12, 18)
    message = str(refused.value)
    assert f"PostgreSQL {OLDEST_POSTGRES} or newer" in message and "this server is 12.18" in message
    assert "JETJOBS_DATABASE_URL" in message


@pytest.mark.parametrize("major", [OLDEST_POSTGRES, 15, 18])
def test_supported_servers_pass(major: int) -> None:
    check_server(major, 0)
