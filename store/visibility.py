"""Whose rows a list shows: a list without a company filter holds rows of many
companies, and each query that makes one takes a `Reader` and leaves out, in the
same statement as its limit (so `limit` counts only rows the actor may see), the
companies that list actors and give this one none of the reading roles:

    company <> ALL (ARRAY(SELECT co.code FROM company co JOIN company_actor ca …
        GROUP BY co.code HAVING NOT bool_or(ca.actor = $actor AND ca.role = ANY ($roles))))

That list is computed once per statement; tests/unit/test_store_actors.py checks
that every such query spells it alike."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Reader:
    """The actor a list is for, and the roles that let an actor read a closed company."""

    actor: str
    roles: list[str]
