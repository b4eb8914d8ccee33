# -*- coding: utf-8 -*-
# Copyright: baremetal.gpu maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The router's Prometheus metrics (text exposition format 0.0.4), without a client library:

* ``gpu_router_requests_total{model,mode,code}``: requests answered (forwarded or refused);
* ``gpu_router_rejected_requests_total{reason}``: queue_full, loading_timeout, switch_failed, unknown_model,
  no_ready_server, bad_request;
* ``gpu_router_switches_total{from,to,outcome}`` and ``gpu_router_switch_seconds`` (sum and count);
* ``gpu_router_switch_phase_seconds{phase}`` (sum and count): validate, lock, drain, stop, release, start, ...;
* ``gpu_router_queue_depth{mode}``, ``gpu_router_in_flight{mode}``, ``gpu_router_active_mode{mode}`` (gauges).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import threading

HELP = {
    "requests_total": ("counter", "Requests answered by the router, by model, mode and HTTP status."),
    "rejected_requests_total": ("counter", "Requests the router answered itself with an error, by reason."),
    "switches_total": ("counter", "GPU mode switches the router ran, by outcome."),
    "switch_seconds": ("summary", "Wall time of the switches the router ran."),
    "switch_phase_seconds": ("summary", "Seconds per phase of the switches the router ran."),
    "queue_depth": ("gauge", "Requests waiting, by mode."),
    "in_flight": ("gauge", "Requests being forwarded, by mode."),
    "active_mode": ("gauge", "1 for the mode the router routes to."),
}
PREFIX = "gpu_router_"


def _escape(value):
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels):
    if not labels:
        return ""
    return "{%s}" % ",".join('%s="%s"' % (k, _escape(v)) for k, v in sorted(labels.items()))


class Metrics:
    def __init__(self):
        self._lock = threading.Lock()
        self._values = {}

    def _add(self, name, labels, amount):
        key = (name, tuple(sorted((labels or {}).items())))
        with self._lock:
            self._values[key] = self._values.get(key, 0) + amount

    def gauge(self, name, labels, value):
        with self._lock:
            self._values[(name, tuple(sorted((labels or {}).items())))] = value

    def value(self, name, **labels):
        with self._lock:
            return self._values.get((name, tuple(sorted(labels.items()))), 0)

    def request(self, model, mode, code):
        self._add("requests_total", {"model": model or "", "mode": mode or "", "code": str(code)}, 1)

    def rejected(self, reason):
        self._add("rejected_requests_total", {"reason": reason}, 1)

    def switch(self, previous, target, outcome, phases, seconds):
        self._add("switches_total", {"from": previous or "", "to": target, "outcome": outcome}, 1)
        self._add("switch_seconds_sum", {}, seconds)
        self._add("switch_seconds_count", {}, 1)
        for phase, spent in sorted((phases or {}).items()):
            self._add("switch_phase_seconds_sum", {"phase": phase}, float(spent))
            self._add("switch_phase_seconds_count", {"phase": phase}, 1)

    def active(self, mode, modes):
        for name in modes:
            self.gauge("active_mode", {"mode": name}, 1 if name == mode else 0)

    def text(self):
        with self._lock:
            values = dict(self._values)
        lines = []
        for family in sorted(HELP):
            kind, text = HELP[family]
            lines.append("# HELP %s%s %s" % (PREFIX, family, text))
            lines.append("# TYPE %s%s %s" % (PREFIX, family, kind))
            names = (family + "_sum", family + "_count") if kind == "summary" else (family,)
            for (name, labels), value in sorted(values.items(), key=lambda kv: (kv[0][0], kv[0][1])):
                if name in names:
                    lines.append("%s%s%s %s" % (PREFIX, name, _labels(dict(labels)), _number(value)))
        return "\n".join(lines) + "\n"


def _number(value):
    if isinstance(value, float):
        return repr(round(value, 6))
    return str(value)
