"""The store's SQL files: well-formed, each query wrapped by exactly one method."""

from __future__ import annotations

import inspect

import pytest

from store.loader import Migration, SqlFileError, check_sequence, migrations, parse_queries, queries
from store.queries import Queries


def test_named_blocks_are_parsed_with_their_doc_line() -> None:
    text = "-- header\n\n-- name: one --\n-- Does one thing.\nSELECT 1;\n\n-- name: two --\n-- Two.\nSELECT\n  2\n"
    found = parse_queries(text)
    assert list(found) == ["one", "two"]
    assert found["one"].doc == "Does one thing." and found["one"].sql == "SELECT 1"
    assert found["two"].sql == "SELECT\n  2"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("-- name: a --\nSELECT 1", "must say what it does"),
        ("-- name: a --\n-- Doc.\n", "no SQL"),
        ("-- name: a --\n-- A.\nSELECT 1;\n-- name: a --\n-- A.\nSELECT 2;", "defined twice"),
    ],
)
def test_malformed_blocks_are_refused(text: str, problem: str) -> None:
    with pytest.raises(SqlFileError, match=problem):
        parse_queries(text)


def test_every_query_has_exactly_one_method() -> None:
    methods = {name for name, _ in inspect.getmembers(Queries, inspect.iscoroutinefunction)}
    used = {name for name in queries() if f'"{name}"' in inspect.getsource(Queries)}
    assert used == set(queries()), "every query in queries.sql is called from store.queries"
    assert set(queries()) <= methods


def test_migrations_are_numbered_once_each_in_order() -> None:
    found = migrations()
    versions = [m.version for m in found]
    assert versions == sorted(set(versions))
    assert found[0].name == "initial"
    assert check_sequence([Migration(1, "a", ""), Migration(3, "b", "")])
    with pytest.raises(SqlFileError, match="0003_c: number used twice"):
        check_sequence([Migration(1, "a", ""), Migration(3, "b", ""), Migration(3, "c", "")])
