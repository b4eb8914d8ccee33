"""Go's `time.Parse` for the two layouts Kubernetes objects use, with Go's error texts.

`metav1.Time` decodes RFC 3339 (`2006-01-02T15:04:05Z07:00`: a fraction is accepted when present);
`metav1.MicroTime` decodes `2006-01-02T15:04:05.000000Z07:00`: exactly six fractional digits, so a
Lease `renewTime` of `2025-01-01T10:00:00Z` is refused with
`parsing time "2025-01-01T10:00:00Z" as "2006-01-02T15:04:05.000000Z07:00": cannot parse "Z" as ".000000"`.
"""

from __future__ import annotations

import calendar
import json
from typing import List, Optional, Tuple

RFC3339 = "2006-01-02T15:04:05Z07:00"
RFC3339_MICRO = "2006-01-02T15:04:05.000000Z07:00"

# (layout element, kind): literals are matched as they are, the rest parsed as Go's std chunks
_CHUNKS = {
    RFC3339: [("2006", "year"), ("-", None), ("01", "month"), ("-", None), ("02", "day"), ("T", None),
              ("15", "hour"), (":", None), ("04", "minute"), (":", None), ("05", "second"), ("Z07:00", "zone")],
    RFC3339_MICRO: [("2006", "year"), ("-", None), ("01", "month"), ("-", None), ("02", "day"), ("T", None),
                    ("15", "hour"), (":", None), ("04", "minute"), (":", None), ("05", "second"),
                    (".000000", "micro"), ("Z07:00", "zone")],
}


def _quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


class GoTimeError(ValueError):
    pass


def _cannot(layout: str, value: str, rest: str, elem: str) -> GoTimeError:
    return GoTimeError(f"parsing time {_quote(value)} as {_quote(layout)}: cannot parse {_quote(rest)} as "
                       f"{_quote(elem)}")


def _digits(text: str, count: int) -> Optional[int]:
    if len(text) < count or not text[:count].isdigit():
        return None
    return int(text[:count])


def parse(value: str, layout: str) -> Tuple[int, ...]:
    """(year, month, day, hour, minute, second) or GoTimeError with Go's message."""
    rest = value
    fields: List[int] = []
    ranges = {"month": (1, 12), "hour": (0, 23), "minute": (0, 59), "second": (0, 59)}
    for elem, kind in _CHUNKS[layout]:
        if kind is None:
            if not rest.startswith(elem):
                raise _cannot(layout, value, rest, elem)
            rest = rest[len(elem):]
            continue
        if kind == "year":
            number = _digits(rest, 4)
            if number is None:
                raise _cannot(layout, value, rest, elem)
            rest = rest[4:]
        elif kind == "hour":  # Go's "15" takes one or two digits
            width = 2 if _digits(rest, 2) is not None else 1
            number = _digits(rest, width)
            if number is None:
                raise _cannot(layout, value, rest, elem)
            rest = rest[width:]
        elif kind in ("month", "day", "minute", "second"):
            number = _digits(rest, 2)
            if number is None:
                raise _cannot(layout, value, rest, elem)
            rest = rest[2:]
            if kind == "second" and layout == RFC3339 and len(rest) >= 2 and rest[0] in ".," and rest[1].isdigit():
                end = 1
                while end < len(rest) and rest[end].isdigit():
                    end += 1
                rest = rest[end:]  # a fraction the layout does not name is accepted when parsing
        elif kind == "micro":
            if len(rest) < 7 or rest[0] not in ".," or not rest[1:7].isdigit():
                raise _cannot(layout, value, rest, elem)
            rest = rest[7:]
            continue
        else:  # zone
            if rest.startswith("Z"):
                rest = rest[1:]
                continue
            if len(rest) < 6 or rest[0] not in "+-" or rest[3] != ":" or not (rest[1:3] + rest[4:6]).isdigit():
                raise _cannot(layout, value, rest, elem)
            rest = rest[6:]
            continue
        low_high = ranges.get(kind)
        if low_high and not low_high[0] <= number <= low_high[1]:
            raise GoTimeError(f"parsing time {_quote(value)}: {kind} out of range")
        fields.append(number)
    if rest:
        raise GoTimeError(f"parsing time {_quote(value)}: extra text: {_quote(rest)}")
    year, month, day = fields[0], fields[1], fields[2]
    if not 1 <= day <= calendar.monthrange(year or 2000, month)[1]:
        raise GoTimeError(f"parsing time {_quote(value)}: day out of range")
    return tuple(fields)
