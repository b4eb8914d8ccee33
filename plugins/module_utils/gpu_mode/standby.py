# -*- coding: utf-8 -*-
# Copyright: baremetal.gpu maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Hot standby: put vLLM servers to sleep and wake them up, through the API server's pod proxy.

A sleep-mode server (``--enable-sleep-mode``, ``VLLM_SERVER_DEV_MODE=1``) listens on its *engine port*,
which no Service targets (its pod's client port is the API gate's, which passes only the OpenAI routes), so
the switcher reaches its development endpoints as ``/api/v1/namespaces/<ns>/pods/<pod>:<engine
port>/proxy/<path>``: that needs the ``pods/proxy`` permission, which clients do not have.

vLLM's endpoints (read from its source, see compat_data ``vllm_src_dev_routes``): ``POST /sleep?level=N``
(the level is read from the query string only), ``POST /wake_up`` with optional repeated ``tags``
(``weights``, ``kv_cache``), ``GET /is_sleeping`` -> ``{"is_sleeping": bool}``. Level 1 keeps the weights in
host RAM: one ``wake_up`` restores everything. Level 2 dropped them: ``wake_up?tags=weights`` maps memory for
them, ``POST /collective_rpc {"method": "reload_weights"}`` loads them again from the model files, then
``wake_up?tags=kv_cache``. ``/health`` answers 200 while asleep and can answer 200 while a woken engine is
wedged, so a woken server counts as serving only once it has listed its model and answered a completion.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import time

try:
    from urllib.parse import quote
except ImportError:  # pragma: no cover
    from urllib import quote

from ansible_collections.baremetal.gpu.plugins.module_utils.gpu_mode.cluster import annotation

SLEEP_TIMEOUT = 120.0
WAKE_TIMEOUT = 300.0


class StandbyError(Exception):
    """A sleep or wake-up that did not happen; ``pod`` is the pod's name."""

    def __init__(self, message, pod=None):
        self.pod = pod
        super(StandbyError, self).__init__(message)


def sleep_info(deployment):
    """``{"level", "engine_port", "residue_mib"}`` of a sleep-mode Deployment (the vllm role's annotations),
    or None for one that cannot sleep."""
    level = annotation(deployment, "sleep-level")
    if not level:
        return None
    return {"level": int(level), "engine_port": int(annotation(deployment, "engine-port") or 8001),
            "residue_mib": int(float(annotation(deployment, "sleep-residue-mib") or 0))}


def pod_path(pod, port, path):
    meta = pod["metadata"]
    return "/api/v1/namespaces/%s/pods/%s:%s/proxy%s" % (
        quote(meta["namespace"], safe=""), quote(meta["name"], safe=""), port, path)


def pod_fetch(kube, pod, port):
    """A fetch function (health.wait_serving's) on one pod's port through the API server's pod proxy."""
    from ansible_collections.baremetal.gpu.plugins.module_utils import health

    def fetch(method, path, body=None, timeout=5.0):
        try:
            return kube.call(method, pod_path(pod, port, path), body=body, timeout=max(timeout, 0.05))
        except Exception as exc:  # pylint: disable=broad-except  # KubeError, transport errors: nothing answered
            raise health.FetchError(str(exc))

    fetch.where = "pod %s/%s port %s through the API proxy" % (
        pod["metadata"]["namespace"], pod["metadata"]["name"], port)
    return fetch


def _call(kube, method, pod, port, path, body=None, timeout=SLEEP_TIMEOUT):
    """(status, text) of one request to a pod's engine port; StandbyError when nothing answered."""
    try:
        return kube.call(method, pod_path(pod, port, path), body=body, timeout=timeout)
    except Exception as exc:  # pylint: disable=broad-except
        raise StandbyError("%s %s on pod %s: no answer (%s)" % (method, path, pod["metadata"]["name"], exc),
                           pod["metadata"]["name"])


def is_sleeping(kube, pod, port, timeout=5.0):
    """True or False from ``GET /is_sleeping``; None when the server does not answer it (not listening yet,
    no dev mode, an engine that died)."""
    try:
        status, text = kube.call("GET", pod_path(pod, port, "/is_sleeping"), timeout=timeout)
    except Exception:  # pylint: disable=broad-except
        return None
    if status != 200:
        return None
    try:
        value = json.loads(text).get("is_sleeping")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, bool) else None


def error_lines(kube, pod, container, count=3):
    """The last error lines of a server's log (why a sleep or wake-up failed: vLLM before 0.18 answers a
    bare 500 and logs the reason), or [] when the log cannot be read."""
    try:
        lines = kube.logs(pod["metadata"]["namespace"], pod["metadata"]["name"], container=container, tail=50)
    except Exception:  # pylint: disable=broad-except  # the reason is a bonus
        return []
    errors = [line for line in lines if "Error" in line or "ERROR" in line]
    return [line[-300:] for line in errors[-count:]]


def _expect(status, text, what, pod):
    if status != 200:
        raise StandbyError("%s on pod %s answered %s: %s" % (what, pod["metadata"]["name"], status,
                                                             (text or "")[:300]), pod["metadata"]["name"])


def sleep_pod(kube, pod, info, timeout=SLEEP_TIMEOUT):
    """Put one server to sleep at its level; returns the seconds the call took. The memory wait is the
    caller's (release.wait_released with the residue as ``keep_mib``)."""
    started = time.monotonic()
    status, text = _call(kube, "POST", pod, info["engine_port"], "/sleep?level=%d" % info["level"], timeout=timeout)
    _expect(status, text, "POST /sleep?level=%d" % info["level"], pod)
    if is_sleeping(kube, pod, info["engine_port"]) is not True:
        raise StandbyError("pod %s does not say it is asleep after POST /sleep" % pod["metadata"]["name"],
                           pod["metadata"]["name"])
    return round(time.monotonic() - started, 3)


def wake_pod(kube, pod, info, timeout=WAKE_TIMEOUT):
    """Wake one server: its weights and KV cache mapped again (level 2: the weights reloaded between the
    two); returns the seconds the calls took. StandbyError when a step fails or it still says asleep."""
    started = time.monotonic()
    port = info["engine_port"]
    if info["level"] == 2:
        steps = [("POST", "/wake_up?tags=weights", None),
                 ("POST", "/collective_rpc", {"method": "reload_weights"}),
                 ("POST", "/wake_up?tags=kv_cache", None)]
    else:
        steps = [("POST", "/wake_up", None)]
    for method, path, body in steps:
        status, text = _call(kube, method, pod, port, path, body=body, timeout=timeout)
        _expect(status, text, "%s %s" % (method, path), pod)
    if is_sleeping(kube, pod, port) is not False:
        raise StandbyError("pod %s still says it is asleep after waking up" % pod["metadata"]["name"],
                           pod["metadata"]["name"])
    return round(time.monotonic() - started, 3)


def verify_serving(kube, pod, info, served_model_name, timeout=60.0):
    """A woken server answers ``/health``, lists its model and answers a one-token completion, on its engine
    port (before any client is sent to it). Raises health.HealthError with what it saw."""
    from ansible_collections.baremetal.gpu.plugins.module_utils import health

    return health.wait_serving(pod_fetch(kube, pod, info["engine_port"]), served_model_name=served_model_name,
                               check_models=bool(served_model_name), inference=True, prompt="Say OK.",
                               max_tokens=1, timeout=timeout, interval=0.05)
