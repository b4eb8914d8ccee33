# -*- coding: utf-8 -*-
# Copyright: baremetal.gpu maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which requests go now, and when the node switches: the router's one scheduler (asyncio, one loop).

* A request names a model; its route says the mode. It queues (``admission``) and goes when its mode is active
  and has a free slot, in arrival order.
* The oldest waiting request for another mode makes that mode *wanted*: no new request starts, the router's own
  in-flight requests finish (bounded by ``drain_timeout``; the switch's drain then waits on vLLM's own gauges for
  requests that did not come through this router), and ONE switch runs: ``run_switch(target)`` in a worker thread
  (the gpu_mode switch: validation, the node's Lease, drain, stop, GPU memory release, start, health, record,
  rollback). Every request waiting for that mode shares it.
* A request waits at most until its hold deadline: then 503 with Retry-After naming the model being loaded (the
  switch goes on). A failed switch (rolled back by the switcher) answers 503 with its reason to every request
  that waited for it, keeps the previous mode serving, and answers further requests for that mode at once with
  503 for ``failure_backoff`` seconds instead of trying again and again.
* The active mode follows the mode recorded in the cluster (another replica's switch), except while this replica
  switches. After ``ttl`` seconds without requests (here, and at the model servers: other replicas count) the
  node goes back to its default mode; ``preload`` switches once at start.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import asyncio
import time

from ansible_collections.baremetal.gpu.plugins.module_utils.gpu_router import errors
from ansible_collections.baremetal.gpu.plugins.module_utils.gpu_router.admission import Admission, QueueFull, Ticket


class Coordinator:
    """``table()``: the current RouteTable; ``run_switch(mode)``: the blocking switch (returns its result, raises
    with ``.result`` on failure); ``activity(mode)``: awaitable counter of the mode's served requests at the
    model servers (None when unknown). ``options``: concurrency, default_concurrency, queue_size, drain_timeout,
    failure_backoff, ttl ({mode: s}), default_ttl, retry_after."""

    def __init__(self, table, run_switch, options, metrics, log, activity=None, executor=None, clock=time.monotonic):
        self.table = table
        self.run_switch = run_switch
        self.options = options
        self.metrics = metrics
        self.log = log
        self.activity = activity
        self.executor = executor
        self.clock = clock
        self.admission = Admission(options.get("concurrency"), options.get("default_concurrency", 0),
                                   options.get("queue_size", 100))
        self.active = None
        self.switching = None
        self.switch_started = None
        self.failures = {}
        self.last_switch = None
        self._waiters = {}
        self._drain_deadline = None
        self._drain_timer = None
        self._idle_timer = None
        self._idle_task = None
        self._idle_seen = None
        self._last_activity = clock()
        self._task = None
        self._switch_done = None

    # ------------------------------------------------------------------ state from the cluster
    def follow(self, recorded):
        """The mode recorded in the cluster changed (a switch here or by another replica)."""
        if self.switching is None and recorded != self.active:
            self.log("mode_followed", previous=self.active, mode=recorded)
            self.active = recorded
            self.admission.activated()
            self._arm_idle()
        self._kick()

    # ------------------------------------------------------------------ requests
    async def admit(self, route, hold_timeout):
        """Wait until the request for ``route`` may go; returns its ticket (give it back with ``release``)."""
        mode = route.mode
        failed = self.failures.get(mode)
        backoff = float(self.options.get("failure_backoff", 30))
        if failed and self.clock() - failed[0] < backoff and mode != self.active:
            self.metrics.rejected("switch_failed")
            raise errors.SwitchFailed(route.model, mode, failed[1], backoff - (self.clock() - failed[0]))
        ticket = Ticket(mode, route.model)
        try:
            self.admission.offer(ticket, self.active, self.switching)
        except QueueFull as exc:
            self.metrics.rejected("queue_full")
            raise errors.QueueLimit("Too many requests for the model `%s`: %s" % (route.model, exc),
                                    headers={"Retry-After": "1"})
        self._last_activity = self.clock()
        if ticket.granted:
            self._gauges()
            return ticket
        future = asyncio.get_running_loop().create_future()
        self._waiters[ticket] = future
        started = self.clock()
        self._kick()
        try:
            await asyncio.wait_for(asyncio.shield(future), hold_timeout)
        except asyncio.TimeoutError:
            if ticket.granted:
                return ticket
            self.admission.withdraw(ticket)
            self.metrics.rejected("loading_timeout")
            raise errors.Loading(route.model, mode, self.retry_after(mode), self.clock() - started)
        except asyncio.CancelledError:  # the client went away
            self.admission.withdraw(ticket)
            self.admission.done(ticket)
            self._kick()
            raise
        finally:
            self._waiters.pop(ticket, None)
            self._gauges()
        return ticket

    def release(self, ticket):
        self.admission.done(ticket)
        self._last_activity = self.clock()
        self._kick()
        self._arm_idle()

    def retry_after(self, mode):
        """Seconds until ``mode`` should be loaded: its expected load time minus what its switch has taken."""
        expected = self.table().expected_load_seconds(mode) or float(self.options.get("retry_after", 5))
        if self.switching == mode and self.switch_started is not None:
            expected -= self.clock() - self.switch_started
        return max(1.0, expected)

    # ------------------------------------------------------------------ scheduling
    def _kick(self):
        granted, wanted = self.admission.advance(self.active, self.switching)
        for ticket in granted:
            future = self._waiters.get(ticket)
            if future is not None and not future.done():
                future.set_result(True)
            elif future is None:  # nobody waits for it any more
                self.admission.done(ticket)
        if wanted is not None and self.switching is None:
            self._want(wanted)
        self._gauges()

    def _want(self, target):
        """Switch to ``target`` once the router's in-flight requests have finished (or drain_timeout passed)."""
        running = self.admission.running()
        now = self.clock()
        if running:
            if self._drain_deadline is None:
                self._drain_deadline = now + float(self.options.get("drain_timeout", 120))
                self.log("switch_waits_for_requests", target=target, mode=self.active, in_flight=running)
            if now < self._drain_deadline:
                if self._drain_timer is None:
                    loop = asyncio.get_running_loop()
                    self._drain_timer = loop.call_later(self._drain_deadline - now, self._drain_expired)
                return
        self.start_switch(target, "request")

    def _drain_expired(self):
        self._drain_timer = None
        self._kick()

    def start_switch(self, target, why):
        if self.switching is not None:
            return self._switch_done
        if self._drain_timer is not None:
            self._drain_timer.cancel()
            self._drain_timer = None
        self._drain_deadline = None
        self.switching = target
        self.switch_started = self.clock()
        loop = asyncio.get_running_loop()
        self._switch_done = loop.create_future()
        self._task = loop.create_task(self._run(target, why))
        return self._switch_done

    async def _run(self, target, why):
        previous = self.active
        self.log("switch_started", previous=previous, target=target, why=why)
        outcome, result, error = "failed", {}, None
        try:
            result = await asyncio.get_running_loop().run_in_executor(self.executor, self.run_switch, target)
            outcome = result.get("outcome") or "switched"
            self.active = result.get("to") or target
            self.failures.pop(target, None)
        except Exception as exc:  # pylint: disable=broad-except  # every failure is answered, the router goes on
            result = getattr(exc, "result", None) or {}
            error = str(exc)
            outcome = result.get("outcome") or "failed"
            self.failures[target] = (self.clock(), error)
            if result.get("rolled_back") or result.get("failed_phase") in (None, "validate", "lock", "drain") \
                    or outcome in ("locked", "invalid"):
                self.active = previous  # the previous mode serves again (or was never touched)
            failed = self.admission.fail_mode(target)
            for ticket in failed:
                future = self._waiters.get(ticket)
                if future is not None and not future.done():
                    future.set_exception(errors.SwitchFailed(ticket.model, target, error,
                                                             self.options.get("failure_backoff", 30)))
        seconds = self.clock() - self.switch_started
        self.metrics.switch(previous, target, outcome, result.get("phases") or {}, seconds)
        self.last_switch = {"from": previous, "to": target, "outcome": outcome, "seconds": round(seconds, 3),
                            "why": why, "error": error}
        self.log("switch_finished", previous=previous, target=target, outcome=outcome, seconds=round(seconds, 3),
                 phases=result.get("phases"), error=error)
        self.switching = None
        self.switch_started = None
        self.admission.activated()
        if not self._switch_done.done():
            self._switch_done.set_result(self.last_switch)
        self._kick()
        self._arm_idle()

    # ------------------------------------------------------------------ idle return to the default mode
    def ttl(self, mode):
        ttls = self.options.get("ttl") or {}
        return float(ttls.get(mode, self.options.get("default_ttl", 0)) or 0)

    def _arm_idle(self):
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        default = self.table().default
        ttl = self.ttl(self.active)
        if not ttl or self.active is None or self.active == default or default is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        due = self._last_activity + ttl - self.clock()
        self._idle_timer = loop.call_later(max(0.0, due), self._idle_due)
        if self.activity is not None and (self._idle_seen is None or self._idle_seen[0] != self.active):
            self._idle_seen = (self.active, None)
            loop.create_task(self._baseline(self.active))

    async def _baseline(self, mode):
        """What the model servers of ``mode`` have served so far, to tell later whether others used them."""
        seen = await self.activity(mode)
        if self._idle_seen is not None and self._idle_seen[0] == mode and self._idle_seen[1] is None:
            self._idle_seen = (mode, seen)

    def _idle_due(self):
        self._idle_timer = None
        if self._idle_task is None or self._idle_task.done():
            self._idle_task = asyncio.get_running_loop().create_task(self._idle_check())

    async def _idle_check(self):
        mode, ttl, default = self.active, self.ttl(self.active), self.table().default
        if self.switching or self.admission.queue or self.admission.running() or mode == default or not ttl:
            return
        if self.clock() - self._last_activity < ttl:
            self._arm_idle()
            return
        seen = await self.activity(mode) if self.activity is not None else None
        before = self._idle_seen[1] if self._idle_seen is not None and self._idle_seen[0] == mode else None
        if seen is not None:
            self._idle_seen = (mode, seen)
        if seen is not None and before is not None and seen != before:
            # requests reached the model servers some other way (another replica): idle starts again now
            self._last_activity = self.clock()
            self._arm_idle()
            return
        if self.active != mode or self.switching or self.admission.queue or self.admission.running():
            return
        self.log("idle", mode=mode, ttl=ttl, default=default)
        self._idle_seen = None
        self.start_switch(default, "idle")

    def preload(self, mode):
        """Switch to ``mode`` once at start (nothing happens when it is active and serving)."""
        if mode and self.switching is None:
            self.start_switch(mode, "preload")

    # ------------------------------------------------------------------ metrics
    def _gauges(self):
        modes = set(self.admission.inflight) | set(t.mode for t in self.admission.queue)
        for mode in modes:
            self.metrics.gauge("queue_depth", {"mode": mode}, self.admission.waiting(mode))
            self.metrics.gauge("in_flight", {"mode": mode}, self.admission.running(mode))

    def snapshot(self):
        return {"active": self.active, "switching": self.switching, "waiting": self.admission.waiting(),
                "in_flight": self.admission.running(), "last_switch": self.last_switch,
                "failures": dict((m, {"reason": f[1], "ago_s": round(self.clock() - f[0], 1)})
                                 for m, f in self.failures.items())}
