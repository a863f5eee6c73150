"""Simplifying a criteria tree without changing what it selects: flatten nested and/or,
drop constants, undo double exclusion, drop repeated criteria."""

from __future__ import annotations

from kindred.audiences.ast import All, AnyOf, Const, Exclude, Node

__all__ = ["simplify"]


def simplify(node: Node) -> Node:
    if isinstance(node, Exclude):
        inner = simplify(node.item)
        if isinstance(inner, Exclude):
            return inner.item
        if isinstance(inner, Const):
            return Const(not inner.value)
        return Exclude(inner)
    if isinstance(node, All | AnyOf):
        return _combine(node)
    return node


def _combine(node: All | AnyOf) -> Node:
    is_all = isinstance(node, All)
    identity, absorbing = is_all, not is_all  # and: True is neutral, False decides
    items: list[Node] = []
    for child in (simplify(item) for item in node.items):
        if isinstance(child, Const):
            if child.value == absorbing:
                return Const(absorbing)
            continue  # the neutral constant
        same_kind = isinstance(child, All) if is_all else isinstance(child, AnyOf)
        for grandchild in child.items if same_kind else (child,):  # type: ignore[union-attr]
            if grandchild not in items:
                items.append(grandchild)
    if not items:
        return Const(identity)
    if len(items) == 1:
        return items[0]
    return All(tuple(items)) if is_all else AnyOf(tuple(items))
