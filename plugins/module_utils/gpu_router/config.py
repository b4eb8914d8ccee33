# -*- coding: utf-8 -*-
# Copyright: baremetal.gpu maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The router's settings: a JSON file (the ``gpu_router`` role mounts it from a ConfigMap), then the command
line. Every setting has a default here; ``check`` refuses bad values with a message naming the setting."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os

DEFAULTS = {
    "node": None,                 # Kubernetes name of the GPU node whose modes the router switches
    "namespace": "ml",            # namespace of the model servers, the node's ConfigMap and Lease
    "kubeconfig": None,           # None: the pod's ServiceAccount (in-cluster), else this kubeconfig
    "listen_host": "0.0.0.0",
    "port": 8080,
    "hold_timeout": 300.0,        # seconds a request may wait for its model (switch included); then 503
    "queue_size": 100,            # requests that may wait per mode; beyond: 429
    "default_concurrency": 0,     # in-flight requests per mode (0: no limit; vLLM batches them)
    "concurrency": {},            # {mode: in-flight limit}
    "default_ttl": 0,             # seconds without requests before the default mode returns (0: never)
    "ttl": {},                    # {mode: seconds}
    "preload": "",                # a mode switched to once at start ("" : none)
    "failure_backoff": 30.0,      # after a failed switch, requests for that mode get 503 at once this long
    "drain_timeout": 120.0,       # the router's own in-flight requests of the outgoing mode, then the switch's drain
    "retry_after": 5,             # Retry-After when a mode's load time is unknown
    "upstream_timeout": 3600.0,   # seconds one forwarded request may take (long generations stream for minutes)
    "proc_root": "/proc",         # the host's /proc (the pod runs with hostPID: true)
    "memory_wait": True,          # wait for GPU memory to be released (NVML) before the next mode starts
    "switch": {},                 # more gpu_mode switch options: start_timeout, health_timeout, release_timeout, ...
}
SWITCH_OPTIONS = ("start_timeout", "health_timeout", "release_timeout", "stop_timeout", "lock_timeout",
                  "lease_duration", "sleep_timeout", "wake_timeout", "crash_restarts", "memory_tolerance_mib")


class ConfigError(ValueError):
    pass


def load(path=None, overrides=None, environ=None):
    environ = os.environ if environ is None else environ
    settings = dict(DEFAULTS)
    if path:
        try:
            with open(path) as handle:
                settings.update(json.load(handle))
        except (IOError, OSError) as exc:
            raise ConfigError("cannot read the router's settings %s: %s" % (path, exc))
        except ValueError as exc:
            raise ConfigError("the router's settings %s are not JSON: %s" % (path, exc))
    settings.update(dict((k, v) for k, v in (overrides or {}).items() if v is not None))
    if not settings.get("node"):
        settings["node"] = environ.get("NODE_NAME") or None
    return check(settings)


def check(settings):
    unknown = sorted(set(settings) - set(DEFAULTS))
    if unknown:
        raise ConfigError("unknown router setting(s) %s (known: %s)" % (", ".join(unknown), ", ".join(sorted(DEFAULTS))))
    if not settings.get("node"):
        raise ConfigError("node is not set: name the GPU node whose modes the router switches (setting node, "
                          "or the NODE_NAME environment variable from the pod's spec.nodeName)")
    for key in ("hold_timeout", "drain_timeout", "failure_backoff", "upstream_timeout", "default_ttl", "retry_after"):
        try:
            settings[key] = float(settings[key])
        except (TypeError, ValueError):
            raise ConfigError("%s must be a number of seconds, got %r" % (key, settings[key]))
        if settings[key] < 0:
            raise ConfigError("%s must not be negative, got %r" % (key, settings[key]))
    for key in ("queue_size", "default_concurrency", "port"):
        try:
            settings[key] = int(settings[key])
        except (TypeError, ValueError):
            raise ConfigError("%s must be an integer, got %r" % (key, settings[key]))
    for key in ("concurrency", "ttl", "switch"):
        if not isinstance(settings[key], dict):
            raise ConfigError("%s must be a mapping, got %r" % (key, settings[key]))
    bad = sorted(set(settings["switch"]) - set(SWITCH_OPTIONS))
    if bad:
        raise ConfigError("unknown switch option(s) %s (known: %s)" % (", ".join(bad), ", ".join(SWITCH_OPTIONS)))
    return settings
