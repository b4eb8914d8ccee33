"""The three classic patch formats: JSON merge patch (RFC 7386), strategic merge patch and
JSON patch (RFC 6902). Pure functions over JSON data; inputs are never mutated.

Server-side apply lives in `managed.py` (it needs field ownership, not just data).
"""

from __future__ import annotations

import json
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .errors import ApiError
from .schema import is_set_list, merge_key

_DELETE = object()  # sentinel: `$patch: delete` on a map removes it from its parent


def _copy(value: Any) -> Any:
    return json.loads(json.dumps(value))


# ------------------------------------------------------------------ JSON merge patch


def merge_patch(original: Any, patch: Any) -> Any:
    """RFC 7386: maps merge recursively, null deletes, everything else (lists too) replaces."""
    return _merge_into(_copy(original), patch)


def _merge_into(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return _copy(patch)
    if not isinstance(target, dict):
        target = {}
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        else:
            target[key] = _merge_into(target.get(key), value)
    return target


# ------------------------------------------------------------------ strategic merge patch


def strategic_merge_patch(original: Any, patch: Any, path: Tuple[str, ...] = ()) -> Any:
    """Kubernetes strategic merge patch.

    Lists with a merge key (containers by name, ports by containerPort, env by name, ...) merge
    item by item; `$patch: delete|replace|merge`, `$retainKeys`, `$deleteFromPrimitiveList/<f>`
    and `$setElementOrder/<f>` directives are honoured; primitive set lists (finalizers) union.
    """
    result = _smp_map(original if isinstance(original, dict) else {}, patch, path)
    return {} if result is _DELETE else result


def _smp_map(original: Dict[str, Any], patch: Dict[str, Any], path: Tuple[str, ...]) -> Any:
    if not isinstance(patch, dict):
        raise ApiError(400, f"unable to find api field in struct for the json field {'.'.join(path)!r}")
    directive = patch.get("$patch")
    if directive == "delete":
        return _DELETE
    if directive == "replace":
        return _strip_directives({k: v for k, v in patch.items() if k != "$patch"})
    if directive not in (None, "merge"):
        raise ApiError(400, f"Unknown patch type: {directive}")
    result = _copy(original)
    orders: Dict[str, List[Any]] = {}
    retain = patch.get("$retainKeys")
    for key, value in patch.items():
        if key in ("$patch", "$retainKeys"):
            continue
        if key.startswith("$setElementOrder/"):
            orders[key.split("/", 1)[1]] = value
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            if isinstance(result.get(field), list):
                result[field] = [v for v in result[field] if v not in (value or [])]
            continue
        if value is None:
            result.pop(key, None)
            continue
        child = path + (key,)
        current = result.get(key)
        if isinstance(value, dict):
            merged = _smp_map(current if isinstance(current, dict) else {}, value, child)
            if merged is _DELETE:
                result.pop(key, None)
            else:
                result[key] = merged
        elif isinstance(value, list):
            result[key] = _smp_list(current if isinstance(current, list) else [], value, child)
        else:
            result[key] = value
    for field, order in orders.items():
        if isinstance(result.get(field), list):
            result[field] = _apply_order(result[field], order, merge_key(path + (field,)))
    if retain is not None:
        result = {k: v for k, v in result.items() if k in retain}
    return result


def _smp_list(original: List[Any], patch: List[Any], path: Tuple[str, ...]) -> List[Any]:
    if any(isinstance(item, dict) and item.get("$patch") == "replace" and len(item) == 1 for item in patch):
        return [_strip_directives(i) for i in patch if not (isinstance(i, dict) and i.get("$patch") == "replace")]
    key = merge_key(path)
    if key is not None and all(isinstance(i, dict) for i in patch):
        result = _copy(original)
        for item in patch:
            if key not in item:
                raise ApiError(400, f"map: {item} does not contain declared merge key: {key}")
            index = next((n for n, cur in enumerate(result)
                          if isinstance(cur, dict) and cur.get(key) == item[key]), None)
            if item.get("$patch") == "delete":
                if index is not None:
                    result.pop(index)
                continue
            if index is None:
                result.append(_strip_directives(item))
            else:
                merged = _smp_map(result[index], item, path)
                result[index] = merged
        return result
    if is_set_list(path):
        result = _copy(original)
        for item in patch:
            if item not in result:
                result.append(item)
        return result
    return _strip_directives(patch)


def _apply_order(items: List[Any], order: List[Any], key: Optional[str]) -> List[Any]:
    def ident(item: Any) -> Any:
        return json.dumps(item.get(key) if key and isinstance(item, dict) else item, sort_keys=True)

    wanted = [ident(o) for o in order]
    ranked = {w: n for n, w in enumerate(wanted)}
    return sorted(items, key=lambda i: ranked.get(ident(i), len(wanted)))


def _strip_directives(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_directives(v) for k, v in value.items()
                if not k.startswith("$") and v is not None}
    if isinstance(value, list):
        return [_strip_directives(v) for v in value]
    return value


# ------------------------------------------------------------------ JSON patch


def _pointer(path: str) -> List[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise ApiError(422, f'invalid JSON pointer "{path}"', reason="Invalid")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _walk(doc: Any, parts: Sequence[str], path: str) -> Any:
    current = doc
    for part in parts:
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            raise _patch_error(f"doc is missing path: {path}")
    return current


def _patch_error(message: str) -> ApiError:
    return ApiError(422, message, reason="Invalid")


def _add(doc: Any, parts: List[str], value: Any, path: str, replace: bool = False) -> Any:
    if not parts:
        return value
    parent = _walk(doc, parts[:-1], path)
    last = parts[-1]
    if isinstance(parent, dict):
        if replace and last not in parent:
            raise _patch_error(f"replace operation does not apply: doc is missing key: {path}")
        parent[last] = value
    elif isinstance(parent, list):
        if last == "-" and not replace:
            parent.append(value)
        elif last.isdigit() and int(last) <= len(parent) - (1 if replace else 0):
            if replace:
                parent[int(last)] = value
            else:
                parent.insert(int(last), value)
        else:
            raise _patch_error(f"add operation does not apply: doc is missing path: {path}")
    else:
        raise _patch_error(f"doc is missing path: {path}")
    return doc


def _remove(doc: Any, parts: List[str], path: str) -> Tuple[Any, Any]:
    if not parts:
        raise _patch_error("cannot remove the whole document")
    parent = _walk(doc, parts[:-1], path)
    last = parts[-1]
    if isinstance(parent, dict) and last in parent:
        return doc, parent.pop(last)
    if isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        return doc, parent.pop(int(last))
    raise _patch_error(f"remove operation does not apply: doc is missing path: {path}")


def json_patch(original: Any, operations: Any) -> Any:
    """RFC 6902: add, remove, replace, move, copy, test. A failed op is a 422 like the apiserver's."""
    if not isinstance(operations, list):
        raise ApiError(400, "json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    doc = _copy(original)
    for op in operations:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise ApiError(400, f"invalid JSON patch operation: {op}")
        kind, path = op["op"], op["path"]
        parts = _pointer(path)
        if kind == "add":
            doc = _add(doc, parts, _copy(op.get("value")), path)
        elif kind == "remove":
            doc, _removed = _remove(doc, parts, path)
        elif kind == "replace":
            if not parts:
                doc = _copy(op.get("value"))
            else:
                doc = _add(doc, parts, _copy(op.get("value")), path, replace=True)
        elif kind in ("move", "copy"):
            source = _pointer(op.get("from", ""))
            if kind == "move":
                doc, value = _remove(doc, source, op.get("from", ""))
            else:
                value = _copy(_walk(doc, source, op.get("from", "")))
            doc = _add(doc, parts, value, path)
        elif kind == "test":
            if _walk(doc, parts, path) != op.get("value"):
                raise _patch_error(f"testing value {path} failed: test operation does not apply: "
                                   "is not equal to expected value")
        else:
            raise _patch_error(f"Unexpected kind: {kind}")
    return doc
