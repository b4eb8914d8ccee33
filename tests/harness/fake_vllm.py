"""A fake vLLM OpenAI-compatible server: real HTTP on loopback, no GPU, no model.

It speaks the endpoints the collection and its tests touch, with vLLM's status codes and bodies:

* ``GET /health``: ``health_mode="vllm"`` answers 200 with an EMPTY body when up and 503 (empty)
  when the engine is dead, like vLLM's ``vllm/entrypoints/openai/api_server.py`` (``health()``
  returns ``Response(status_code=200)`` / ``503`` on ``EngineDeadError``). ``health_mode="json"``
  mimics the FastAPI TTS service of field-notes section 4: ``{"status": "healthy", "ready": true}``
  with 200 when up, ``{"status": "initializing", "ready": false}`` while loading and
  ``{"status": "unhealthy", "ready": false}`` when broken. The field notes do not give the status
  code while loading; this fake answers 503 by default (so an httpGet probe, which only reads the
  status code, sees "not ready"), and ``json_loading_status=200`` gives a service that says
  "initializing" only in the body (a readiness check must then read the body). Such a service
  listens while it loads: combine ``health_mode="json"`` with ``listen_during_load=True``.
* ``GET /v1/models``: the OpenAI list, one entry per ``--served-model-name`` (else the model).
* ``POST /v1/chat/completions`` and ``/v1/completions``: small deterministic answers in OpenAI
  format, streaming (SSE ``data:`` lines and ``data: [DONE]``) when ``stream`` is true; an unknown
  model name gets vLLM's 404 ``NotFoundError`` body; a prompt plus ``max_tokens`` beyond
  ``max_model_len`` gets vLLM's 400 context-length error.
* ``GET /version``, ``GET|POST /ping`` (same as /health, vLLM's SageMaker route), ``GET /metrics``
  (a few ``vllm:`` Prometheus series).

Start-up behaviours mirror vLLM: the HTTP server starts listening only once the engine has loaded
(``listen_during_load=False``: the port is bound at ``start()`` but not listening, so connections
are refused until then); ``listen_during_load=True`` answers 503 while loading instead.
``crash_during_load`` stops after half of ``load_seconds`` with vLLM's error lines (exit code 1),
``hang`` never becomes healthy, ``fail_health_after`` turns unhealthy that many seconds after
becoming ready, ``response_delay`` slows every request.

Run as a process: ``python -m tests.harness.fake_vllm serve MODEL --port 8000
[--served-model-name NAME ...] [--load-seconds S] [--crash-during-load] [--hang]
[--health-mode json] [--listen-during-load] [--response-delay S] [--fail-health-after S]
[--fake-version V]`` (any other vLLM argument is accepted and logged); it exits 1 with the error on
stderr when it crashes and 0 on SIGTERM.
"""

import collections
import json
import os
import shlex
import signal
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["FakeVLLMServer", "parse_vllm_args", "main"]

STATES = ("stopped", "loading", "ready", "crashed")
DEFAULT_CRASH_MESSAGE = "RuntimeError: Engine core initialization failed. See root cause above. Failed core proc(s): {}"
# EngineArgs' default model when neither a positional model nor --model is given.
VLLM_DEFAULT_MODEL = "facebook/opt-125m"
MAX_LOG_LINES = 20000


# --- argument parsing ------------------------------------------------------------------------------

