"""A cheap first pass for backfills: which stored documents can possibly meet the criteria,
as substrings the profile's JSON document must contain. It only ever lets through more
than the criteria select (a superset); the evaluator still decides every profile it lets
through. Anything it cannot narrow safely passes everything (None)."""

from __future__ import annotations

import re

from kindred.audiences.ast import (
    All,
    AnyOf,
    AttributeCriterion,
    ConsentCriterion,
    EventCriterion,
    IdentityCriterion,
    Node,
)
from kindred.audiences.evaluate import history_key, text

__all__ = ["Has", "Held", "Needles", "needles"]

# Text that JSON writes as it is (no escapes), so a substring test on the document is exact.
_PLAIN = re.compile(r"[A-Za-z0-9 _.@:$-]+")
_POSITIVE = frozenset(
    {"exists", "equals", "contains", "includes", "partial_match", "is_true", "is_false"}
    | {"eq", "ne", "lt", "le", "gt", "ge", "between", "pattern"}
)


class Has(tuple[str, bool]):
    """The document contains this text (`folded`: compared case-insensitively)."""

    __slots__ = ()

    def __new__(cls, text: str, folded: bool = False) -> Has:
        return super().__new__(cls, (text, folded))


class Held(int):
    """The profile holds the membership of this audience (kept apart from the document)."""

    __slots__ = ()


# ("and", [...]) | ("or", [...]) | Has | Held
Needles = tuple[str, list["Needles"]] | Has | Held


def needles(node: Node) -> Needles | None:
    """What a matching profile's document must contain; None when it cannot be narrowed."""
    if isinstance(node, All):
        parts = [n for n in (needles(item) for item in node.items) if n is not None]
        if not parts:
            return None
        return parts[0] if len(parts) == 1 else ("and", parts)
    if isinstance(node, AnyOf):
        branches: list[Needles] = []
        for item in node.items:
            branch = needles(item)
            if branch is None:
                return None  # one branch lets everything through
            branches.append(branch)
        return ("or", branches)
    return _leaf(node)


def _leaf(node: Node) -> Needles | None:
    if isinstance(node, AttributeCriterion) and node.test.op in _POSITIVE:
        return _attribute(node)
    if isinstance(node, EventCriterion) and node.count >= 1 and node.count_op != "at_most":
        return _key(history_key(node))
    if isinstance(node, IdentityCriterion) and node.test.op in _POSITIVE:
        return _key(node.id_type)
    if isinstance(node, ConsentCriterion) and node.state in (
        "consented",
        "not_consented",
        "exists",
    ):
        return _key(node.purpose, folded=True) if node.purpose else None
    return None


def _attribute(node: AttributeCriterion) -> Needles | None:
    key = _key(node.key)
    if key is None or node.test.op not in ("equals", "includes"):
        return key
    # A value equal to the wanted one (as text, case aside) is written as that text. It is
    # looked for first: most documents that hold the key do not hold the value.
    value = text(node.test.value)
    if not _PLAIN.fullmatch(value):
        return key
    both: list[Needles] = [Has(value, True), key]
    return ("and", both)


def _key(name: str, *, folded: bool = False) -> Has | None:
    """The quoted key, when JSON writes it without escapes."""
    return Has(f'"{name}"', folded) if _PLAIN.fullmatch(name) else None
