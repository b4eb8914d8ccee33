"""What the controllers, the scheduler and the node agents share: the API client, the informer cache, the
event recorder, simulated time, and per-object error isolation with retry back-off."""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Dict, List

import aiohttp

from .client import ApiClient, EventRecorder, RequestFailed
from .informers import Informers
from .objects import Key, Obj, controller_uid, uid_of
from .timing import SimClock

# An object whose sync raised is retried after 5 ms doubling to 1000 s (simulated), as client-go's
# default controller rate limiter does.
RETRY_BASE = 0.005
RETRY_CAP = 1000.0


class Context:
    def __init__(self, client: ApiClient, informers: Informers, clock: SimClock) -> None:
        self.client = client
        self.informers = informers
        self.clock = clock
        self.events = EventRecorder(client, self.spawn)
        self.errors: List[str] = []
        self.stopping = False
        self._background: set = set()
        self._failures: Dict[str, int] = {}
        self._reported: Dict[str, str] = {}
        self._due: Dict[str, float] = {}

    # ------------------------------------------------------------------ tasks and wake-ups
    def spawn(self, coro: Any) -> "asyncio.Task":
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    def requeue(self, real_delay: float, key: str = "") -> None:
        """Run another reconcile pass after `real_delay` real seconds (a workqueue's AddAfter); with a `key`,
        a wake-up already due no later for that key makes this one unnecessary."""
        if self.stopping:
            return
        due = asyncio.get_running_loop().time() + max(0.0, real_delay)
        if key:
            pending = self._due.get(key)
            if pending is not None and pending <= due + 1e-3:
                return
            self._due[key] = due

        async def poke() -> None:
            await asyncio.sleep(max(0.0, real_delay))
            if key and self._due.get(key) == due:
                del self._due[key]
            self.informers.dirty.set()

        self.spawn(poke())

    def background(self) -> List["asyncio.Task"]:
        return [t for t in self._background if not t.done()]

    # ------------------------------------------------------------------ cache
    def cache(self, name: str) -> Dict[Key, Obj]:
        return self.informers.cache[name]

    def owned(self, cache_name: str, owner: Obj) -> List[Obj]:
        uid = owner["metadata"]["uid"]
        namespace = owner["metadata"].get("namespace", "")
        return [o for k, o in self.cache(cache_name).items() if k[0] == namespace and controller_uid(o) == uid]

    # ------------------------------------------------------------------ per-object error isolation
    async def guard(self, what: str, obj: Obj, work: Awaitable[Any], component: str) -> None:
        """Run one object's sync; an error is reported once (Warning event on the object and `.errors`) and
        that object alone is retried with back-off: the others keep going."""
        uid = uid_of(obj) or what
        try:
            await work
        except asyncio.CancelledError:
            raise
        except (RequestFailed, aiohttp.ClientError, asyncio.TimeoutError, Exception) as err:  # noqa: B014
            if self.stopping:
                return
            count = self._failures.get(uid, 0)
            self._failures[uid] = count + 1
            message = f"{what}: {err}"
            if self._reported.get(uid) != message:
                self._reported[uid] = message
                self.errors.append(message)
                if obj.get("metadata"):
                    self.events(obj, "SyncError", str(err)[:1000], "Warning", component=component)
            self.requeue(max(0.01, self.clock.real(min(RETRY_BASE * 2 ** count, RETRY_CAP))))
        else:
            self._failures.pop(uid, None)
            self._reported.pop(uid, None)