# Options this fake understands, with how many values they take ("+": one or more).
_VALUE_OPTIONS = {
    "--model": 1,
    "--served-model-name": "+",
    "--host": 1,
    "--port": 1,
    "--max-model-len": 1,
    # fake-only behaviours
    "--load-seconds": 1,
    "--response-delay": 1,
    "--health-mode": 1,
    "--fail-health-after": 1,
    "--fake-version": 1,
    "--crash-message": 1,
}
_FLAG_OPTIONS = ("--crash-during-load", "--hang", "--listen-during-load")
_SHELL_OPERATORS = ("&&", "||", ";", "|", "&")
# vLLM options that are bare flags (store_true): they never take the next token as their value.
_VLLM_BOOL_FLAGS = {
    "enforce_eager", "trust_remote_code", "disable_log_requests", "disable_log_stats", "enable_prefix_caching",
    "enable_chunked_prefill", "enable_auto_tool_choice", "enable_lora", "disable_custom_all_reduce",
    "enable_reasoning", "disable_frontend_multiprocessing", "disable_uvicorn_access_log", "enable_sleep_mode",
    "skip_tokenizer_init", "enable_expert_parallel", "disable_fastapi_docs", "enable_prompt_tokens_details",
    "enable_server_load_tracking", "enable_request_id_headers", "disable_sliding_window", "use_v2_block_manager",
    "enable_log_outputs", "headless",
}


def _is_bool_flag(name):
    key = name.lstrip("-").replace("-", "_")
    return key in _VLLM_BOOL_FLAGS or key.startswith("no_")


def _is_option(token):
    if not token.startswith("-") or token == "-":
        return False
    try:
        float(token)
        return False  # a negative number is a value
    except ValueError:
        return True


def _strip_entrypoint(argv):
    """Drop ``vllm serve`` / ``python3 -m vllm.entrypoints.openai.api_server`` / ``serve`` and
    unwrap ``sh -c "... vllm serve ..."``; what is left are the server's own arguments."""
    argv = [str(a) for a in argv]
    if len(argv) >= 3 and os.path.basename(argv[0]) in ("sh", "bash", "dash") and argv[1].startswith("-") \
            and "c" in argv[1]:
        lexer = shlex.shlex(argv[2], posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        tokens = list(lexer)
        for i, token in enumerate(tokens):
            base = os.path.basename(token)
            if (base == "vllm" and tokens[i + 1:i + 2] == ["serve"]) or token == "vllm.entrypoints.openai.api_server":
                rest = tokens[i + (2 if base == "vllm" else 1):]
                cut = next((j for j, t in enumerate(rest) if t in _SHELL_OPERATORS), len(rest))
                return rest[:cut]
        raise ValueError("no `vllm serve` or vllm.entrypoints.openai.api_server in shell command %r" % argv[2])
    if argv and argv[0] == "exec":
        argv = argv[1:]
    if len(argv) >= 2 and os.path.basename(argv[0]) == "vllm" and argv[1] == "serve":
        return argv[2:]
    if len(argv) >= 3 and os.path.basename(argv[0]).startswith("python") and argv[1] == "-m" \
            and argv[2] == "vllm.entrypoints.openai.api_server":
        return argv[3:]
    if argv and argv[0] == "serve":
        return argv[1:]
    return argv


def parse_max_model_len(value):
    """vLLM's human-readable lengths: ``8192``, ``8k`` (8000), ``8K`` (8192), ``1m``/``1M``."""
    text = str(value).strip()
    if not text:
        raise ValueError("empty --max-model-len")
    factors = {"k": 1000, "K": 1024, "m": 1000 ** 2, "M": 1024 ** 2}
    if text[-1] in factors:
        return int(float(text[:-1]) * factors[text[-1]])
    return int(text)


def parse_vllm_args(argv):
    """Parse a container's vLLM command line into (known, extras).

    ``known`` has keys ``model``, ``served_model_names``, ``host``, ``port``, ``max_model_len`` and
    the fake-only behaviours that were given; ``extras`` maps every other option (dest-style name,
    ``enforce_eager``) to its value (True for a bare flag, a list for several values), in order.
    """
    args = _strip_entrypoint(argv)
    known, extras, positional = {}, collections.OrderedDict(), []
    i = 0
    while i < len(args):
        token = args[i]
        if not _is_option(token):
            positional.append(token)
            i += 1
            continue
        name, has_inline, inline = token.partition("=")
        if name in _FLAG_OPTIONS:
            known[name[2:].replace("-", "_")] = True if not has_inline else inline.lower() in ("1", "true", "yes")
            i += 1
            continue
        values = [inline] if has_inline else []
        j = i + 1
        arity = _VALUE_OPTIONS.get(name)
        if not has_inline:
            if arity == 1:
                if j >= len(args):
                    raise ValueError("argument %s: expected one argument" % name)
                values.append(args[j])
                j += 1
            elif arity == "+":
                while j < len(args) and not _is_option(args[j]):
                    values.append(args[j])
                    j += 1
            elif not _is_bool_flag(name) and j < len(args) and not _is_option(args[j]):
                values.append(args[j])  # an unknown option takes one value unless it is a known flag
                j += 1
        if arity is None:
            key = name.lstrip("-").replace("-", "_")
            extras[key] = True if not values else (values[0] if len(values) == 1 else values)
        elif arity == "+":
            if not values:
                raise ValueError("argument %s: expected at least one argument" % name)
            known[name[2:].replace("-", "_")] = values
        else:
            known[name[2:].replace("-", "_")] = values[0]
        i = j
    result = {}
    if positional:
        result["model"] = positional[0]
        if len(positional) > 1:
            extras["unparsed_positionals"] = positional[1:]
        if "model" in known and known["model"] != positional[0]:
            extras["ignored_model_option"] = known["model"]
    elif "model" in known:
        result["model"] = known["model"]
    if "served_model_name" in known:
        result["served_model_names"] = tuple(known["served_model_name"])
    if "host" in known:
        result["host"] = known["host"]
    if "port" in known:
        result["port"] = int(known["port"])
    if "max_model_len" in known and str(known["max_model_len"]) not in ("-1", "auto"):
        result["max_model_len"] = parse_max_model_len(known["max_model_len"])
    for key in ("load_seconds", "response_delay", "fail_health_after"):
        if key in known:
            result[key] = float(known[key])
    if "health_mode" in known:
        result["health_mode"] = known["health_mode"]
    if "fake_version" in known:
        result["version"] = known["fake_version"]
    if "crash_message" in known:
        result["crash_message"] = known["crash_message"]
    for key in ("crash_during_load", "hang", "listen_during_load"):
        if key in known:
            result[key] = known[key]
    return result, extras


# --- the HTTP side ---------------------------------------------------------------------------------


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        # A client (or stop()) closing the connection mid-answer is normal here; anything else is a bug.
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)


