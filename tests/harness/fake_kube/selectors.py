"""Label and field selectors: parsing the query-string syntax and matching objects.

Plain functions over plain data; the kubelet simulator reuses `match_label_selector` for
`spec.selector` objects (matchLabels / matchExpressions) and node affinity.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from .errors import ApiError

_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


@dataclass(frozen=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!", "gt", "lt"
    values: Tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        value = labels.get(self.key)
        if self.op == "exists":
            return present
        if self.op == "!":
            return not present
        if self.op in ("=", "in"):
            return present and value in self.values
        if self.op in ("!=", "notin"):
            return not present or value not in self.values
        if self.op in ("gt", "lt"):
            try:
                number = int(value) if present else None
            except ValueError:
                return False
            if number is None:
                return False
            bound = int(self.values[0])
            return number > bound if self.op == "gt" else number < bound
        raise ValueError(self.op)


def _split_top_level(text: str) -> List[str]:
    """Split on commas that are not inside `in (...)` value sets."""
    parts, depth, current = [], 0, []
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return [p.strip() for p in parts if p.strip()]


def _bad(why: str) -> ApiError:
    return ApiError(400, f"unable to parse requirement: {why}")


def _check_key(key: str, selector: str) -> str:
    if not key or len(key) > 316 or not _KEY.match(key):
        raise _bad(f'values[0][{key}]: Invalid value: "{key}": name part must consist of alphanumeric '
                   "characters, '-', '_' or '.'")
    return key


def _check_value(value: str, selector: str) -> str:
    if len(value) > 63 or not _VALUE.match(value):
        raise _bad(f'values[0][{value}]: Invalid value: "{value}": a valid label must be an empty string '
                   "or consist of alphanumeric characters, '-', '_' or '.'")
    return value


_SET_RE = re.compile(r"^(?P<key>\S+)\s+(?P<op>in|notin)\s*\((?P<values>[^)]*)\)$")
_CMP_RE = re.compile(r"^(?P<key>[^=!<>\s]+)\s*(?P<op>==|=|!=|>|<)\s*(?P<value>[^=!<>\s]*)$")


def parse_label_selector(selector: Optional[str]) -> List[Requirement]:
    """`app=x,tier!=db,env in (a,b),!legacy,gpu` -> requirements (ANDed). Raises ApiError(400)."""
    if not selector:
        return []
    reqs: List[Requirement] = []
    for part in _split_top_level(selector):
        match = _SET_RE.match(part)
        if match:
            values = tuple(_check_value(v.strip(), selector) for v in match["values"].split(",") if v.strip())
            if not values:
                raise _bad(f"for '{match['op']}', 'notin' operators, values set can't be empty")
            reqs.append(Requirement(_check_key(match["key"], selector), match["op"], values))
            continue
        if part.startswith("!"):
            reqs.append(Requirement(_check_key(part[1:].strip(), selector), "!"))
            continue
        match = _CMP_RE.match(part)
        if match:
            op = {"==": "=", "=": "=", "!=": "!=", ">": "gt", "<": "lt"}[match["op"]]
            value = match["value"]
            if op in ("gt", "lt") and not re.match(r"^-?\d+$", value):
                raise _bad(f"for 'Gt', 'Lt' operators, the value must be an integer: {value}")
            reqs.append(Requirement(_check_key(match["key"], selector), op, (_check_value(value, selector),)))
            continue
        if re.match(r"^[^=!<>\s(),]+$", part):
            reqs.append(Requirement(_check_key(part, selector), "exists"))
            continue
        raise _bad(f"found '{part}', expected: ',', '=', '!=', 'in', 'notin' or end of string")
    return reqs


def labels_match(requirements: Sequence[Requirement], labels: Optional[Mapping[str, str]]) -> bool:
    labels = labels or {}
    return all(req.matches(labels) for req in requirements)


def match_label_selector(selector: Optional[Mapping[str, Any]], labels: Optional[Mapping[str, str]]) -> bool:
    """Match a `metav1.LabelSelector` object. An empty selector matches everything, None matches nothing."""
    if selector is None:
        return False
    labels = labels or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        if not match_expression(expr, labels):
            return False
    return True


def match_expression(expr: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """One `matchExpressions` item (In, NotIn, Exists, DoesNotExist, Gt, Lt) against a label map."""
    op = expr.get("operator")
    key = expr.get("key")
    values = tuple(str(v) for v in expr.get("values") or ())
    mapping = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!", "Gt": "gt", "Lt": "lt"}
    if op not in mapping:
        return False
    return Requirement(key, mapping[op], values).matches(labels)


def selector_to_string(selector: Optional[Mapping[str, Any]]) -> str:
    """A LabelSelector object rendered in query syntax (as `metav1.FormatLabelSelector` does)."""
    if not selector:
        return ""
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr.get("key"), expr.get("operator"), ",".join(sorted(expr.get("values") or []))
        if op == "In":
            parts.append(f"{key} in ({values})")
        elif op == "NotIn":
            parts.append(f"{key} notin ({values})")
        elif op == "Exists":
            parts.append(key)
        elif op == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(parts)


# ---------------------------------------------------------------- field selectors


@dataclass(frozen=True)
class FieldRequirement:
    path: Tuple[str, ...]
    op: str  # "=" or "!="
    value: str

    def matches(self, obj: Mapping[str, Any]) -> bool:
        actual = field_value(obj, self.path)
        return (actual == self.value) if self.op == "=" else (actual != self.value)


def field_value(obj: Mapping[str, Any], path: Sequence[str]) -> str:
    """The string form a field selector compares against; absent fields read as ""."""
    current: Any = obj
    for part in path:
        if isinstance(current, Mapping) and part in current:
            current = current[part]
        else:
            return ""
    if current is None:
        return ""
    if isinstance(current, bool):
        return "true" if current else "false"
    if isinstance(current, (dict, list)):
        return ""
    return str(current)


def parse_field_selector(selector: Optional[str]) -> List[FieldRequirement]:
    """`metadata.name=x,status.phase!=Running`; any dotted path is accepted."""
    if not selector:
        return []
    reqs = []
    for part in _split_top_level(selector):
        match = re.match(r"^(?P<path>[A-Za-z0-9_.\-/]+)\s*(?P<op>==|=|!=)\s*(?P<value>.*)$", part)
        if not match:
            raise ApiError(400, f'invalid selector: \'{selector}\'; can\'t understand \'{part}\'')
        op = "!=" if match["op"] == "!=" else "="
        reqs.append(FieldRequirement(tuple(match["path"].split(".")), op, match["value"].strip()))
    return reqs


def fields_match(requirements: Sequence[FieldRequirement], obj: Mapping[str, Any]) -> bool:
    return all(req.matches(obj) for req in requirements)


def object_matches(obj: Optional[Dict[str, Any]], labels: Sequence[Requirement],
                   fields: Sequence[FieldRequirement]) -> bool:
    if obj is None:
        return False
    return labels_match(labels, (obj.get("metadata") or {}).get("labels")) and fields_match(fields, obj)
