"""A catalog cursor holds the key of the last item a page gave; the store takes back
only one shaped like its list's key, and a page starts from a cursor or an offset."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from contracts.api import ApiFailure, TemplateQuery
from contracts.base import INT8_MAX
from store.pages import cursor, cursor_key


def test_a_cursor_gives_back_the_key_it_was_made_of() -> None:
    made = cursor(("acme", "nightly ř/€", 42))
    assert made.isascii() and "=" not in made
    assert cursor_key("template.list", made, str, str, int) == ("acme", "nightly ř/€", 42)
    assert cursor_key("template.list", None, str, str, int) is None


@pytest.mark.parametrize(
    "after",
    [
        "not a cursor",
        "WyJh",  # cut short
        cursor(("acme",)),
        cursor(("acme", "nightly", "42")),
        cursor(("acme", "nightly", True)),
        cursor(("acme", "nightly", INT8_MAX + 1)),
        cursor(("acme", "night\x00ly", 42)),
    ],
)
def test_a_cursor_not_shaped_like_the_lists_key_is_refused(after: str) -> None:
    with pytest.raises(ApiFailure) as refused:
        cursor_key("template.list", after, str, str, int)
    assert refused.value.code == 400
    assert refused.value.message.startswith("template.list: `after` ")
    assert "send the `next` of its previous page unchanged" in refused.value.message


def test_a_page_starts_after_a_cursor_or_at_an_offset_not_both() -> None:
    assert TemplateQuery(after="x", offset=0).after == "x"
    with pytest.raises(ValidationError, match=r"give `after` .* or `offset`, not both"):
        TemplateQuery(after="x", offset=3)