def _error(message, err_type, code):
    return {"object": "error", "message": message, "type": err_type, "param": None, "code": code}


def _words(text):
    return text.split()


def _message_text(content):
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # [{"type": "text", "text": "..."}]
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "uvicorn"

    def version_string(self):
        return self.server_version
    timeout = 30  # idle keep-alive connections go away

    fake = None  # set per server class

    def log_message(self, fmt, *args):
        pass

    def setup(self):
        super().setup()
        self.fake._track(self.connection, True)

    def finish(self):
        try:
            super().finish()
        finally:
            self.fake._track(self.connection, False)

    # plumbing

    def _send(self, status, body=b"", content_type="application/json", extra=None):
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode("utf-8")
        elif isinstance(body, str):
            body = body.encode("utf-8")
        self.send_response(status)
        if body or content_type == "application/json":
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        self.fake._access(self, status)  # before the answer leaves: a client that has it sees the line
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _chunk(self, data):
        if isinstance(data, str):
            data = data.encode("utf-8")
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _read_json(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            doc = json.loads(raw.decode("utf-8") or "null")
        except (ValueError, UnicodeDecodeError) as exc:
            return None, _error("JSON decode error: %s" % exc, "BadRequestError", 400)
        if not isinstance(doc, dict):
            return None, _error("request body must be a JSON object", "BadRequestError", 400)
        return doc, None

    def _dispatch(self, method):
        fake = self.fake
        if fake.response_delay > 0:
            time.sleep(fake.response_delay)
        path = self.path.split("?", 1)[0]
        routes = {
            ("GET", "/health"): fake._health,
            ("GET", "/ping"): fake._health,
            ("POST", "/ping"): fake._health,
            ("GET", "/version"): fake._version,
            ("GET", "/v1/models"): fake._models,
            ("GET", "/metrics"): fake._metrics,
            ("POST", "/v1/chat/completions"): fake._chat,
            ("POST", "/v1/completions"): fake._completions,
        }
        handler = routes.get((method, path))
        if handler is None:
            if any(p == path for (_m, p) in routes):
                self._send(405, {"detail": "Method Not Allowed"})
            else:
                self._send(404, {"detail": "Not Found"})
            return
        handler(self)

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_HEAD(self):
        self._dispatch("GET")


# --- the server ------------------------------------------------------------------------------------


class FakeVLLMServer:
    """A fake vLLM server; see the module docstring. ``start()`` returns at once with the base URL."""

    def __init__(self, model="Qwen/Qwen3-8B-AWQ", served_model_names=(), host="127.0.0.1", port=0,
                 load_seconds=0.0, crash_during_load=False, hang=False, response_delay=0.0,
                 health_mode="vllm", version="0.8.5.post1", max_model_len=8192, listen_during_load=False,
                 fail_health_after=None, json_loading_status=503, crash_message=DEFAULT_CRASH_MESSAGE,
                 extra_args=None, echo=False):
        if health_mode not in ("vllm", "json"):
            raise ValueError("health_mode must be 'vllm' or 'json', got %r" % (health_mode,))
        if load_seconds < 0 or response_delay < 0:
            raise ValueError("load_seconds and response_delay must be >= 0")
        if isinstance(served_model_names, str):
            served_model_names = (served_model_names,)
        self.model = model
        self.served_model_names = tuple(served_model_names) or (model,)
        self.host = host
        self.port = int(port)
        self.load_seconds = float(load_seconds)
        self.crash_during_load = bool(crash_during_load)
        self.hang = bool(hang)
        self.response_delay = float(response_delay)
        self.health_mode = health_mode
        self.version = version
        self.max_model_len = int(max_model_len)
        self.listen_during_load = bool(listen_during_load)
        self.fail_health_after = fail_health_after
        self.json_loading_status = int(json_loading_status)
        self.crash_message = crash_message
        self.extra_args = collections.OrderedDict(extra_args or {})
        self.echo = echo

        self.url = None
        self.exit_code = None
        self._state = "stopped"
        self._lock = threading.RLock()
        self._stop_event = threading.Event()
        self._settled = threading.Event()  # ready, crashed or stopped
        self._logs = collections.deque(maxlen=MAX_LOG_LINES)
        self._httpd = None
        self._serving = False
        self._serve_thread = None
        self._loader = None
        self._connections = set()
        self._ready_at = None
        self._unhealthy = False
        self._created = int(time.time())
        self._metrics_counters = collections.Counter()
        self._running_requests = 0

    # construction from a container command line

    @classmethod
    def from_args(cls, argv, **overrides):
        """A server configured from real vLLM container args (``["vllm", "serve", MODEL, ...]``, the
        vllm/vllm-openai image's ``["--model", MODEL, ...]``, ``python3 -m
        vllm.entrypoints.openai.api_server ...`` or ``sh -c "... vllm serve ..."``); keyword
        arguments override what the args say (a simulator passes ``port=0`` to avoid clashes).
        Unknown vLLM arguments are accepted and appear in the start-up log."""
        parsed, extras = parse_vllm_args(argv)
        if "model" not in parsed:
            parsed["model"] = VLLM_DEFAULT_MODEL
            extras["model_defaulted"] = True
        kwargs = dict(parsed, extra_args=extras)
        kwargs.update(overrides)
        server = cls(**kwargs)
        server.argv = list(argv)
        return server

    argv = None

    # state

    @property
    def state(self):
        return self._state

    @property
    def crashed(self):
        return self._state == "crashed"

    def poll(self):
        """None while running (loading, ready or hung), else the exit code (1 crashed, 0 stopped)."""
        return self.exit_code

    def logs(self):
        """vLLM-like log lines so far (start-up, access log, errors)."""
        return list(self._logs)

    def mark_unhealthy(self):
        """Make the engine 'dead' now: /health 503, completions 500."""
        with self._lock:
            if not self._unhealthy:
                self._unhealthy = True
                self._log_error("AsyncLLM output_handler failed.", "core_client.py:421")
                self._log_error("EngineCore encountered a fatal error.", "core.py:343")

    def _health_state(self):
        """'loading', 'ready' or 'unhealthy'."""
        if self._state != "ready":
            return "loading"
        if self._unhealthy:
            return "unhealthy"
        if self.fail_health_after is not None and self._ready_at is not None and \
                time.monotonic() - self._ready_at >= float(self.fail_health_after):
            self.mark_unhealthy()
            return "unhealthy"
        return "ready"

    # logging

    def _ts(self):
        return time.strftime("%m-%d %H:%M:%S")

    def _emit(self, line, err=False):
        self._logs.append(line)
        if self.echo:
            stream = sys.stderr if err else sys.stdout
            stream.write(line + "\n")
            stream.flush()

    def _log_info(self, message, where="api_server.py:1043"):
        self._emit("INFO %s [%s] %s" % (self._ts(), where, message))

    def _log_warning(self, message, where="api_server.py:1043"):
        self._emit("WARNING %s [%s] %s" % (self._ts(), where, message))

    def _log_error(self, message, where="core.py:396", err=False):
        self._emit("ERROR %s [%s] %s" % (self._ts(), where, message), err=err)

    def _access(self, handler, status):
        try:
            phrase = handler.responses[status][0]
        except KeyError:
            phrase = ""
        client = handler.client_address
        self._emit('INFO:     %s:%s - "%s %s HTTP/1.1" %d %s' % (
            client[0], client[1], handler.command, handler.path, status, phrase))

    def _namespace(self):
        fields = [
            ("model_tag", self.model),
            ("host", self.host),
            ("port", self.port),
            ("model", self.model),
            ("served_model_name", list(self.served_model_names)),
            ("max_model_len", self.max_model_len),
        ]
        fields += list(self.extra_args.items())
        return "Namespace(%s)" % ", ".join("%s=%r" % (k, v) for k, v in fields)

    # lifecycle

    def start(self):
        """Bind the port and start loading in the background; returns the base URL at once.

        A stopped or crashed server can be started again (a container restart): same port, fresh load."""
        with self._lock:
            if self._state in ("loading", "ready") or self._httpd is not None:
                raise RuntimeError("FakeVLLMServer already started (state %s)" % self._state)
            handler = type("FakeVLLMHandler", (_Handler,), {"fake": self})
            httpd = _HTTPServer((self.host, self.port), handler, bind_and_activate=False)
            try:
                httpd.server_bind()
            except OSError:
                httpd.server_close()
                raise
            self._httpd = httpd
            self.port = httpd.server_address[1]
            url_host = "127.0.0.1" if self.host in ("0.0.0.0", "", "::") else self.host
            self.url = "http://%s:%d" % (url_host, self.port)
            self._state = "loading"
            self.exit_code = None
            self._stop_event.clear()
            self._settled.clear()
            self._unhealthy = False
            self._ready_at = None
            self._log_info("vLLM API server version %s" % self.version)
            self._log_info("args: %s" % self._namespace(), "api_server.py:1044")
            if self.extra_args.get("model_defaulted"):
                self._log_warning("No model given; using the default model %s" % self.model)
            if self.listen_during_load:
                self._activate()
        self._loader = threading.Thread(target=self._load, name="fake-vllm-loader", daemon=True)
        self._loader.start()
        return self.url

    def _activate(self):
        self._httpd.server_activate()
        self._serving = True
        self._serve_thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-vllm-http", daemon=True
        )
        self._serve_thread.start()

    def _load(self):
        self._log_info("Loading model %s ..." % self.model, "gpu_model_runner.py:1329")
        if self.crash_during_load:
            if self._stop_event.wait(self.load_seconds * 0.5):
                return
            self._crash()
            return
        if self.hang:
            self._stop_event.wait()
            return
        if self._stop_event.wait(self.load_seconds):
            return
        with self._lock:
            if self._state != "loading":
                return
            self._log_info("Model loading took 5.1 GiB and %.6f seconds" % self.load_seconds,
                           "gpu_model_runner.py:1347")
            self._log_info("Starting vLLM API server on %s" % self.url, "launcher.py:28")
            if not self._serving:
                self._activate()
            self._emit("INFO:     Started server process [%d]" % os.getpid())
            self._emit("INFO:     Waiting for application startup.")
            self._emit("INFO:     Application startup complete.")
            self._ready_at = time.monotonic()
            self._state = "ready"
            self._settled.set()

    def _crash(self):
        with self._lock:
            if self._state != "loading":
                return
            self._log_error("EngineCore failed to start.", err=True)
            self._log_error("Traceback (most recent call last):", err=True)
            self._log_error('  File "/usr/local/lib/python3.12/dist-packages/vllm/v1/engine/core.py", line 387, '
                            'in run_engine_core', err=True)
            self._log_error(self.crash_message, err=True)
            self._emit("Traceback (most recent call last):", err=True)
            self._emit('  File "/usr/local/bin/vllm", line 8, in <module>', err=True)
            self._emit("    sys.exit(main())", err=True)
            self._emit(self.crash_message, err=True)
            self._state = "crashed"
            self.exit_code = 1
            self._close_http()
            self._settled.set()

    def _track(self, conn, add):
        with self._lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def _close_http(self):
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        if self._serving:
            httpd.shutdown()
            self._serving = False
        httpd.server_close()
        for conn in list(self._connections):
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._connections.clear()

    def stop(self):
        """Stop serving (clean exit, code 0; a crashed server keeps code 1). Idempotent."""
        self._stop_event.set()
        with self._lock:
            if self._httpd is not None and self._state != "crashed":
                self._emit("INFO:     Shutting down")
                self._emit("INFO:     Application shutdown complete.")
                self._emit("INFO:     Finished server process [%d]" % os.getpid())
            self._close_http()
            if self._state in ("loading", "ready"):
                self.exit_code = 0
                self._state = "stopped"
            self._settled.set()
        if self._loader is not None and self._loader is not threading.current_thread():
            self._loader.join(timeout=5)

    def wait_healthy(self, timeout=10.0):
        """True once /health answers 200 over HTTP; False on timeout, crash or stop."""
        deadline = time.monotonic() + timeout
        if not self._settled.wait(max(0.0, timeout)) or self._state != "ready":
            return False
        while True:
            remaining = deadline - time.monotonic()
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=max(0.1, remaining)) as resp:
                    if resp.status == 200:
                        return True
            except (urllib.error.URLError, OSError):
                pass
            if remaining <= 0 or self._state != "ready":
                return False
            time.sleep(min(0.05, max(0.0, remaining)))

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def __repr__(self):
        return "FakeVLLMServer(model=%r, served=%r, url=%r, state=%r)" % (
            self.model, self.served_model_names, self.url, self._state)

    # endpoints

    def _health(self, h):
        state = self._health_state()
        if self.health_mode == "json":
            if state == "ready":
                h._send(200, {"status": "healthy", "ready": True})
            elif state == "loading":
                h._send(self.json_loading_status, {"status": "initializing", "ready": False})
            else:
                h._send(503, {"status": "unhealthy", "ready": False})
            return
        h._send(200 if state == "ready" else 503, b"", content_type="")

    def _version(self, h):
        h._send(200, {"version": self.version})

    def _model_card(self, name):
        return {
            "id": name,
            "object": "model",
            "created": self._created,
            "owned_by": "vllm",
            "root": self.model,
            "parent": None,
            "max_model_len": self.max_model_len,
            "permission": [{
                "id": "modelperm-%s" % uuid.uuid4().hex,
                "object": "model_permission",
                "created": self._created,
                "allow_create_engine": False,
                "allow_sampling": True,
                "allow_logprobs": True,
                "allow_search_indices": False,
                "allow_view": True,
                "allow_fine_tuning": False,
                "organization": "*",
                "group": None,
                "is_blocking": False,
            }],
        }

    def _unavailable(self, h):
        state = self._health_state()
        if state == "loading":
            h._send(503, _error("The model is still loading.", "ServiceUnavailableError", 503))
            return True
        if state == "unhealthy":
            h._send(500, _error("EngineCore encountered an issue. See stack trace (above) for the root cause.",
                                "InternalServerError", 500))
            return True
        return False

    def _models(self, h):
        if self._unavailable(h):
            return
        h._send(200, {"object": "list", "data": [self._model_card(n) for n in self.served_model_names]})

    def _metrics(self, h):
        name = self.served_model_names[0]
        lines = []
        for metric, kind, value in (
            ("vllm:num_requests_running", "gauge", self._running_requests),
            ("vllm:num_requests_waiting", "gauge", 0),
            ("vllm:gpu_cache_usage_perc", "gauge", 0.0),
            ("vllm:prompt_tokens_total", "counter", self._metrics_counters["prompt"]),
            ("vllm:generation_tokens_total", "counter", self._metrics_counters["generation"]),
            ("vllm:request_success_total", "counter", self._metrics_counters["success"]),
        ):
            lines.append("# TYPE %s %s" % (metric, kind))
            lines.append('%s{model_name="%s"} %s' % (metric, name, float(value)))
        h._send(200, "\n".join(lines) + "\n", content_type="text/plain; version=0.0.4; charset=utf-8")

    def _resolve_model(self, h, body):
        name = body.get("model") or self.served_model_names[0]
        if name not in self.served_model_names:
            h._send(404, _error("The model `%s` does not exist." % name, "NotFoundError", 404))
            return None
        return name

    def _budget(self, h, body, prompt_tokens):
        """(max completion tokens) or None after answering vLLM's context-length 400."""
        requested = body.get("max_completion_tokens") or body.get("max_tokens")
        if requested is not None and (not isinstance(requested, int) or requested < 1):
            h._send(400, _error("max_tokens must be at least 1, got %r." % (requested,), "BadRequestError", 400))
            return None
        limit = requested if requested is not None else self.max_model_len - prompt_tokens
        if prompt_tokens + (requested or 0) > self.max_model_len or limit < 1:
            h._send(400, _error(
                "This model's maximum context length is %d tokens. However, you requested %d tokens (%d in the "
                "messages, %d in the completion). Please reduce the length of the messages or completion."
                % (self.max_model_len, prompt_tokens + (requested or 0), prompt_tokens, requested or 0),
                "BadRequestError", 400))
            return None
        return limit

    @staticmethod
    def _reply(name, prompt_tokens, limit):
        words = ("This is a fake vLLM reply from %s to a prompt of %d tokens." % (name, prompt_tokens)).split()
        finish = "stop"
        if len(words) > limit:
            words, finish = words[:limit], "length"
        return words, finish

    def _generate(self, h, kind):
        if self._unavailable(h):
            return
        body, err = h._read_json()
        if err:
            h._send(400, err)
            return
        name = self._resolve_model(h, body)
        if name is None:
            return
        if kind == "chat":
            messages = body.get("messages")
            if not isinstance(messages, list) or not messages:
                h._send(400, _error("messages must be a non-empty list", "BadRequestError", 400))
                return
            prompt = " ".join(_message_text(m.get("content")) for m in messages if isinstance(m, dict))
        else:
            prompt = body.get("prompt")
            if isinstance(prompt, list):
                prompt = " ".join(str(p) for p in prompt)
            if not isinstance(prompt, str):
                h._send(400, _error("prompt must be a string or a list of strings", "BadRequestError", 400))
                return
        prompt_tokens = len(_words(prompt))
        limit = self._budget(h, body, prompt_tokens)
        if limit is None:
            return
        words, finish = self._reply(name, prompt_tokens, limit)
        with self._lock:
            self._running_requests += 1
        try:
            if body.get("stream"):
                self._stream(h, kind, name, words, finish, prompt_tokens, body)
            else:
                self._respond(h, kind, name, words, finish, prompt_tokens, body)
        finally:
            with self._lock:
                self._running_requests -= 1
                self._metrics_counters["prompt"] += prompt_tokens
                self._metrics_counters["generation"] += len(words)
                self._metrics_counters["success"] += 1

    def _usage(self, prompt_tokens, completion_tokens):
        return {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens + completion_tokens,
                "completion_tokens": completion_tokens, "prompt_tokens_details": None}

    def _respond(self, h, kind, name, words, finish, prompt_tokens, body):
        text = " ".join(words)
        n = body.get("n") if isinstance(body.get("n"), int) and body.get("n") > 0 else 1
        created = int(time.time())
        if kind == "chat":
            choices = [{"index": i, "message": {"role": "assistant", "reasoning_content": None, "content": text,
                                                "tool_calls": []},
                        "logprobs": None, "finish_reason": finish, "stop_reason": None} for i in range(n)]
            doc = {"id": "chatcmpl-%s" % uuid.uuid4().hex, "object": "chat.completion", "created": created,
                   "model": name, "choices": choices, "usage": self._usage(prompt_tokens, len(words) * n),
                   "prompt_logprobs": None}
        else:
            choices = [{"index": i, "text": text, "logprobs": None, "finish_reason": finish, "stop_reason": None,
                        "prompt_logprobs": None} for i in range(n)]
            doc = {"id": "cmpl-%s" % uuid.uuid4().hex, "object": "text_completion", "created": created,
                   "model": name, "choices": choices, "usage": self._usage(prompt_tokens, len(words) * n)}
        h._send(200, doc)

    def _stream(self, h, kind, name, words, finish, prompt_tokens, body):
        created = int(time.time())
        ident = ("chatcmpl-%s" if kind == "chat" else "cmpl-%s") % uuid.uuid4().hex
        obj = "chat.completion.chunk" if kind == "chat" else "text_completion"
        h.send_response(200)
        h.send_header("Content-Type", "text/event-stream; charset=utf-8")
        h.send_header("Transfer-Encoding", "chunked")
        self._access(h, 200)
        h.end_headers()

        def event(choice, usage=None):
            doc = {"id": ident, "object": obj, "created": created, "model": name,
                   "choices": [choice] if choice is not None else []}
            if usage is not None:
                doc["usage"] = usage
            h._chunk("data: %s\n\n" % json.dumps(doc))

        if kind == "chat":
            event({"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None, "finish_reason": None})
        for i, word in enumerate(words):
            piece = word if i == 0 else " " + word
            if kind == "chat":
                event({"index": 0, "delta": {"content": piece}, "logprobs": None, "finish_reason": None})
            else:
                event({"index": 0, "text": piece, "logprobs": None, "finish_reason": None, "stop_reason": None})
        if kind == "chat":
            event({"index": 0, "delta": {"content": ""}, "logprobs": None, "finish_reason": finish,
                   "stop_reason": None})
        else:
            event({"index": 0, "text": "", "logprobs": None, "finish_reason": finish, "stop_reason": None})
        options = body.get("stream_options") or {}
        if isinstance(options, dict) and options.get("include_usage"):
            event(None, self._usage(prompt_tokens, len(words)))
        h._chunk("data: [DONE]\n\n")
        h._chunk(b"")

    def _chat(self, h):
        self._generate(h, "chat")

    def _completions(self, h):
        self._generate(h, "completion")


# --- process mode ----------------------------------------------------------------------------------


def main(argv=None):
    """``python -m tests.harness.fake_vllm serve MODEL [vLLM args] [fake options]``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        server = FakeVLLMServer.from_args(argv, echo=True)
    except ValueError as exc:
        sys.stderr.write("vllm serve: error: %s\n" % exc)
        return 2
    finished = threading.Event()

    def on_signal(signum, _frame):
        finished.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        server.start()
    except OSError as exc:
        sys.stderr.write("OSError: [Errno %s] error while attempting to bind on address ('%s', %d): %s\n"
                         % (exc.errno, server.host, server.port, exc.strerror))
        return 1
    while not finished.is_set():
        if server.crashed:
            server.stop()
            return 1
        finished.wait(0.05)
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
