"""Chroma `where` filter semantics in plain Python, for signals that do not go through Chroma.

    matches_where({"year": 1999, "genres": ["drama"]},
                  {"$and": [{"year": {"$gte": 1990}}, {"genres": {"$not_contains": "horror"}}]})

Mirrors Chroma 1.x: a missing key fails every operator except `$ne`, `$nin` and
`$not_contains`; `$contains`/`$not_contains` test membership in list values (a scalar never
contains anything); `$eq`/`$in` compare whole values, so a list never equals a scalar; ordering
operators compare numbers with numbers (bools excluded) and strings with strings.
A bare value (`{"year": 1999}`) means `$eq`; several keys in one dict are ANDed (Chroma itself
requires an explicit `$and` there).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

_MISSING = object()
_PASS_IF_MISSING = frozenset({"$ne", "$nin", "$not_contains"})


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _orderable(a: Any, b: Any) -> bool:
    return (_is_number(a) and _is_number(b)) or (isinstance(a, str) and isinstance(b, str))


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    return a == b


_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "$eq": _same,
    "$ne": lambda v, x: not _same(v, x),
    "$gt": lambda v, x: _orderable(v, x) and v > x,
    "$gte": lambda v, x: _orderable(v, x) and v >= x,
    "$lt": lambda v, x: _orderable(v, x) and v < x,
    "$lte": lambda v, x: _orderable(v, x) and v <= x,
    "$in": lambda v, x: any(_same(v, o) for o in x),
    "$nin": lambda v, x: not any(_same(v, o) for o in x),
    "$contains": lambda v, x: isinstance(v, list) and any(_same(e, x) for e in v),
    "$not_contains": lambda v, x: not (isinstance(v, list) and any(_same(e, x) for e in v)),
}


def _match_field(value: Any, condition: Any) -> bool:
    if not isinstance(condition, Mapping):
        condition = {"$eq": condition}
    for op, operand in condition.items():
        test = _OPERATORS.get(op)
        if test is None:
            raise ValueError(f"unsupported filter operator {op!r}: use one of {sorted(_OPERATORS)}")
        if value is _MISSING:
            if op not in _PASS_IF_MISSING:
                return False
            continue
        if not test(value, operand):
            return False
    return True


def matches_where(metadata: Mapping[str, Any], where: Mapping[str, Any] | None) -> bool:
    """True when `metadata` satisfies the Chroma-style filter `where` (None/{} match all)."""
    if not where:
        return True
    for key, condition in where.items():
        if key == "$and":
            ok = all(matches_where(metadata, sub) for sub in condition)
        elif key == "$or":
            ok = any(matches_where(metadata, sub) for sub in condition)
        elif key.startswith("$"):
            raise ValueError(f"unsupported filter operator {key!r} at the top level: use $and/$or")
        else:
            ok = _match_field(metadata.get(key, _MISSING), condition)
        if not ok:
            return False
    return True
