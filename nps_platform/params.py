"""Whole numbers as people and scripts send them, in query strings and bodies.

`str.isdigit()` is true for "²" (which int() refuses) and for digits of other scripts, and
an id longer than 18 digits overflows a bigint column: both ended as server errors. An id,
a page number or a score here is at most 18 ASCII digits.
"""

import re

_WHOLE = re.compile(r"[0-9]{1,18}")


def whole_number(value) -> int | None:
    """`value` (text, surrounding spaces allowed, or an int) as a whole number from 0 to
    10¹⁸ − 1; None for anything else (signs, fractions, other scripts' digits, booleans)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 <= value < 10**18 else None
    if isinstance(value, str) and _WHOLE.fullmatch(value.strip()):
        return int(value.strip())
    return None
