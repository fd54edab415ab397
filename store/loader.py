"""Reading the store's SQL files: named query blocks and numbered migrations."""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from importlib import resources

_HEADER = re.compile(r"^-- name: ([a-z_][a-z0-9_]*) --[ \t]*$", re.MULTILINE)
_MIGRATION = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class SqlFileError(Exception):
    """A packaged SQL file is malformed: a bug in the package, not in the user's input."""


@dataclass(frozen=True)
class Query:
    """One named block of `queries.sql`."""

    name: str
    doc: str
    sql: str


@dataclass(frozen=True)
class Migration:
    """One numbered schema change."""

    version: int
    name: str
    sql: str


def _block(name: str, body: str) -> Query:
    lines = body.strip().splitlines()
    if not lines or not lines[0].startswith("-- "):
        raise SqlFileError(f"query {name}: the line after its name must say what it does (`-- ...`)")
    sql = "\n".join(lines[1:]).strip().rstrip(";").strip()
    if not sql:
        raise SqlFileError(f"query {name}: no SQL")
    return Query(name, lines[0][3:].strip(), sql)


def parse_queries(text: str) -> dict[str, Query]:
    """The named blocks of a query file: `-- name: x --`, a one-line comment, the SQL."""
    parts = _HEADER.split(text)
    found: dict[str, Query] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in found:
            raise SqlFileError(f"query {name} is defined twice")
        found[name] = _block(name, body)
    return found


@functools.cache
def queries() -> dict[str, Query]:
    """Every query of `store/sql/queries.sql`, read once."""
    text = resources.files("store").joinpath("sql", "queries.sql").read_text(encoding="utf-8")
    return parse_queries(text)


def check_sequence(found: list[Migration]) -> list[Migration]:
    """Migrations are numbered from 1 up, each number once. A gap is allowed: work
    merged from parallel branches may leave one until its neighbour lands, and
    each migration is applied by number, whatever the order it arrives in."""
    previous = 0
    for migration in found:
        if migration.version <= previous:
            raise SqlFileError(
                f"migration {migration.version:04d}_{migration.name}: number used twice or below 1"
            )
        previous = migration.version
    return found


@functools.cache
def migrations() -> tuple[Migration, ...]:
    """Every migration shipped in `store/migrations`, in order."""
    folder = resources.files("store").joinpath("migrations")
    found = []
    for entry in folder.iterdir():
        match = _MIGRATION.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    return tuple(check_sequence(sorted(found, key=lambda m: m.version)))
