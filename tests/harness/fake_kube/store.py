"""Object storage: one cluster-wide resourceVersion, a bounded event history and watchers.

The store knows nothing about HTTP or kinds beyond the `Resource` row an object belongs to.
Objects are stored as immutable snapshots (never mutated after commit), so events can hand the
same dict to every watcher. All methods are thread-safe: the aiohttp loop thread and test threads
(in-process helpers) share one store.
"""

from __future__ import annotations

import asyncio
import collections
import json
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Deque, Dict, Iterator, List, Optional, Tuple

from .errors import ApiError, already_exists, conflict, not_found
from .resources import Resource

Key = Tuple[str, str, str, str]  # (group, plural, namespace, name)


def clone(obj: Any) -> Any:
    """Deep copy of JSON data (faster than copy.deepcopy for plain dicts/lists)."""
    return json.loads(json.dumps(obj))


def key_of(res: Resource, namespace: Optional[str], name: str) -> Key:
    return (res.group, res.plural, (namespace or "") if res.namespaced else "", name)


@dataclass(frozen=True)
class Event:
    rv: int
    type: str  # ADDED / MODIFIED / DELETED
    resource: Resource
    namespace: str
    obj: Dict[str, Any]
    old: Optional[Dict[str, Any]] = None
    # wire encodings by event type, filled by the first watch stream that sends it (the others reuse it)
    encoded: Dict[str, bytes] = field(default_factory=dict, compare=False, repr=False)


class Gone(ApiError):
    def __init__(self, requested: int, oldest: int) -> None:
        super().__init__(410, f"too old resource version: {requested} ({oldest})", reason="Expired")


class Watcher:
    """A subscription delivered on an asyncio loop; `offer` may be called from any thread."""

    def __init__(self, resource: Resource, namespace: Optional[str], loop: asyncio.AbstractEventLoop) -> None:
        self.resource = resource
        self.namespace = namespace
        self.loop = loop
        self.queue: "asyncio.Queue[Optional[Event]]" = asyncio.Queue()

    def wants(self, event: Event) -> bool:
        if event.resource is not self.resource:
            return False
        return self.namespace is None or event.namespace == self.namespace

    def offer(self, event: Optional[Event]) -> None:
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, event)
        except RuntimeError:  # loop already closed: the stream is gone anyway
            pass


def _deliver(watchers: List[Watcher], event: Event) -> None:
    for watcher in watchers:
        watcher.queue.put_nowait(event)


