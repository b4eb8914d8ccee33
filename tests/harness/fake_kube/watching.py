"""Watch streams as kube-apiserver's cacher serves them.

- From `resourceVersion` N: the watch cache's events after N, or one `ERROR` event with
  `410 Expired: too old resource version: N (M)` when the cache no longer holds them (store.py).
- Without one (or `0`): synthetic `ADDED` events for the current state, then changes.
- `sendInitialEvents=true` (with `resourceVersionMatch=NotOlderThan` and bookmarks): the current
  state, then a `BOOKMARK` annotated `k8s.io/initial-events-end: "true"`.
- Bookmarks (`allowWatchBookmarks=true`): one every `bookmark_interval` (the cacher's
  `defaultBookmarkFrequency`: 1 minute), plus one `deadline_margin` (2 s) before the watch's
  timeout so a client can resume from it; a watch shorter than the margin gets none, as upstream.
- A watch without `timeoutSeconds` ends after a random 30-60 minutes (`--min-request-timeout`
  1800 s, doubled at most), as the apiserver does.
"""

from __future__ import annotations

import asyncio
import json
import random
from typing import TYPE_CHECKING, Any, Dict, Optional, Tuple

from aiohttp import web

from . import listing, tables
from .errors import ApiError
from .resources import Resource
from .selectors import object_matches, parse_field_selector, parse_label_selector
from .store import Event, Gone, Watcher

if TYPE_CHECKING:  # pragma: no cover
    from .server import KubeHTTP

MIN_REQUEST_TIMEOUT = 1800.0


def _truthy(value: Optional[str]) -> bool:
    return (value or "").lower() in ("1", "true", "yes")


async def serve_watch(http: "KubeHTTP", request: web.Request, res: Resource,
                      namespace: Optional[str]) -> web.StreamResponse:
    api, store = http.api, http.store
    q = request.query
    listing.validate_list_options(q, watch=True)
    labels = parse_label_selector(q.get("labelSelector"))
    fields = parse_field_selector(q.get("fieldSelector"))
    bookmarks = _truthy(q.get("allowWatchBookmarks"))
    initial_events = _truthy(q.get("sendInitialEvents"))
    rv_text = q.get("resourceVersion", "")
    since = None if rv_text in ("", "0") or initial_events else listing.parse_resource_version(rv_text)
    try:
        timeout = float(q["timeoutSeconds"]) if q.get("timeoutSeconds") else None
    except ValueError:
        raise ApiError(400, f'invalid timeout: "{q.get("timeoutSeconds")}"') from None
    if timeout is None:
        timeout = MIN_REQUEST_TIMEOUT * (1 + random.random())
    as_table = "Table" == _accepts_as(request)
    loop = asyncio.get_running_loop()
    watcher = Watcher(res, namespace, loop)
    response = web.StreamResponse(headers={"Content-Type": "application/json",
                                           "Cache-Control": "no-cache, private"})
    try:
        initial = store.subscribe(watcher, since)
    except Gone as gone:
        await response.prepare(request)
        await response.write(json.dumps({"type": "ERROR", "object": gone.body}).encode() + b"\n")
        await response.write_eof()
        return response
    api.watches.add(watcher)
    state = {"headers": True}

    async def send(event_type: str, obj: Dict[str, Any], event: Optional[Event] = None) -> None:
        if as_table and event_type in ("ADDED", "MODIFIED", "DELETED"):
            obj = tables.table(res.kind, [obj], obj["metadata"].get("resourceVersion", ""),
                               q.get("includeObject", "Metadata"), headers=state["headers"])
            state["headers"] = False
            event = None
        line = event.encoded.get(event_type) if event is not None else None
        if line is None:
            line = json.dumps({"type": event_type, "object": obj}).encode() + b"\n"
            if event is not None:  # every stream watching this kind sends the same bytes
                event.encoded[event_type] = line
        await response.write(line)

    def translate(event: Event) -> Optional[Tuple[str, Dict[str, Any]]]:
        now_match = object_matches(event.obj, labels, fields)
        if event.type == "MODIFIED":
            was_match = object_matches(event.old, labels, fields)
            if now_match and not was_match:
                return "ADDED", event.obj
            if was_match and not now_match:
                return "DELETED", event.obj
        return (event.type, event.obj) if now_match else None

    def bookmark(end_of_initial: bool = False) -> Dict[str, Any]:
        meta: Dict[str, Any] = {"resourceVersion": str(store.resource_version)}
        if end_of_initial:
            meta["annotations"] = {"k8s.io/initial-events-end": "true"}
        return {"kind": res.kind, "apiVersion": res.api_version, "metadata": meta}

    deadline = loop.time() + timeout

    def next_bookmark(now: float) -> Optional[float]:
        """cacheWatcher.nextBookmarkTime: every interval, or `margin` before the deadline if sooner."""
        when = now + api.bookmark_interval
        when = min(when, deadline - api.bookmark_deadline_margin)
        return when if when >= now else None

    try:
        await response.prepare(request)
        for event in initial:
            out = translate(event)
            if out:
                await send(*out, event)
        if initial_events:
            await send("BOOKMARK", bookmark(True))
        due = next_bookmark(loop.time()) if bookmarks else None
        while True:
            now = loop.time()
            if now >= deadline:
                break
            wait = deadline - now if due is None else max(0.0, min(due, deadline) - now)
            try:
                event = await asyncio.wait_for(watcher.queue.get(), wait)
            except asyncio.TimeoutError:
                if due is not None and loop.time() >= due:
                    await send("BOOKMARK", bookmark())
                    due = next_bookmark(loop.time())
                continue
            if event is None:
                break
            out = translate(event)
            if out:
                await send(*out, event)
        await response.write_eof()
    except (ConnectionResetError, RuntimeError):
        pass
    finally:
        store.unsubscribe(watcher)
        api.watches.discard(watcher)
    return response


def _accepts_as(request: web.Request) -> str:
    for part in request.headers.get("Accept", "").split(","):
        params = dict(p.strip().split("=", 1) for p in part.split(";")[1:] if "=" in p)
        if params.get("as") == "Table" and params.get("v") in ("v1", "v1beta1"):
            return "Table"
    return ""
