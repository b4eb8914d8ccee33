# -*- coding: utf-8 -*-
# Copyright: baremetal.gpu maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Requests in flight on the model servers leaving the GPU, from vLLM's Prometheus ``/metrics``.

A switch must not cut a user's answer off mid-stream. vLLM exports ``vllm:num_requests_running`` and
``vllm:num_requests_waiting`` (gauges, one series per ``model_name``); a server is drained when both are 0.
The metrics are read through the API server's pod proxy (``/api/v1/namespaces/<ns>/pods/<pod>:<port>/proxy/metrics``),
so nothing needs to be exposed and the switcher works from anywhere it can reach the API.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
import time

try:
    from urllib.parse import quote
except ImportError:  # pragma: no cover
    from urllib import quote

IN_FLIGHT = ("vllm:num_requests_running", "vllm:num_requests_waiting")
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)")


class DrainTimeout(Exception):
    def __init__(self, message, in_flight):
        self.in_flight = in_flight
        super(DrainTimeout, self).__init__(message)


def parse_metrics(text, names=IN_FLIGHT):
    """Sum of each wanted metric over its series in a Prometheus text exposition: ``{name: value}``."""
    wanted = set(names)
    out = dict((n, 0.0) for n in names)
    for line in (text or "").splitlines():
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if not match or match.group(1) not in wanted:
            continue
        try:
            out[match.group(1)] += float(match.group(3))
        except ValueError:
            continue
    return out


def pod_metrics_path(namespace, pod, port, path="/metrics"):
    return "/api/v1/namespaces/%s/pods/%s:%s/proxy%s" % (quote(namespace, safe=""), quote(pod, safe=""), port, path)


def in_flight(kube, pods, port):
    """``{pod name: requests running + waiting}`` for ``pods`` (Pod objects); a pod whose metrics cannot be
    read (not listening yet, no /metrics) counts as None."""
    from ansible_collections.baremetal.gpu.plugins.module_utils.kube import KubeError

    out = {}
    for pod in pods:
        meta = pod.get("metadata") or {}
        try:
            text = kube.request("GET", pod_metrics_path(meta.get("namespace"), meta.get("name"), port), timeout=5)
        except KubeError:
            out[meta.get("name")] = None
            continue
        values = parse_metrics(text if isinstance(text, str) else "")
        out[meta.get("name")] = int(sum(values.values()))
    return out


def wait_drained(kube, pods, port, timeout, interval=0.2, clock=time.monotonic, sleep=time.sleep):
    """Wait until none of ``pods`` has a request running or waiting; returns the seconds waited. A pod
    whose metrics cannot be read is taken as drained (it cannot be serving). Raises DrainTimeout."""
    started = clock()
    deadline = started + float(timeout)
    while True:
        counts = in_flight(kube, pods, port)
        busy = dict((name, n) for name, n in counts.items() if n)
        if not busy:
            return round(clock() - started, 3)
        if clock() >= deadline:
            raise DrainTimeout("requests still in flight after %.0f s: %s" % (
                float(timeout), ", ".join("%s %d" % kv for kv in sorted(busy.items()))), busy)
        sleep(min(interval, max(0.0, deadline - clock())))
