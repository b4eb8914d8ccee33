# -*- coding: utf-8 -*-
# Copyright: baremetal.gpu maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Admission of requests: one FIFO queue across modes, a concurrency limit per mode, a bound on waiting
requests per mode (beyond it: 429). Pure bookkeeping, no I/O and no clock: the coordinator drives it.

Requests are let through in arrival order. A request for the active mode goes when the mode has a free slot and
nothing older waits; the oldest waiting request for another mode makes that mode *wanted* and everything that
arrives after it waits too, so a busy incumbent drains (its in-flight requests finish, no new ones start) and
the switch can happen. When a mode becomes active, every request that was already waiting for it goes (in
order, as slots allow), wherever it stood in the queue: requests that came in during a switch ride on it
instead of each costing a switch back and forth.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import itertools


class QueueFull(Exception):
    """Too many requests wait for this mode already (429)."""

    def __init__(self, mode, waiting, limit):
        self.mode, self.waiting, self.limit = mode, waiting, limit
        super(QueueFull, self).__init__("%d requests for mode %s are waiting already (queue_size %d)"
                                        % (waiting, mode, limit))


class Ticket:
    """One request's place in the queue."""

    _ids = itertools.count(1)

    def __init__(self, mode, model):
        self.id = next(self._ids)
        self.mode = mode
        self.model = model
        self.granted = False


class Admission:
    """``concurrency``: ``{mode: max in-flight requests}``; modes not named get ``default_concurrency``
    (0 = no limit). ``queue_size``: how many requests of one mode may wait (for a slot or for its mode)."""

    def __init__(self, concurrency=None, default_concurrency=0, queue_size=100):
        self.concurrency = dict(concurrency or {})
        self.default_concurrency = int(default_concurrency or 0)
        self.queue_size = int(queue_size)
        self.queue = []
        self.inflight = {}
        self.issued = 0  # id of the newest ticket offered
        self.cutoff = 0  # tickets up to this id were waiting when the active mode became active

    def limit(self, mode):
        return int(self.concurrency.get(mode, self.default_concurrency) or 0)

    def has_slot(self, mode):
        limit = self.limit(mode)
        return not limit or self.inflight.get(mode, 0) < limit

    def waiting(self, mode=None):
        return sum(1 for t in self.queue if mode is None or t.mode == mode)

    def running(self, mode=None):
        if mode is None:
            return sum(self.inflight.values())
        return self.inflight.get(mode, 0)

    def activated(self):
        """The active mode changed: the requests waiting now for it may go before older ones for other modes."""
        self.cutoff = self.issued

    def offer(self, ticket, active, switching):
        """Queue ``ticket``; it is granted at once when it may go now. QueueFull when its mode's queue is full."""
        self.issued = max(self.issued, ticket.id)
        if not self.queue and not switching and ticket.mode == active and self.has_slot(active):
            self._grant(ticket)
            return ticket
        if self.waiting(ticket.mode) >= self.queue_size:
            raise QueueFull(ticket.mode, self.waiting(ticket.mode), self.queue_size)
        self.queue.append(ticket)
        return ticket

    def withdraw(self, ticket):
        """A waiting request gave up (deadline, client gone); a granted one must call ``done`` instead."""
        if ticket in self.queue:
            self.queue.remove(ticket)

    def done(self, ticket):
        if ticket.granted:
            ticket.granted = False
            self.inflight[ticket.mode] = max(0, self.inflight.get(ticket.mode, 0) - 1)

    def _grant(self, ticket):
        ticket.granted = True
        self.inflight[ticket.mode] = self.inflight.get(ticket.mode, 0) + 1

    def advance(self, active, switching):
        """``(granted tickets, wanted mode)``: the waiting requests that may go now (in order), and the mode the
        oldest request that cannot go wants when it is not the active one (None otherwise)."""
        granted = []
        if switching:
            return granted, None
        wanted = None
        for ticket in list(self.queue):
            if ticket.mode != active:
                wanted = wanted or ticket.mode
                continue
            if wanted is not None and ticket.id > self.cutoff:
                break  # came after a request for another mode: waits for that switch
            if not self.has_slot(active):
                break
            self.queue.remove(ticket)
            self._grant(ticket)
            granted.append(ticket)
        return granted, wanted

    def fail_mode(self, mode):
        """Take every waiting request for ``mode`` out of the queue (its switch failed); returns them."""
        failed = [t for t in self.queue if t.mode == mode]
        self.queue = [t for t in self.queue if t.mode != mode]
        return failed
