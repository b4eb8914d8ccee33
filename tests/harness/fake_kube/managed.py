"""Field ownership (`metadata.managedFields`) and server-side apply.

A field set is a set of paths; each path is a tuple of FieldsV1 elements:
`f:<field>` (map field), `k:{"name":"x"}` (keyed list item), `v:<json>` (set list value) and
`.` (the list item itself). Leaves are scalars, atomic lists and atomic/empty maps.

`apply()` implements server-side apply: conflicts against other managers, `force`, removal of
fields the applier stopped sending, and no-op detection left to the caller (identical results).
`track_update()` records non-apply writes (operation Update): changed fields move to that manager.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Set, Tuple

from .errors import ApiError
from .schema import is_atomic_map, is_set_list, merge_key

FieldPath = Tuple[str, ...]

_UNTRACKED_METADATA = {
    "name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp", "deletionTimestamp",
    "deletionGracePeriodSeconds", "managedFields", "selfLink", "generateName",
}
_MISSING = object()


def _key_element(item: Dict[str, Any], key: str) -> str:
    return "k:" + json.dumps({key: item.get(key)}, separators=(",", ":"), sort_keys=True)


def _scoped(obj: Dict[str, Any], subresource: Optional[str]) -> Dict[str, Any]:
    """The part of an object a write through `subresource` may own."""
    if subresource == "status":
        return {"status": obj["status"]} if "status" in obj else {}
    scoped = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "status")}
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in _UNTRACKED_METADATA}
    scoped.pop("metadata", None)
    if meta:
        scoped["metadata"] = meta
    return scoped


def field_set(obj: Optional[Dict[str, Any]], subresource: Optional[str] = None) -> Set[FieldPath]:
    return set(field_values(obj, subresource))


def field_values(obj: Optional[Dict[str, Any]], subresource: Optional[str] = None) -> Dict[FieldPath, Any]:
    """Every owned path of an object with the value it points at (`.` items map to True)."""
    out: Dict[FieldPath, Any] = {}
    if obj:
        _collect(_scoped(obj, subresource), (), (), out)
    return out


def _collect(value: Any, names: Tuple[str, ...], prefix: FieldPath, out: Dict[FieldPath, Any]) -> None:
    if isinstance(value, dict) and value and not is_atomic_map(names):
        for key, child in value.items():
            _collect(child, names + (key,), prefix + ("f:" + key,), out)
        return
    if isinstance(value, list) and value:
        key = merge_key(names)
        if key and all(isinstance(i, dict) and key in i for i in value):
            for item in value:
                item_prefix = prefix + (_key_element(item, key),)
                out[item_prefix + (".",)] = True
                for child_key, child in item.items():
                    _collect(child, names + (child_key,), item_prefix + ("f:" + child_key,), out)
            return
        if is_set_list(names) and all(not isinstance(i, (dict, list)) for i in value):
            for item in value:
                out[prefix + ("v:" + json.dumps(item, separators=(",", ":")),)] = item
            return
    if prefix:
        out[prefix] = value


def value_at(obj: Any, path: FieldPath) -> Any:
    """The value a field path points at, or _MISSING. `.` yields True when the item exists."""
    current = obj
    for element in path:
        if element == ".":
            return True
        kind, _sep, rest = element.partition(":")
        if kind == "f":
            if not isinstance(current, dict) or rest not in current:
                return _MISSING
            current = current[rest]
        elif kind == "k":
            wanted = json.loads(rest)
            if not isinstance(current, list):
                return _MISSING
            current = next((i for i in current if isinstance(i, dict)
                            and all(i.get(k) == v for k, v in wanted.items())), _MISSING)
            if current is _MISSING:
                return _MISSING
        elif kind == "v":
            wanted = json.loads(rest)
            return wanted if isinstance(current, list) and wanted in current else _MISSING
        else:
            return _MISSING
    return current


def remove_path(obj: Dict[str, Any], path: FieldPath) -> None:
    """Delete the field / list item / set value at `path` (in place), pruning maps it empties."""
    if path and path[-1] == ".":
        path = path[:-1]
    if not path:
        return
    parents: List[Tuple[Any, str]] = []
    current: Any = obj
    for element in path[:-1]:
        kind, _sep, rest = element.partition(":")
        if kind == "f" and isinstance(current, dict) and rest in current:
            parents.append((current, element))
            current = current[rest]
        elif kind == "k" and isinstance(current, list):
            wanted = json.loads(rest)
            match = next((i for i in current if isinstance(i, dict)
                          and all(i.get(k) == v for k, v in wanted.items())), None)
            if match is None:
                return
            parents.append((current, element))
            current = match
        else:
            return
    kind, _sep, rest = path[-1].partition(":")
    if kind == "f" and isinstance(current, dict):
        current.pop(rest, None)
    elif kind == "k" and isinstance(current, list):
        wanted = json.loads(rest)
        current[:] = [i for i in current
                      if not (isinstance(i, dict) and all(i.get(k) == v for k, v in wanted.items()))]
    elif kind == "v" and isinstance(current, list):
        wanted = json.loads(rest)
        current[:] = [i for i in current if i != wanted]
    # prune now-empty maps/lists left behind (not the top-level sections)
    for container, element in reversed(parents[1:]):
        kind, _sep, rest = element.partition(":")
        if kind == "f" and isinstance(container, dict) and container.get(rest) in ({}, []):
            container.pop(rest)


def to_fields_v1(paths: Iterable[FieldPath]) -> Dict[str, Any]:
    root: Dict[str, Any] = {}
    for path in sorted(paths):
        node = root
        for element in path:
            node = node.setdefault(element, {})
    return root


def from_fields_v1(tree: Dict[str, Any], prefix: FieldPath = ()) -> Set[FieldPath]:
    out: Set[FieldPath] = set()
    for element, child in (tree or {}).items():
        path = prefix + (element,)
        if element == "." or not child:
            out.add(path)
        else:
            out |= from_fields_v1(child, path)
    return out


def path_string(path: FieldPath) -> str:
    """`.spec.template.spec.containers[name="vllm"].image`, as apiserver conflict messages print it."""
    out = ""
    for element in path:
        kind, _sep, rest = element.partition(":")
        if kind == "f":
            out += "." + rest
        elif kind == "k":
            out += "[" + ",".join(f"{k}={json.dumps(v)}" for k, v in json.loads(rest).items()) + "]"
        elif kind == "v":
            out += f"[={rest}]"
    return out


# ------------------------------------------------------------------ managers


@dataclass
class Entry:
    manager: str
    operation: str
    api_version: str
    time: str
    subresource: str = ""
    fields: Set[FieldPath] = field(default_factory=set)

    @property
    def identity(self) -> Tuple[str, str, str]:
        return (self.manager, self.operation, self.subresource)

    def to_json(self) -> Dict[str, Any]:
        out = {"manager": self.manager, "operation": self.operation, "apiVersion": self.api_version,
               "time": self.time, "fieldsType": "FieldsV1", "fieldsV1": to_fields_v1(self.fields)}
        if self.subresource:
            out["subresource"] = self.subresource
        return out


def read_entries(obj: Optional[Dict[str, Any]]) -> List[Entry]:
    entries = []
    for raw in ((obj or {}).get("metadata") or {}).get("managedFields") or []:
        if not raw.get("manager") and not raw.get("fieldsV1"):
            continue
        entries.append(Entry(raw.get("manager", ""), raw.get("operation", "Update"), raw.get("apiVersion", ""),
                             raw.get("time", ""), raw.get("subresource", ""),
                             from_fields_v1(raw.get("fieldsV1") or {})))
    return entries


def write_entries(obj: Dict[str, Any], entries: List[Entry]) -> None:
    kept = [e.to_json() for e in entries if e.fields]
    meta = obj.setdefault("metadata", {})
    if kept:
        meta["managedFields"] = kept
    else:
        meta.pop("managedFields", None)


def _entry(entries: List[Entry], manager: str, operation: str, subresource: str, api_version: str,
           now: str) -> Entry:
    for entry in entries:
        if entry.identity == (manager, operation, subresource):
            return entry
    entry = Entry(manager, operation, api_version, now, subresource)
    entries.append(entry)
    return entry


def track_update(old: Optional[Dict[str, Any]], new: Dict[str, Any], manager: str, api_version: str,
                 now: str, subresource: str = "") -> None:
    """Record a non-apply write in `new`'s managedFields (in place)."""
    entries = read_entries(old)
    scope = "status" if subresource == "status" else None
    old_values = field_values(old, scope)
    new_values = field_values(new, scope)
    changed = {p for p, v in new_values.items() if old_values.get(p, _MISSING) != v}
    removed = set(old_values) - set(new_values)
    for entry in entries:
        entry.fields -= removed
        if entry.identity != (manager, "Update", subresource):
            entry.fields -= changed
    if changed:
        mine = _entry(entries, manager, "Update", subresource, api_version, now)
        mine.fields |= changed
        mine.time = now
        mine.api_version = api_version
    write_entries(new, entries)


