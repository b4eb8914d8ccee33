# -*- coding: utf-8 -*-
# Copyright: baremetal.gpu maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The per-node switch lock: a ``coordination.k8s.io/v1`` Lease, as client-go's leader election uses one.

* ``acquire``: create the Lease with this holder; if it exists, take it only when it is free (no holder)
  or expired (``renewTime + leaseDurationSeconds`` in the past), by an update conditioned on the
  resourceVersion read, so two switchers can never both win; otherwise fail at once naming the holder
  and since when (``LockHeld``), or wait for it (a watch on the Lease, bounded by a deadline).
* ``renew``: extend ``renewTime`` while a long switch runs (a background thread every third of the duration);
  a renewal that finds another holder marks the lock lost, and the switch stops at its next phase.
* ``release``: clear the holder (``leaseDurationSeconds: 1``), keeping ``leaseTransitions`` and the history
  of who held it; on every exit path of a switch.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import os
import socket
import threading
import time

LEASE_API = "coordination.k8s.io/v1"
DEFAULT_DURATION = 30


class LockHeld(Exception):
    """Somebody else holds the lock; ``holder`` and ``since`` say who and since when."""

    def __init__(self, message, holder, since, expires_in):
        self.holder = holder
        self.since = since
        self.expires_in = expires_in
        super(LockHeld, self).__init__(message)


class LockLost(Exception):
    """The lock was taken over while this holder still worked (its renewals failed for too long)."""


def micro_time(when=None):
    """RFC 3339 with microseconds, as the API's MicroTime wants (``2026-12-02T05:11:00.123456Z``)."""
    when = when if when is not None else time.time()
    whole = int(when // 1)
    return "%s.%06dZ" % (time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)), int(round((when - whole) * 1e6)) % 1000000)


def parse_time(text):
    """Seconds since the epoch of a Time or MicroTime string; None when absent or unreadable."""
    if not text:
        return None
    text = str(text).rstrip("Z")
    for fmt in ("%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S"):
        try:
            stamp = datetime.datetime.strptime(text, fmt)
        except ValueError:
            continue
        return (stamp - datetime.datetime(1970, 1, 1)).total_seconds()
    return None


def default_holder():
    """``user@host pid N``: who switched, for people reading the Lease or the mode history."""
    try:
        user = os.environ.get("SUDO_USER") or os.environ.get("USER") or str(os.getuid())
    except AttributeError:  # pragma: no cover - no getuid on this platform
        user = "unknown"
    return "%s@%s pid %d" % (user, socket.gethostname(), os.getpid())


def lease_state(lease, now):
    """``(holder, acquired_at, expires_in)`` of a Lease object; holder None when free or expired."""
    spec = (lease or {}).get("spec") or {}
    holder = spec.get("holderIdentity") or None
    renewed = parse_time(spec.get("renewTime")) or parse_time(spec.get("acquireTime"))
    duration = spec.get("leaseDurationSeconds") or 0
    expires_in = (renewed + duration - now) if renewed is not None else 0
    if holder is None or expires_in <= 0:
        return None, parse_time(spec.get("acquireTime")), expires_in
    return holder, parse_time(spec.get("acquireTime")), expires_in


