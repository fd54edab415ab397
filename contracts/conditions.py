"""A tiny, safe condition language for flow edges (never Python `eval`).

Grammar::

    expr       := or
    or         := and ("or" and)*
    and        := unary ("and" unary)*
    unary      := "not" unary | "(" expr ")" | comparison
    comparison := ref [op literal]
    ref        := NODE "." KEY              e.g.  check.count
    op         := == | != | < | <= | > | >=
    literal    := number | 'text' | "text" | true | false

Result values are strings. A number literal compares numerically (a value that
is not a number makes the comparison false); a text literal compares as text;
`true`/`false` match `true|1|yes` / `false|0|no`. A lone `ref` is true when the
key exists and is not empty, `0` or `false`. A missing key makes every
comparison false except `!=`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

Results = Mapping[str, Mapping[str, str]]
"""Result values by node, then by key."""

_TOKEN = re.compile(
    r"\s*(?:(?P<num>-?\d+(?:\.\d+)?)|(?P<str>'[^']*'|\"[^\"]*\")|(?P<op>==|!=|<=|>=|<|>)"
    r"|(?P<paren>[()])|(?P<ref>[A-Za-z_][A-Za-z0-9_-]*\.[A-Za-z_][A-Za-z0-9_.-]*)"
    r"|(?P<word>[A-Za-z_][A-Za-z0-9_-]*))"
)
_TRUE = ("true", "1", "yes")
_FALSE = ("false", "0", "no", "")


MAX_NESTING = 32
"""Parentheses and `not`s a condition may nest: the parser, and every walk of its
tree, recurse once per level."""
MAX_TERMS = 256
"""Comparisons one condition may hold: a chain of `and`s or `or`s is a tree as deep
as it is long."""


class ConditionError(ValueError):
    """A condition that does not parse; the message points at the problem."""


@dataclass(frozen=True)
class Ref:
    node: str
    key: str


@dataclass(frozen=True)
class Compare:
    ref: Ref
    op: str | None
    value: str | float | bool | None


@dataclass(frozen=True)
class Not:
    operand: Condition


@dataclass(frozen=True)
class Both:
    left: Condition
    right: Condition


@dataclass(frozen=True)
class Either:
    left: Condition
    right: Condition


Condition = Compare | Not | Both | Either


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    stripped = text.rstrip()
    while pos < len(stripped):
        match = _TOKEN.match(stripped, pos)
        if match is None or match.end() == pos:
            raise ConditionError(f"unexpected {stripped[pos:].strip()[:20]!r} at position {pos}")
        kind = match.lastgroup or ""
        out.append((kind, match.group(kind)))
        pos = match.end()
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.pos = 0
        self.depth = 0
        self.terms = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> tuple[str, str]:
        token = self.peek()
        if token is None:
            raise ConditionError("the condition ends too early")
        self.pos += 1
        return token

    def word(self, name: str) -> bool:
        token = self.peek()
        if token is not None and token[0] == "word" and token[1].lower() == name:
            self.pos += 1
            return True
        return False

    def expr(self) -> Condition:
        node = self.conj()
        while self.word("or"):
            node = Either(node, self.conj())
        return node

    def conj(self) -> Condition:
        node = self.unary()
        while self.word("and"):
            node = Both(node, self.unary())
        return node

    def unary(self) -> Condition:
        if self.word("not"):
            return Not(self.nested(self.unary))
        kind, text = self.take()
        if (kind, text) == ("paren", "("):
            inner = self.nested(self.expr)
            if self.take() != ("paren", ")"):
                raise ConditionError("a '(' is not closed")
            return inner
        if kind != "ref":
            raise ConditionError(f"expected <node>.<key>, got {text!r}")
        self.terms += 1
        if self.terms > MAX_TERMS:
            raise ConditionError(f"more than {MAX_TERMS} comparisons: split the condition across nodes")
        node, _, key = text.partition(".")
        return self.comparison(Ref(node, key))

    def nested(self, inner: Callable[[], Condition]) -> Condition:
        """`inner` one level deeper, refused past `MAX_NESTING`."""
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise ConditionError(f"parentheses and 'not' nested more than {MAX_NESTING} deep: simplify it")
        try:
            return inner()
        finally:
            self.depth -= 1

    def comparison(self, ref: Ref) -> Compare:
        token = self.peek()
        if token is None or token[0] != "op":
            return Compare(ref, None, None)
        self.pos += 1
        return Compare(ref, token[1], _literal(*self.take()))


def _literal(kind: str, text: str) -> str | float | bool:
    if kind == "num":
        return float(text)
    if kind == "str":
        return text[1:-1]
    if kind == "word" and text.lower() in ("true", "false"):
        return text.lower() == "true"
    raise ConditionError(f"expected a number, 'text', true or false after the operator, got {text!r}")


def parse(text: str) -> Condition:
    """The syntax tree of a condition, or ConditionError."""
    parser = _Parser(text)
    if not parser.tokens:
        raise ConditionError("the condition is empty")
    tree = parser.expr()
    if parser.peek() is not None:
        raise ConditionError(f"unexpected {parser.peek()[1]!r} after a complete condition")  # type: ignore[index]
    return tree


def refs(tree: Condition) -> set[str]:
    """The nodes a condition reads results of."""
    match tree:
        case Compare(ref=ref):
            return {ref.node}
        case Not(operand):
            return refs(operand)
        case Both(left, right) | Either(left, right):
            return refs(left) | refs(right)


_ORDER: dict[str, Callable[[object, object], bool]] = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,  # type: ignore[operator]
    "<=": lambda a, b: a <= b,  # type: ignore[operator]
    ">": lambda a, b: a > b,  # type: ignore[operator]
    ">=": lambda a, b: a >= b,  # type: ignore[operator]
}


def _coerce(raw: str, like: str | float | bool | None) -> str | float | bool | None:
    if isinstance(like, bool):
        low = raw.lower()
        return True if low in _TRUE else False if low in _FALSE else None
    if isinstance(like, float):
        try:
            return float(raw)
        except ValueError:
            return None
    return raw


def _compare(node: Compare, results: Results) -> bool:
    raw = results.get(node.ref.node, {}).get(node.ref.key)
    if node.op is None:
        return raw is not None and raw.lower() not in _FALSE
    if raw is None:
        return node.op == "!="
    value = _coerce(raw, node.value)
    if value is None:
        return node.op == "!="
    return _ORDER[node.op](value, node.value)


def evaluate(tree: Condition, results: Results) -> bool:
    """Whether the condition holds for these results."""
    match tree:
        case Compare():
            return _compare(tree, results)
        case Not(operand):
            return not evaluate(operand, results)
        case Both(left, right):
            return evaluate(left, results) and evaluate(right, results)
        case Either(left, right):
            return evaluate(left, results) or evaluate(right, results)
