"""Plain-HTTP helpers for tests that talk to a (fake) vLLM server: HTTP errors are answers, not exceptions."""

import json
import socket
import threading
import urllib.error
import urllib.request

__all__ = ["call", "chat", "refused", "sse_events", "Background", "wait_for", "metric"]


def call(method, url, body=None, timeout=5, headers=None):
    """(status, headers, raw body) of one request."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method,
                                     headers=dict({"Content-Type": "application/json"}, **(headers or {})))
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def chat(url, model, content="Hello there", headers=None, timeout=5, **extra):
    return call("POST", url + "/v1/chat/completions",
                dict({"model": model, "messages": [{"role": "user", "content": content}]}, **extra),
                headers=headers, timeout=timeout)


def refused(url):
    """True when nothing listens at `url` (connection refused)."""
    host, port = url.split("//")[1].split(":")
    try:
        socket.create_connection((host, int(port)), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


def sse_events(raw):
    """The `data:` payloads of a server-sent-events body, in order (``[DONE]`` included)."""
    return [line[len("data: "):] for line in raw.decode().split("\n\n") if line.startswith("data: ")]


class Background:
    """Run ``call(...)`` in a thread: ``.result`` once ``.join()`` returned."""

    def __init__(self, *args, **kwargs):
        self.result = None
        self._thread = threading.Thread(target=self._run, args=args, kwargs=kwargs, daemon=True)
        self._thread.start()

    def _run(self, *args, **kwargs):
        self.result = call(*args, **kwargs)

    def join(self, timeout=10):
        self._thread.join(timeout)
        return self.result


def wait_for(predicate, timeout=5.0, interval=0.01):
    """Poll `predicate` until it returns a true value (returned) or `timeout` passes (AssertionError)."""
    import time
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met within %.1f s" % timeout)
        time.sleep(interval)


def metric(text, name, **labels):
    """The value of one sample in Prometheus text (labels must match exactly the ones given), else None."""
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name + "{"):
            continue
        series, _sep, value = line.rpartition(" ")
        got = dict(part.split("=", 1) for part in series[len(name) + 1:-1].split(","))
        if {k: v.strip('"') for k, v in got.items()} == {k: str(v) for k, v in labels.items()}:
            return float(value)
    return None
