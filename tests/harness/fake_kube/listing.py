"""List and watch options as kube-apiserver reads them: `resourceVersion` and `resourceVersionMatch`
semantics, pagination with continue tokens, and ListOptions validation.

List `resourceVersion`:
- unset: the most recent state (a consistent read);
- `0`: any state the watch cache has (the newest here); `limit` is ignored, as the cache does;
- `N` (match `NotOlderThan`, the default): a state at least as new as N. A revision the server has
  not reached yet is waited for up to 3 s, then `504 Timeout: Too large resource version`;
- `N` with match `Exact`: the state at revision N, read from etcd's history: 410 Expired once N is
  compacted (`The resourceVersion for the provided list is too old.`).
Continue tokens pin the revision of the first page; a compacted one is 410 with the apiserver's text.
"""

from __future__ import annotations

import base64
import json
from typing import Any, Dict, List, Mapping, Optional, Tuple

from .errors import ApiError, invalid
from .store import CONTINUE_EXPIRED

TOO_LARGE_WAIT_SECONDS = 3.0


def _forbidden(path: str, detail: str) -> Dict[str, str]:
    return {"reason": "FieldValueForbidden", "field": path, "message": f"Forbidden: {detail}"}


def validate_list_options(query: Mapping[str, str], watch: bool) -> None:
    """ValidateListOptions (k8s.io/apimachinery/pkg/apis/meta/internalversion/validation), WatchList on."""
    errors: List[Dict[str, str]] = []
    match = query.get("resourceVersionMatch", "")
    rv = query.get("resourceVersion", "")
    send_initial = query.get("sendInitialEvents")
    if watch:
        if send_initial is not None:
            if match != "NotOlderThan":
                errors.append(_forbidden("resourceVersionMatch",
                                         "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan"))
            if send_initial.lower() in ("1", "true") and \
                    query.get("allowWatchBookmarks", "").lower() not in ("1", "true"):
                errors.append(_forbidden("allowWatchBookmarks",
                                         "sendInitialEvents requires setting allowWatchBookmarks to true"))
        if match:
            if send_initial is None:
                errors.append(_forbidden("resourceVersionMatch",
                                         "resourceVersionMatch is forbidden for watch unless sendInitialEvents is "
                                         "provided"))
            if match != "NotOlderThan":
                errors.append({"reason": "FieldValueNotSupported", "field": "resourceVersionMatch",
                               "message": f'Unsupported value: "{match}": supported values: "NotOlderThan"'})
    else:
        if send_initial is not None:
            errors.append(_forbidden("sendInitialEvents", "sendInitialEvents is forbidden for list"))
        if match:
            if not rv:
                errors.append(_forbidden("resourceVersionMatch",
                                         "resourceVersionMatch is forbidden unless resourceVersion is provided"))
            if query.get("continue"):
                errors.append(_forbidden("resourceVersionMatch",
                                         "resourceVersionMatch is forbidden when continue is provided"))
            if match not in ("Exact", "NotOlderThan"):
                errors.append({"reason": "FieldValueNotSupported", "field": "resourceVersionMatch",
                               "message": f'Unsupported value: "{match}": supported values: "Exact", '
                                          '"NotOlderThan", ""'})
            if match == "Exact" and rv == "0":
                errors.append(_forbidden("resourceVersionMatch",
                                         'resourceVersionMatch "exact" is forbidden for resourceVersion "0"'))
    if errors:
        raise invalid("ListOptions", "meta.k8s.io", "", errors)


def parse_resource_version(text: str) -> int:
    try:
        value = int(text)
        if value < 0:
            raise ValueError(text)
        return value
    except ValueError:
        raise ApiError(400, f'invalid resource version: strconv.ParseUint: parsing "{text}": invalid syntax') \
            from None


def too_large(wanted: int, current: int) -> ApiError:
    """storage.NewTooLargeResourceVersionError: 504 Timeout with a ResourceVersionTooLarge cause."""
    return ApiError(504, f"Timeout: Too large resource version: {wanted}, current: {current}", reason="Timeout",
                    details={"retryAfterSeconds": 1},
                    causes=[{"reason": "ResourceVersionTooLarge", "message": "Too large resource version"}])


def encode_continue(rv: int, last_key: str) -> str:
    token = {"v": "meta.k8s.io/v1", "rv": rv, "start": last_key + "\u0000"}
    return base64.urlsafe_b64encode(json.dumps(token, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_continue(token: str) -> Tuple[int, str]:
    try:
        padded = token + "=" * (-len(token) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if data.get("v") != "meta.k8s.io/v1":
            raise ValueError("version")
        rv, start = int(data["rv"]), str(data["start"])
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise ApiError(400, "continue key is not valid: incorrect encoded start resourceVersion (version "
                            "meta.k8s.io/v1)") from None
    if rv <= 0:
        raise ApiError(400, "continue key is not valid: incorrect encoded start resourceVersion (version "
                            "meta.k8s.io/v1)")
    return rv, start


def item_key(obj: Dict[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return f"{meta['namespace']}/{meta['name']}" if meta.get("namespace") else meta["name"]


def paginate(items: List[Dict[str, Any]], limit: Optional[str], rv: int, start: Optional[str],
             selectors: bool) -> Tuple[List[Dict[str, Any]], Optional[str], Optional[int]]:
    """(page, continue token, remainingItemCount) of `items` (ordered by key) after `start`."""
    if start is not None:
        items = [i for i in items if item_key(i) + "\u0000" > start]
    if limit is not None and not limit.lstrip("-").isdigit():
        raise ApiError(400, f'invalid limit: strconv.ParseInt: parsing "{limit}": invalid syntax')
    size = int(limit) if limit else 0
    if size <= 0 or len(items) <= size:
        return items, None, None
    page = items[:size]
    remaining = None if selectors else len(items) - size
    return page, encode_continue(rv, item_key(page[-1])), remaining


def continue_expired(rv: int, compacted: int) -> ApiError:
    return ApiError(410, CONTINUE_EXPIRED, reason="Expired")
