# -*- coding: utf-8 -*-
# Copyright: baremetal.gpu maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Wait until a model server is really serving: health, the expected model name, one inference.

Used by ``baremetal.gpu.vllm_health``. Three phases, each polled at ``interval`` (at most 0.5 s)
under one monotonic deadline:

1. ``health``: ``GET <health_path>`` answers 200 (vLLM's empty 200), or for ``kind: json`` the body's
   ``field`` (dotted path) equals ``value`` (``{"status": "healthy", "ready": true}``);
2. ``models``: ``GET /v1/models`` lists the expected served model name. A server that is up and lists
   other names serves the wrong model: that fails at once, naming what it serves;
3. ``inference`` (optional): one tiny chat completion proves the model answers, with its latency.

A *fetch* function does the HTTP: ``url_fetch(base_url)`` talks to the server directly,
``proxy_fetch(kube, namespace, service, port)`` through the Kubernetes API's service proxy
(``/api/v1/namespaces/<ns>/services/<svc>:<port>/proxy/<path>``), so no port needs to be exposed.
A fetch returns ``(status, body_text)`` or raises ``FetchError`` when nothing answered.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import time

from ansible.module_utils.urls import open_url

try:
    from urllib.error import HTTPError, URLError
    from urllib.parse import quote
except ImportError:  # pragma: no cover
    from urllib2 import HTTPError, URLError
    from urllib import quote

MAX_INTERVAL = 0.5
EXCERPT = 300


class FetchError(Exception):
    """No HTTP answer at all (connection refused, timeout, DNS)."""


class HealthError(Exception):
    """The server did not become ready; ``result`` holds what was seen (phase, status, body, timings)."""

    def __init__(self, message, result):
        self.result = result
        super(HealthError, self).__init__(message)


def excerpt(text, limit=EXCERPT):
    text = (text or "").strip().replace("\n", " ")
    return text if len(text) <= limit else text[:limit] + "..."


def url_fetch(base_url, validate_certs=True, headers=None):
    """A fetch function for a server reached directly at ``base_url`` (http or https)."""
    base = base_url.rstrip("/")

    def fetch(method, path, body=None, timeout=5.0):
        data = json.dumps(body) if body is not None else None
        all_headers = dict(headers or {})
        if data is not None:
            all_headers["Content-Type"] = "application/json"
        try:
            resp = open_url(base + path, data=data, headers=all_headers, method=method, timeout=max(timeout, 0.05),
                            validate_certs=validate_certs, use_proxy=False, follow_redirects="none")
            try:
                return resp.status, resp.read().decode("utf-8", "replace")
            finally:
                resp.close()
        except HTTPError as exc:
            try:
                return exc.code, exc.read().decode("utf-8", "replace")
            finally:
                exc.close()
        except (URLError, OSError, ValueError) as exc:
            raise FetchError(str(getattr(exc, "reason", exc)))

    fetch.where = base
    return fetch


def proxy_path(namespace, service, port, scheme="http"):
    """The API server's proxy path for a Service port (``https:`` prefix for TLS backends)."""
    ref = "%s:%s" % (service, port)
    if scheme == "https":
        ref = "https:" + ref
    return "/api/v1/namespaces/%s/services/%s/proxy" % (quote(namespace, safe=""), quote(ref, safe=":"))


def proxy_fetch(kube, namespace, service, port, scheme="http"):
    """A fetch function through the Kubernetes API service proxy (``kube`` is a kube.Kube)."""
    base = proxy_path(namespace, service, port, scheme)

    def fetch(method, path, body=None, timeout=5.0):
        try:
            return kube.call(method, base + path, body=body, timeout=max(timeout, 0.05))
        except Exception as exc:  # KubeError and transport errors: nothing answered
            raise FetchError(str(exc))

    fetch.where = "service %s/%s port %s through the API proxy" % (namespace, service, port)
    return fetch


def field_value(document, path):
    """``document`` at dotted ``path`` ('ready', 'status.state'); a KeyError when absent."""
    value = document
    for part in path.split("."):
        if isinstance(value, list) and part.isdigit():
            value = value[int(part)]
        elif isinstance(value, dict) and part in value:
            value = value[part]
        else:
            raise KeyError(path)
    return value


def health_ok(kind, status, body, field=None, value=True):
    """(ready, why-not) for one health answer."""
    if status != 200:
        return False, "status %s" % status
    if kind != "json":
        return True, ""
    try:
        document = json.loads(body or "null")
        seen = field_value(document, field)
    except (ValueError, KeyError, IndexError, TypeError):
        return False, "no field %s in the JSON body" % field
    wanted = value if isinstance(value, list) else [value]
    if seen in wanted:
        return True, ""
    return False, "%s is %s, not %s" % (field, json.dumps(seen), " or ".join(json.dumps(w) for w in wanted))


def model_ids(body):
    """The ``id`` of each entry of a ``/v1/models`` answer; None when the body is not one."""
    try:
        document = json.loads(body or "null")
        return [str(m.get("id")) for m in document.get("data") or []]
    except (ValueError, AttributeError, TypeError):
        return None


class _Poll:
    """One wait: the deadline, the answers seen, and how each phase asks, judges and gives up."""

    def __init__(self, fetch, timeout, interval, request_timeout, clock, sleep, served_model_name):
        self.fetch, self.clock, self.sleep = fetch, clock, sleep
        self.interval = min(float(interval), MAX_INTERVAL)
        self.request_timeout = float(request_timeout)
        self.started = clock()
        self.deadline = self.started + float(timeout)
        self.phase_start = self.started
        self.result = {"where": getattr(fetch, "where", ""), "elapsed": {}, "attempts": {}, "models": [],
                       "served_model_name": served_model_name, "last": {}}

    def attempt(self, phase, method, path, body=None):
        """(status or None, text, seconds spent) of one request; the answer is kept as ``last``."""
        self.result["attempts"][phase] = self.result["attempts"].get(phase, 0) + 1
        t0 = self.clock()
        remaining = max(self.deadline - t0, 0.05)
        try:
            status, text = self.fetch(method, path, body, timeout=min(self.request_timeout, remaining))
            self.result["last"] = {"phase": phase, "path": path, "status": status, "body": excerpt(text), "error": None}
            return status, text, self.clock() - t0
        except FetchError as exc:
            self.result["last"] = {"phase": phase, "path": path, "status": None, "body": "", "error": str(exc)}
            return None, "", self.clock() - t0

    def fail(self, phase, why):
        now = self.clock()
        self.result["elapsed"]["total"] = round(now - self.started, 3)
        self.result["failed_phase"] = phase
        last = self.result["last"]
        seen = ("status %s, body %r" % (last.get("status"), last.get("body"))
                if last.get("status") is not None else "no answer (%s)" % last.get("error"))
        raise HealthError("%s: %s after %.1f s in phase %s; last answer to %s: %s"
                          % (self.result["where"], why, now - self.started, phase, last.get("path"), seen), self.result)

    def finish(self, phase):
        now = self.clock()
        self.result["elapsed"][phase] = round(now - self.phase_start, 3)
        self.phase_start = now

    def pause(self, spent):
        """Sleep until the next poll (interval after the last one began); False once the deadline passed."""
        remaining = self.deadline - self.clock()
        if remaining <= 0:
            return False
        self.sleep(max(0.0, min(self.interval - spent, remaining)))
        return True


def _wait_healthy(poll, kind, health_path, field, value):
    while True:
        status, text, spent = poll.attempt("health", "GET", health_path)
        ok, why = health_ok(kind, status, text, field, value) if status is not None else (False, "no answer")
        if ok:
            poll.finish("health")
            return
        poll.result["last"]["why"] = why
        if not poll.pause(spent):
            poll.fail("health", "not healthy (%s)" % why)


def _wait_model_listed(poll, models_path, served_model_name):
    """Until /v1/models lists the name; a server listing other names serves the wrong model: fail at once."""
    while True:
        status, text, spent = poll.attempt("models", "GET", models_path)
        ids = model_ids(text) if status == 200 else None
        if ids is not None:
            poll.result["models"] = ids
            if served_model_name in ids:
                poll.finish("models")
                return
            if ids:
                poll.fail("models", "wrong model: the server lists %s, not %s" % (", ".join(ids), served_model_name))
        if not poll.pause(spent):
            poll.fail("models", "%s never listed" % served_model_name)


def _wait_completion(poll, served_model_name, prompt, max_tokens):
    body = {"model": served_model_name or (poll.result["models"] or [""])[0],
            "messages": [{"role": "user", "content": prompt}], "max_tokens": int(max_tokens), "temperature": 0}
    while True:
        status, text, spent = poll.attempt("inference", "POST", "/v1/chat/completions", body)
        if status == 200:
            try:
                answer = json.loads(text)
                content = (answer["choices"][0].get("message") or {}).get("content")
            except (ValueError, KeyError, IndexError, TypeError, AttributeError):
                poll.fail("inference", "the completion answer has no choices")
            poll.result["inference"] = {"latency_s": round(spent, 3), "text": excerpt(content or "", 80),
                                        "usage": answer.get("usage")}
            poll.finish("inference")
            return
        if status is not None and 400 <= status < 500:
            poll.fail("inference", "the completion was refused (status %s)" % status)
        if not poll.pause(spent):
            poll.fail("inference", "no completion")


def wait_serving(fetch, served_model_name=None, kind="vllm", health_path="/health", field=None, value=True,
                 check_models=True, models_path="/v1/models", inference=False, prompt="Say OK.", max_tokens=1,
                 timeout=600.0, interval=0.2, request_timeout=5.0, clock=time.monotonic, sleep=time.sleep):
    """Poll until serving; returns the result (elapsed per phase) or raises HealthError with what was seen."""
    poll = _Poll(fetch, timeout, interval, request_timeout, clock, sleep, served_model_name)
    _wait_healthy(poll, kind, health_path, field, value)
    if check_models and served_model_name:
        _wait_model_listed(poll, models_path, served_model_name)
    if inference:
        _wait_completion(poll, served_model_name, prompt, max_tokens)
    poll.result["elapsed"]["total"] = round(clock() - poll.started, 3)
    poll.result["ready"] = True
    return poll.result