class Store:
    def __init__(self, history_size: int = 5000) -> None:
        self.lock = threading.RLock()
        self._objects: Dict[Key, Dict[str, Any]] = {}
        self._rv = 0
        self._history: Deque[Event] = collections.deque()
        self._history_size = history_size
        self._compacted = 0  # events with rv <= this are no longer replayable
        self._watchers: List[Watcher] = []
        self._listeners: List[Callable[[Event], None]] = []

    # ------------------------------------------------------------ reads
    @property
    def resource_version(self) -> int:
        return self._rv

    def get(self, res: Resource, namespace: Optional[str], name: str) -> Dict[str, Any]:
        with self.lock:
            obj = self._objects.get(key_of(res, namespace, name))
            if obj is None:
                raise not_found(res.plural, res.group, name)
            return clone(obj)

    def peek(self, res: Resource, namespace: Optional[str], name: str) -> Optional[Dict[str, Any]]:
        """The stored snapshot itself (read-only by convention), or None."""
        with self.lock:
            return self._objects.get(key_of(res, namespace, name))

    def items(self, res: Resource, namespace: Optional[str] = None) -> List[Dict[str, Any]]:
        """Stored snapshots of one resource (read-only by convention), ordered by namespace/name."""
        with self.lock:
            found = [(k, o) for k, o in self._objects.items()
                     if k[0] == res.group and k[1] == res.plural and (namespace is None or k[2] == namespace)]
        return [o for _key, o in sorted(found, key=lambda pair: (pair[0][2], pair[0][3]))]

    def all_objects(self) -> Iterator[Tuple[Key, Dict[str, Any]]]:
        with self.lock:
            return iter(list(self._objects.items()))

    # ------------------------------------------------------------ writes
    def _commit(self, event_type: str, res: Resource, namespace: str, obj: Dict[str, Any],
                old: Optional[Dict[str, Any]]) -> Event:
        event = Event(self._rv, event_type, res, namespace, obj, old)
        self._history.append(event)
        while len(self._history) > self._history_size:
            self._compacted = self._history.popleft().rv
        # one wakeup per event loop, not per watcher: a hundred watch streams cost one call, and events
        # keep their commit order (each loop runs its callbacks first in, first out)
        by_loop: Dict[asyncio.AbstractEventLoop, List[Watcher]] = {}
        for watcher in self._watchers:
            if watcher.wants(event):
                by_loop.setdefault(watcher.loop, []).append(watcher)
        for loop, watchers in by_loop.items():
            try:
                loop.call_soon_threadsafe(_deliver, watchers, event)
            except RuntimeError:  # loop already closed: the streams are gone anyway
                pass
        for listener in list(self._listeners):
            listener(event)
        return event

    def _next_rv(self, obj: Dict[str, Any]) -> None:
        self._rv += 1
        obj.setdefault("metadata", {})["resourceVersion"] = str(self._rv)

    def create(self, res: Resource, obj: Dict[str, Any]) -> Dict[str, Any]:
        meta = obj["metadata"]
        namespace = meta.get("namespace", "") if res.namespaced else ""
        key = key_of(res, namespace, meta["name"])
        with self.lock:
            if key in self._objects:
                raise already_exists(res.plural, res.group, meta["name"])
            stored = clone(obj)
            self._next_rv(stored)
            self._objects[key] = stored
            self._commit("ADDED", res, namespace, stored, None)
            return clone(stored)

    def update(self, res: Resource, obj: Dict[str, Any], expect_rv: Optional[str] = None) -> Dict[str, Any]:
        """Replace the stored object; `expect_rv` guards against a concurrent write (409)."""
        meta = obj["metadata"]
        namespace = meta.get("namespace", "") if res.namespaced else ""
        key = key_of(res, namespace, meta["name"])
        with self.lock:
            old = self._objects.get(key)
            if old is None:
                raise not_found(res.plural, res.group, meta["name"])
            if expect_rv is not None and old["metadata"]["resourceVersion"] != expect_rv:
                raise conflict(res.plural, res.group, meta["name"],
                               "the object has been modified; please apply your changes to the latest version "
                               "and try again")
            stored = clone(obj)
            self._next_rv(stored)
            self._objects[key] = stored
            self._commit("MODIFIED", res, namespace, stored, old)
            return clone(stored)

    def delete(self, res: Resource, namespace: Optional[str], name: str) -> Dict[str, Any]:
        key = key_of(res, namespace, name)
        with self.lock:
            old = self._objects.pop(key, None)
            if old is None:
                raise not_found(res.plural, res.group, name)
            final = clone(old)
            self._next_rv(final)  # a deletion is a write: it gets its own resourceVersion
            self._commit("DELETED", res, key[2], final, old)
            return clone(final)

    # ------------------------------------------------------------ watch
    def subscribe(self, watcher: Watcher, since: Optional[int]) -> List[Event]:
        """Register a watcher and return what it must see first, atomically with the registration.

        since=None: synthetic ADDED events for the current state ("get state and start at most recent").
        since=N: history events after N; raises Gone (410) when N is older than the kept history.
        """
        with self.lock:
            if since is None:
                initial = [Event(int(o["metadata"]["resourceVersion"]), "ADDED", watcher.resource,
                                 o.get("metadata", {}).get("namespace", ""), o)
                           for o in self.items(watcher.resource, watcher.namespace)]
            else:
                if since < self._compacted:
                    raise Gone(since, self._compacted + 1)
                initial = [e for e in self._history if e.rv > since and watcher.wants(e)]
            self._watchers.append(watcher)
            return initial

    def unsubscribe(self, watcher: Watcher) -> None:
        with self.lock:
            if watcher in self._watchers:
                self._watchers.remove(watcher)

    def close_watchers(self) -> None:
        with self.lock:
            for watcher in self._watchers:
                watcher.offer(None)

    def add_listener(self, listener: Callable[[Event], None]) -> None:
        """In-process synchronous hook called (under the store lock) for every committed event."""
        with self.lock:
            self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[Event], None]) -> None:
        with self.lock:
            if listener in self._listeners:
                self._listeners.remove(listener)
