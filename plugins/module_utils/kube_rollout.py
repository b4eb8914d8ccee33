# -*- coding: utf-8 -*-
# Copyright: baremetal.gpu maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Wait until applied workloads have rolled out: watches, one monotonic deadline, failures at once.

``wait_ready(kube, targets, timeout)`` lists every (kind, namespace) group once, then watches each group
that still has objects pending, from the list's resourceVersion, so no change is missed (kubernetes.core's
waiter polls every 5 s instead). Readiness and failure are ``kube_ready``'s predicates. The first object
whose controller reports failure (a Deployment past its progress deadline, a failed Job) ends the wait
at once with that object and its cause, whichever order the objects are listed in; a timeout names every
object still not ready. Either way the error carries ``kube_diagnosis``'s report: pods, events, logs.

Groups are watched one after another: an object of a later group that fails while an earlier group is
being watched is reported when its group's turn comes (its watch replays the change), and at once if
it had already failed when the wait began.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.baremetal.gpu.plugins.module_utils.kube_client import KubeError, ref
from ansible_collections.baremetal.gpu.plugins.module_utils.kube_diagnosis import diagnose
from ansible_collections.baremetal.gpu.plugins.module_utils.kube_ready import FAILED, READY


class RolloutTimeout(Exception):
    """Objects did not become ready before the deadline, or one failed; ``report`` says which and why."""

    def __init__(self, message, report):
        self.report = report
        super(RolloutTimeout, self).__init__(message)


class _Group:
    """The objects of one (apiVersion, kind, namespace) being waited for."""

    def __init__(self, api_version, kind, namespace, names):
        self.api_version, self.kind, self.namespace = api_version, kind, namespace
        self.pending = set(names)
        self.resource_version = None
        self.ready_fn = READY.get(kind)
        self.failed_fn = FAILED.get(kind, lambda obj: None)

    def key(self, name):
        return (self.kind, self.namespace, name)


class _Wait:
    """State of one wait_ready call: what is done, the latest object seen, the first failure."""

    def __init__(self, kube, started, deadline, clock):
        self.kube, self.started, self.deadline, self.clock = kube, started, deadline, clock
        self.done = {}
        self.latest = {}
        self.failure = None  # (key, cause)

    def observe(self, group, obj, event_type=None):
        """Record one object as listed or watched; True when the wait can stop (failure or group done)."""
        name = (obj.get("metadata") or {}).get("name")
        if name not in group.pending:
            return False
        key = group.key(name)
        if event_type == "DELETED":
            self.failure = (key, "%s %s/%s was deleted while waiting" % (group.kind, group.namespace, name))
            return True
        obj.setdefault("apiVersion", group.api_version)
        obj.setdefault("kind", group.kind)
        self.latest[key] = obj
        cause = group.failed_fn(obj)
        if cause:
            self.failure = (key, cause)
            return True
        if group.ready_fn(obj):
            group.pending.discard(name)
            self.done[key] = round(self.clock() - self.started, 3)
        return not group.pending

    def list_group(self, group):
        items, group.resource_version = self.kube.list(group.api_version, group.kind, group.namespace)
        for item in items:
            if self.observe(group, item) and self.failure:
                return

    def watch_group(self, group):
        """Watch until the group is done, something failed, or the deadline passed."""
        while group.pending and not self.failure and self.clock() < self.deadline:
            try:
                for event_type, obj in self.kube.watch(group.api_version, group.kind, group.namespace,
                                                       group.resource_version, self.deadline, clock=self.clock):
                    seen = (obj.get("metadata") or {}).get("resourceVersion")
                    group.resource_version = seen or group.resource_version
                    if event_type != "BOOKMARK" and self.observe(group, obj, event_type):
                        return
            except KubeError as exc:
                if exc.status != 410:
                    raise
                self.list_group(group)  # resource version too old: list again, then watch on

    def failed(self, groups, log_lines, event_count, timeout):
        """The RolloutTimeout to raise: the failed object first, then every other one not ready."""
        not_ready = []
        if self.failure:
            not_ready.append(self.failure[0])
        for group in groups:
            not_ready.extend(group.key(n) for n in sorted(group.pending) if group.key(n) not in not_ready)
        objects = [self.latest.get(key) or {"kind": key[0], "metadata": {"name": key[2], "namespace": key[1]}}
                   for key in not_ready]
        report = [diagnose(self.kube, obj, log_lines=log_lines, event_count=event_count) for obj in objects]
        if self.failure:
            head = "%s failed: %s" % (ref(objects[0]), self.failure[1])
        else:
            head = "%d object(s) not ready after %.1f s (timeout %s s)" % (
                len(objects), self.clock() - self.started, timeout)
        return RolloutTimeout(head + "\n" + "\n".join(r["text"] for r in report), report)


def wait_ready(kube, targets, timeout, clock=time.monotonic, log_lines=20, event_count=5):
    """Wait until every target ``(apiVersion, kind, namespace, name)`` is ready; returns per-target seconds.

    Kinds without a readiness predicate count as ready at once (0.0). Raises RolloutTimeout with
    diagnostics (pods, events, logs) on timeout, or as soon as one target's controller reports failure.
    """
    started = clock()
    wait = _Wait(kube, started, started + timeout, clock)
    groups = {}
    for api_version, kind, namespace, name in targets:
        group = groups.setdefault((api_version, kind, namespace), _Group(api_version, kind, namespace, []))
        group.pending.add(name)
    waited = []
    for group in groups.values():
        if group.ready_fn is None:
            for name in group.pending:
                wait.done[group.key(name)] = 0.0
            group.pending.clear()
            continue
        waited.append(group)
    # One list of every group first: an object that has already failed ends the wait before any watch.
    for group in waited:
        wait.list_group(group)
        if wait.failure:
            raise wait.failed(waited, log_lines, event_count, timeout)
    for group in waited:
        wait.watch_group(group)
        if wait.failure or group.pending:
            raise wait.failed(waited, log_lines, event_count, timeout)
    return wait.done