def apply_merge(live: Any, applied: Any, names: Tuple[str, ...] = ()) -> Any:
    """Merge an apply configuration into the live object (keyed lists by key, sets by value)."""
    if isinstance(applied, dict) and isinstance(live, dict) and not is_atomic_map(names):
        result = dict(live)
        for key, value in applied.items():
            result[key] = apply_merge(live.get(key), value, names + (key,))
        return result
    if isinstance(applied, list) and isinstance(live, list):
        key = merge_key(names)
        if key and all(isinstance(i, dict) and key in i for i in applied + live):
            result = list(live)
            for item in applied:
                index = next((n for n, cur in enumerate(result) if cur.get(key) == item.get(key)), None)
                if index is None:
                    result.append(item)
                else:
                    result[index] = apply_merge(result[index], item, names)
            return result
        if is_set_list(names):
            return list(live) + [i for i in applied if i not in live]
    return json.loads(json.dumps(applied))


def conflict_error(plural: str, group: str, name: str, conflicts: List[Tuple[str, str, FieldPath]]) -> ApiError:
    causes = [{"reason": "FieldManagerConflict",
               "message": f'conflict with "{m}" using {v}',
               "field": path_string(p)} for m, v, p in conflicts]
    by_manager: Dict[Tuple[str, str], List[str]] = {}
    for m, v, p in conflicts:
        by_manager.setdefault((m, v), []).append(path_string(p))
    count = len(conflicts)
    if count == 1:
        (m, v), fields = next(iter(by_manager.items()))
        summary = f'Apply failed with 1 conflict: conflict with "{m}" using {v}: {fields[0]}'
    else:
        lines = []
        for (m, v), fields in by_manager.items():
            lines.append(f'conflicts with "{m}" using {v}:\n' + "\n".join(f"- {f}" for f in fields))
        summary = f"Apply failed with {count} conflicts: " + "\n".join(lines)
    return ApiError(409, summary, reason="Conflict", name=name, group=group, kind=plural, causes=causes)


