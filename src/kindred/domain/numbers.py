"""Numbers in stored values: what counts as one wherever Kindred compares or adds values
(audience criteria in Python and SQL, calculated attributes)."""

from __future__ import annotations

import re

__all__ = ["NUMERAL", "number_of"]

# A number written as text: plain decimal notation, an exponent of at most two digits (so
# that every store reads the same numbers from the same text).
NUMERAL = r"[+-]?([0-9]{1,30}(\.[0-9]{0,30})?|\.[0-9]{1,30})([eE][+-]?[0-9]{1,2})?"
_NUMERAL = re.compile(NUMERAL)


def number_of(value: object) -> float | None:
    """A stored value as a number: numbers and plain decimal numerals, never booleans."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str) and _NUMERAL.fullmatch(value):
        return float(value)
    return None