class LeaseLock:
    """A Lease named ``name`` in ``namespace`` used as a lock; ``kube`` is module_utils' Kube client."""

    def __init__(self, kube, namespace, name, holder=None, duration=DEFAULT_DURATION, clock=time.time,
                 labels=None):
        self.kube = kube
        self.namespace = namespace
        self.name = name
        self.holder = holder or default_holder()
        self.duration = int(duration)
        self.clock = clock
        self.labels = dict(labels or {})
        self.lease = None
        self.lost = None  # the reason, once renewals found the lock taken
        self._stop = threading.Event()
        self._thread = None

    # ---- HTTP
    def _path(self, name=None):
        return self.kube.path(LEASE_API, "Lease", self.namespace, name)

    def _get(self):
        return self.kube.get(LEASE_API, "Lease", self.name, self.namespace)

    def _spec(self, transitions, acquired):
        now = micro_time(self.clock())
        return {"holderIdentity": self.holder, "leaseDurationSeconds": self.duration,
                "acquireTime": acquired or now, "renewTime": now, "leaseTransitions": transitions}

    def _create(self):
        body = {"apiVersion": LEASE_API, "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace, "labels": self.labels},
                "spec": self._spec(0, None)}
        return self.kube.request("POST", self._path(), body=body)

    def _replace(self, lease, spec):
        body = dict(lease)
        body["spec"] = spec
        return self.kube.request("PUT", self._path(self.name), body=body)

    # ---- lock
    def try_acquire(self):
        """Take the lock if it is free or expired; returns True, or raises LockHeld."""
        from ansible_collections.baremetal.gpu.plugins.module_utils.kube import KubeError

        lease = self._get()
        if lease is None:
            try:
                self.lease = self._create()
                return True
            except KubeError as exc:
                if exc.status != 409:
                    raise
                lease = self._get()  # created meanwhile by another switcher
                if lease is None:
                    return False
        holder, since, expires_in = lease_state(lease, self.clock())
        if holder is not None and holder != self.holder:
            raise LockHeld("the GPU mode lock %s/%s is held by %s since %s (expires in %.0f s unless renewed)"
                           % (self.namespace, self.name, holder, micro_time(since) if since else "?", expires_in),
                           holder, since, expires_in)
        spec = lease.get("spec") or {}
        transitions = int(spec.get("leaseTransitions") or 0) + (0 if spec.get("holderIdentity") == self.holder else 1)
        try:
            self.lease = self._replace(lease, self._spec(transitions, None))
        except KubeError as exc:
            if exc.status == 409:  # somebody else updated it between our read and write
                return False
            raise
        return True

    def acquire(self, wait=False, timeout=0.0, interval=0.25, sleep=time.sleep, monotonic=time.monotonic):
        """Acquire, or raise LockHeld at once; with ``wait``, keep trying for ``timeout`` seconds first."""
        deadline = monotonic() + float(timeout)
        while True:
            try:
                if self.try_acquire():
                    self._start_renewing()
                    return self
                continue  # lost a race: read again (the winner is then named by LockHeld)
            except LockHeld:
                if not wait or monotonic() >= deadline:
                    raise
            sleep(min(interval, max(0.0, deadline - monotonic())))

    def renew(self):
        """Extend the lease; marks the lock lost (and returns False) when someone else holds it now."""
        from ansible_collections.baremetal.gpu.plugins.module_utils.kube import KubeError

        try:
            current = self._get()
            spec = (current or {}).get("spec") or {}
            if current is None or spec.get("holderIdentity") != self.holder:
                self.lost = "the lock %s/%s is now held by %s" % (
                    self.namespace, self.name, spec.get("holderIdentity") or "nobody")
                return False
            new = dict(spec, renewTime=micro_time(self.clock()))
            self.lease = self._replace(current, new)
            return True
        except KubeError:
            return True  # a failed renewal is retried; the lease is still ours until it expires

    def _start_renewing(self):
        self._stop.clear()

        def loop():
            while not self._stop.wait(max(1.0, self.duration / 3.0)):
                if not self.renew():
                    return

        self._thread = threading.Thread(target=loop, name="gpu-mode-lease-renewal")
        self._thread.daemon = True
        self._thread.start()

    def release(self):
        """Stop renewing and free the lock (if it is still ours)."""
        from ansible_collections.baremetal.gpu.plugins.module_utils.kube import KubeError

        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        try:
            current = self._get()
            spec = (current or {}).get("spec") or {}
            if current is not None and spec.get("holderIdentity") == self.holder:
                self._replace(current, dict(spec, holderIdentity=None, leaseDurationSeconds=1,
                                            renewTime=micro_time(self.clock())))
        except KubeError:
            pass  # it expires by itself after leaseDurationSeconds

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()