def apply(live: Optional[Dict[str, Any]], applied: Dict[str, Any], manager: str, force: bool,
          api_version: str, now: str, plural: str, group: str, subresource: str = "") -> Dict[str, Any]:
    """Server-side apply of `applied` onto `live` (None: create). Returns the new object."""
    live = json.loads(json.dumps(live)) if live is not None else None
    entries = read_entries(live)
    scope = "status" if subresource == "status" else None
    config = _scoped(applied, scope)
    applied_values = field_values(applied, scope)
    live_values = field_values(live, scope)
    new_set = set(applied_values)
    name = (applied.get("metadata") or {}).get("name", "")
    mine_id = (manager, "Apply", subresource)
    conflicts: List[Tuple[str, str, FieldPath]] = []
    for entry in entries:
        if entry.identity == mine_id:
            continue  # managers are told apart by name, operation and subresource
        who = entry.manager + (f'" with subresource "{entry.subresource}' if entry.subresource else "")
        for path in sorted(new_set & entry.fields):
            if live_values.get(path, _MISSING) != applied_values[path]:
                conflicts.append((who, entry.api_version, path))
    if conflicts and not force:
        raise conflict_error(plural, group, name, conflicts)
    for _who, _version, path in conflicts:
        for entry in entries:
            if entry.identity != mine_id:
                entry.fields.discard(path)
    mine = _entry(entries, manager, "Apply", subresource, api_version, now)
    previous = set(mine.fields)
    merged = apply_merge(live or {}, config)
    # keep the identity/system metadata of the live object (or of the config on create)
    base_meta = dict((live or applied).get("metadata") or {})
    merged_meta = dict(merged.get("metadata") or {})
    for key in _UNTRACKED_METADATA:
        if key in base_meta:
            merged_meta[key] = base_meta[key]
    merged["metadata"] = merged_meta
    merged["apiVersion"] = applied.get("apiVersion", (live or {}).get("apiVersion"))
    merged["kind"] = applied.get("kind", (live or {}).get("kind"))
    others: Set[FieldPath] = set()
    for entry in entries:
        if entry is not mine:
            others |= entry.fields
    # whole list items first (their fields go with them), then the deepest fields first
    for path in sorted(previous - new_set, key=lambda p: (p[-1] != ".", -len(p))):
        item = path[:-1] if path[-1] == "." else path
        if path in others or any(o[:len(item)] == item for o in others):
            continue
        remove_path(merged, path)
    mine.fields = new_set
    mine.api_version = api_version
    if mine.fields != previous or not mine.time:
        mine.time = now
    write_entries(merged, entries)
    return merged
