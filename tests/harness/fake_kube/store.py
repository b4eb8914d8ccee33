"""Object storage: one cluster-wide resourceVersion (etcd's revision), an event history that is
compacted like etcd's, one watch cache per resource, and watchers.

Two histories, as in a real control plane:

- etcd's. kube-apiserver compacts etcd every `--etcd-compaction-interval` (5 minutes): at each
  tick it compacts to the revision it recorded at the previous tick, so between one and two
  intervals of history stay readable. Lists with `resourceVersionMatch=Exact` and continue tokens
  are served from it (`state_at`); older revisions are gone (410 Expired).
- the apiserver's watch cache, one per resource, which serves every watch. Its capacity starts at
  `watch_cache_size` (100, the apiserver's lower bound) and doubles, up to `watch_cache_max`
  (102400), while the oldest event it holds is younger than `event_fresh_seconds` (75 s: the
  bookmark frequency plus a margin); it halves when the newest quarter is older than that. A full
  cache drops its oldest event. A watch from a resourceVersion older than the oldest event it can
  still deliver gets `410 Expired: too old resource version: X (Y)`, Y being that oldest minus one.

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
import time
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
    at: float = 0.0  # monotonic commit time (watch cache freshness, etcd compaction)
    # wire encodings by event type, filled by the first watch stream that sends it (the others reuse it)
    encoded: Dict[str, bytes] = field(default_factory=dict, compare=False, repr=False)


class Gone(ApiError):
    """A watch from a resourceVersion the watch cache no longer holds (cacher's NewResourceExpired)."""

    def __init__(self, requested: int, oldest: int) -> None:
        super().__init__(410, f"too old resource version: {requested} ({oldest})", reason="Expired")


LIST_EXPIRED = "The resourceVersion for the provided list is too old."
CONTINUE_EXPIRED = ("The provided continue parameter is too old to display a consistent list result. You can start "
                    "a new list without the continue parameter, or use the continue token in this response to "
                    "retrieve the remainder of the results. Continuing with the provided token results in an "
                    "inconsistent list - objects that were created, modified, or deleted between the time the "
                    "first chunk was returned and now may show up in the list.")


class WatchCache:
    """The events of one resource a watch can start from (k8s.io/apiserver/pkg/storage/cacher/watch_cache.go)."""

    def __init__(self, lower: int, upper: int, fresh: float, start_rv: int = 0) -> None:
        self.lower, self.upper, self.fresh = lower, max(lower, upper), fresh
        self.capacity = lower
        self.events: Deque[Event] = collections.deque()
        self.start_rv = start_rv  # the revision the cache was filled at (its initial list)
        self.evicted = False  # no event dropped yet: everything since the cache started is deliverable

    def add(self, event: Event) -> None:
        full = len(self.events) >= self.capacity
        if full and event.at - self.events[0].at < self.fresh:
            self.capacity = min(self.capacity * 2, self.upper)
        elif full and event.at - self.events[-(self.capacity // 4 or 1)].at > self.fresh:
            self.capacity = max(self.capacity // 2, self.lower)
            while len(self.events) > self.capacity:
                self.events.popleft()
                self.evicted = True
        while len(self.events) >= self.capacity:
            self.events.popleft()
            self.evicted = True
        self.events.append(event)

    def oldest_deliverable(self) -> int:
        """The oldest resourceVersion a watch may start from (one before the first event it can send)."""
        if not self.evicted or not self.events:
            return self.start_rv
        return self.events[0].rv - 1


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
    def __init__(self, watch_cache_size: int = 100, watch_cache_max: int = 100 * 1024,
                 event_fresh_seconds: float = 75.0, compaction_interval: float = 300.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.lock = threading.RLock()
        self._objects: Dict[Key, Dict[str, Any]] = {}
        self._rv = 0
        self._clock = clock
        self._history: Deque[Event] = collections.deque()  # etcd: every revision since the last compaction
        self._compacted = 0  # etcd revisions <= this are gone
        self._compaction_interval = compaction_interval
        self._next_compaction = clock() + compaction_interval
        self._compact_to = 0  # the revision recorded at the previous compaction tick
        self._caches: Dict[Tuple[str, str], WatchCache] = {}
        self._cache_start_rv = 0
        self._cache_args = (watch_cache_size, watch_cache_max, event_fresh_seconds)
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
    def _cache(self, res: Resource) -> WatchCache:
        key = (res.group, res.plural)
        if key not in self._caches:
            self._caches[key] = WatchCache(*self._cache_args, start_rv=self._cache_start_rv)
        return self._caches[key]

    def start_watch_caches(self) -> None:
        """The API server starts: its watch caches begin at the current revision; what was written before
        (the cluster's bootstrap objects) is listed, never replayed to a watch (410 from older revisions)."""
        with self.lock:
            self._cache_start_rv = self._rv
            self._caches.clear()

    def _compact(self, now: float, current: int) -> None:
        """kube-apiserver's compactor: each interval, compact etcd to the revision seen one interval ago.
        `current` is the revision before the write being committed (nothing changed since the last tick
        when several ticks were missed, so that is also what each missed tick saw)."""
        if now < self._next_compaction:
            return
        ticks = int((now - self._next_compaction) // self._compaction_interval) + 1
        self._next_compaction += ticks * self._compaction_interval
        target = self._compact_to if ticks == 1 else current
        self._compact_to = current
        if target > self._compacted:
            self._compacted = target
            while self._history and self._history[0].rv <= target:
                self._history.popleft()

    @property
    def compacted(self) -> int:
        with self.lock:
            self._compact(self._clock(), self._rv)
            return self._compacted

    def _commit(self, event_type: str, res: Resource, namespace: str, obj: Dict[str, Any],
                old: Optional[Dict[str, Any]]) -> Event:
        now = self._clock()
        event = Event(self._rv, event_type, res, namespace, obj, old, now)
        self._compact(now, self._rv - 1)
        self._history.append(event)
        self._cache(res).add(event)
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
        since=N: the watch cache's events after N; raises Gone (410) when N is older than the cache holds.
        """
        with self.lock:
            if since is None:
                initial = [Event(int(o["metadata"]["resourceVersion"]), "ADDED", watcher.resource,
                                 o.get("metadata", {}).get("namespace", ""), o)
                           for o in self.items(watcher.resource, watcher.namespace)]
            else:
                cache = self._cache(watcher.resource)
                oldest = cache.oldest_deliverable()
                if since < oldest:
                    raise Gone(since, oldest)
                initial = [e for e in cache.events if e.rv > since and watcher.wants(e)]
            self._watchers.append(watcher)
            return initial

    def state_at(self, res: Resource, namespace: Optional[str], rv: int) -> List[Dict[str, Any]]:
        """The objects of `res` as they were at revision `rv` (etcd's MVCC read); ApiError 410 when compacted."""
        with self.lock:
            self._compact(self._clock(), self._rv)
            if rv < self._compacted:
                raise ApiError(410, LIST_EXPIRED, reason="Expired")
            state = {key: obj for key, obj in self._objects.items() if key[0] == res.group and key[1] == res.plural}
            for event in reversed(self._history):
                if event.rv <= rv:
                    break
                if event.resource.group != res.group or event.resource.plural != res.plural:
                    continue
                key = key_of(res, event.namespace, event.obj["metadata"]["name"])
                if event.type == "ADDED":
                    state.pop(key, None)
                elif event.old is not None:
                    state[key] = event.old
            found = [(k, o) for k, o in state.items() if namespace is None or k[2] == namespace]
        return [o for _key, o in sorted(found, key=lambda pair: (pair[0][2], pair[0][3]))]

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
