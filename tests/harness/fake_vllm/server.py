"""FakeVLLMServer: one vLLM API server process, simulated in-process (see the package docstring)."""

import collections
import os
import socket
import sys
import threading
import time
import urllib.error
import urllib.request

from tests.harness.fake_vllm.args import DEFAULT_PORT, VLLM_DEFAULT_MODEL, parse_vllm_args
from tests.harness.fake_vllm.endpoints import EndpointsMixin
from tests.harness.fake_vllm.gpu import GpuMemory, StartupFailure
from tests.harness.fake_vllm.http import Handler, HTTPServer
from tests.harness.fake_vllm.metrics import Metrics
from tests.harness.fake_vllm.models import facts_for
from tests.harness.fake_vllm.sleep import SleepMixin
from tests.harness.fake_vllm.versions import NEWEST, profile as version_profile

__all__ = ["FakeVLLMServer", "DEFAULT_CRASH_MESSAGE", "STATES"]

STATES = ("stopped", "loading", "ready", "crashed")
DEFAULT_CRASH_MESSAGE = "RuntimeError: Engine core initialization failed. See root cause above. Failed core proc(s): {}"
MAX_LOG_LINES = 20000
SIGKILL_EXIT = 137
# From_args keys that are constructor keywords (the rest of parse_vllm_args' `known` maps 1:1 too).
_FROM_ARGS = ("model", "served_model_names", "host", "port", "max_model_len", "api_key", "gpu_memory_utilization",
              "max_num_seqs", "dtype", "tensor_parallel_size", "enable_sleep_mode", "enforce_eager", "load_seconds",
              "response_delay", "token_delay", "health_mode", "fail_health_after", "version", "crash_message",
              "shutdown_seconds", "sleep_seconds", "wake_seconds", "sleep_residue_mib", "crash_during_load", "hang",
              "listen_during_load", "fail_wake")


class FakeVLLMServer(EndpointsMixin, SleepMixin):
    """A fake vLLM server; ``start()`` returns at once with the base URL (the server may still be loading).

    Durations (``load_seconds``, ``shutdown_seconds``, ``sleep_seconds``, ``wake_seconds``, ``reload_seconds``,
    ``response_delay``, ``token_delay``, ``fail_health_after``) are simulated seconds: the server waits them
    times ``time_scale``. ``gpu`` is a tests.harness.gpu_ledger.GpuClaim (None: no GPU memory is modelled).
    ``env`` is the container's environment (VLLM_SERVER_DEV_MODE, VLLM_API_KEY). ``listen_port`` is the port
    the server listens on inside its pod (vLLM's --port, default 8000); ``port`` is where this fake binds.
    """

    argv = None
    args_host = None  # --host as the command line gave it (the start-up log prints it)

    def __init__(self, model="Qwen/Qwen3-8B-AWQ", served_model_names=(), host="127.0.0.1", port=0,
                 load_seconds=0.0, crash_during_load=False, hang=False, response_delay=0.0,
                 health_mode="vllm", version=NEWEST, max_model_len=None, listen_during_load=False,
                 fail_health_after=None, json_loading_status=503, crash_message=DEFAULT_CRASH_MESSAGE,
                 extra_args=None, echo=False, gpu=None, env=None, time_scale=1.0, shutdown_seconds=0.0,
                 listen_port=None, api_key=None, gpu_memory_utilization=0.9, max_num_seqs=None, dtype="auto",
                 tensor_parallel_size=1, enable_sleep_mode=False, enforce_eager=False, token_delay=0.0,
                 sleep_seconds=0.0, wake_seconds=0.0, reload_seconds=None, fail_wake=False, sleep_residue_mib=None,
                 cuda_context_mib=500, model_facts=None):
        if health_mode not in ("vllm", "json"):
            raise ValueError("health_mode must be 'vllm' or 'json', got %r" % (health_mode,))
        if min(load_seconds, response_delay, token_delay, shutdown_seconds, sleep_seconds, wake_seconds) < 0:
            raise ValueError("durations must be >= 0")
        if time_scale <= 0:
            raise ValueError("time_scale must be > 0, got %r" % (time_scale,))
        if isinstance(served_model_names, str):
            served_model_names = (served_model_names,)
        self.model = model
        self.served_model_names = tuple(served_model_names) or (model,)
        self.host = host
        self.port = int(port)
        self.listen_port = int(listen_port) if listen_port else (self.port or DEFAULT_PORT)
        self.version = str(version or NEWEST)
        self.profile = version_profile(self.version)
        self.facts = facts_for(model, model_facts)
        self.max_model_len = int(max_model_len or (self.facts.max_model_len if self.facts else 8192))
        self.load_seconds = float(load_seconds)
        self.crash_during_load = bool(crash_during_load)
        self.hang = bool(hang)
        self.response_delay = float(response_delay)
        self.token_delay = float(token_delay)
        self.health_mode = health_mode
        self.listen_during_load = bool(listen_during_load)
        self.fail_health_after = fail_health_after
        self.json_loading_status = int(json_loading_status)
        self.crash_message = crash_message
        self.extra_args = collections.OrderedDict(extra_args or {})
        self.echo = echo
        self.gpu = gpu
        self.env = dict(env or {})
        self.time_scale = float(time_scale)
        self.shutdown_seconds = float(shutdown_seconds)
        self.sleep_seconds = float(sleep_seconds)
        self.wake_seconds = float(wake_seconds)
        self.reload_seconds = float(reload_seconds) if reload_seconds is not None else self.load_seconds / 2
        self.fail_wake = bool(fail_wake)
        self.enable_sleep_mode = bool(enable_sleep_mode)
        self.enforce_eager = bool(enforce_eager)
        self.gpu_memory_utilization = float(gpu_memory_utilization)
        self.tensor_parallel_size = max(1, int(tensor_parallel_size))
        self.dtype = dtype
        self.sleep_residue_mib = sleep_residue_mib
        self.cuda_context_mib = int(cuda_context_mib)
        keys = [api_key] if isinstance(api_key, str) else list(api_key or [])
        if not self.profile.api_key_list:
            keys = keys[:1]
        env_key = self.env.get("VLLM_API_KEY")
        self.api_tokens = [k for k in (keys or [env_key]) if k]
        if max_num_seqs is None:  # EngineArgs defaults: 1024 on GPUs of 70 GiB or more, else 256
            big = gpu is not None and gpu.total_mib() >= 70 * 1024
            max_num_seqs = 1024 if big else 256
        self.max_num_seqs = int(max_num_seqs)

        self.url = None
        self.exit_code = None
        self.memory = None
        self.metrics = Metrics(self.profile, self.served_model_names[0])
        self._state = "stopped"
        self._lock = threading.RLock()
        self._sched = threading.Condition(self._lock)
        self._stop_event = threading.Event()
        self._settled = threading.Event()  # ready, crashed or stopped
        self._exited = threading.Event()
        self._logs = collections.deque(maxlen=MAX_LOG_LINES)
        self._httpd = None
        self._serving = False
        self._loader = None
        self._connections = set()
        self._ready_at = None
        self._unhealthy = False
        self._created = int(time.time())
        self._reset_engine()

    def _reset_engine(self):
        self._dead = False
        self._running = 0
        self._waiting = 0
        self._tokens_in_flight = 0
        self._abort_epoch = 0
        self._paused = False
        self._pause_mode = "abort"
        self._executor_sleeping = False
        self._sleeping_tags = set()
        self._sleep_level = None
        self._weights_valid = True

    # ------------------------------------------------------------------ construction from a command line
    @classmethod
    def from_args(cls, argv, **overrides):
        """A server configured from real vLLM container args (``["vllm", "serve", MODEL, ...]``, the
        vllm/vllm-openai image's ``["--model", MODEL, ...]``, ``python3 -m
        vllm.entrypoints.openai.api_server ...`` or ``sh -c "... vllm serve ..."``); keyword arguments
        override what the args say (a simulator passes ``port=0`` to avoid clashes, and ``gpu=``, ``env=``,
        ``time_scale=``, ``shutdown_seconds=``, ``version=``). ``listen_ports`` keeps the args' port."""
        parsed, extras = parse_vllm_args(argv)
        kwargs = {key: parsed[key] for key in _FROM_ARGS if key in parsed}
        if "model" not in kwargs:
            kwargs["model"] = VLLM_DEFAULT_MODEL
            extras["model_defaulted"] = True
        kwargs["listen_port"] = parsed.get("port", DEFAULT_PORT)
        kwargs["extra_args"] = extras
        kwargs.update(overrides)
        server = cls(**kwargs)
        server.argv = list(argv)
        server.args_host = parsed.get("host") or "0.0.0.0"
        return server

    # ------------------------------------------------------------------ what the kubelet reads
    @property
    def listen_ports(self):
        return (self.listen_port,)

    @property
    def state(self):
        return self._state

    @property
    def crashed(self):
        return self._state == "crashed"

    @property
    def dev_mode(self):
        return self._dev_mode_value() is True

    def poll(self):
        """None while the process runs (loading, ready, hung, asleep, shutting down), else its exit code."""
        return self.exit_code

    def logs(self):
        """vLLM-like log lines so far (start-up, access log, errors)."""
        return list(self._logs)

    def scaled(self, seconds):
        return max(0.0, float(seconds)) * self.time_scale

    def _dev_mode_value(self):
        raw = self.env.get("VLLM_SERVER_DEV_MODE", "0")
        try:
            return bool(int(raw))
        except ValueError:
            return ValueError("invalid literal for int() with base 10: %r" % raw)

    def mark_unhealthy(self):
        """Make the engine 'dead' now (it stays up): /health 503 (500 before 0.11), completions 500."""
        with self._lock:
            if not self._unhealthy:
                self._unhealthy = True
                self._dead = True
                self._log_error("AsyncLLM output_handler failed.", "core_client.py:421")
                self._log_error("EngineCore encountered a fatal error.", "core.py:343")
                self._sched.notify_all()

    def _health_state(self):
        """'loading', 'ready' or 'unhealthy'."""
        if self._state != "ready":
            return "loading"
        if self._unhealthy:
            return "unhealthy"
        if self.fail_health_after is not None and self._ready_at is not None and \
                time.monotonic() - self._ready_at >= self.scaled(self.fail_health_after):
            self.mark_unhealthy()
            return "unhealthy"
        return "ready"

    def routes(self):
        routes = {
            ("GET", "/health"): self._health,
            ("GET", "/ping"): self._health,
            ("POST", "/ping"): self._health,
            ("GET", "/version"): self._version,
            ("GET", "/v1/models"): self._models,
            ("GET", "/metrics"): self._metrics,
            ("POST", "/v1/chat/completions"): self._chat,
            ("POST", "/v1/completions"): self._completions,
        }
        routes.update(self._dev_routes())
        return routes

    # ------------------------------------------------------------------ logging
    def _emit(self, line, err=False):
        self._logs.append(line)
        if self.echo:
            stream = sys.stderr if err else sys.stdout
            stream.write(line + "\n")
            stream.flush()

    def _log(self, level, message, where="api_server.py:1043", err=False):
        self._emit("%s %s [%s] %s" % (level, time.strftime("%m-%d %H:%M:%S"), where, message), err=err)

    def _log_info(self, message, where="api_server.py:1043"):
        self._log("INFO", message, where)

    def _log_warning(self, message, where="api_server.py:1043"):
        self._log("WARNING", message, where)

    def _log_error(self, message, where="core.py:396", err=False):
        self._log("ERROR", message, where, err)

    def access_log(self, handler, status):
        try:
            phrase = handler.responses[status][0]
        except KeyError:
            phrase = ""
        client = handler.client_address
        self._emit('INFO:     %s:%s - "%s %s HTTP/1.1" %d %s' % (
            client[0], client[1], handler.command, handler.path, status, phrase))

    def _args_line(self):
        fields = [("model_tag", self.model), ("host", self.host), ("port", self.listen_port), ("model", self.model),
                  ("served_model_name", list(self.served_model_names)), ("max_model_len", self.max_model_len)]
        fields += list(self.extra_args.items())
        if not self.profile.api_key_list:  # --api-key took one value before 0.10.1
            fields = [(k, v[0] if k == "api_key" and isinstance(v, list) else v) for k, v in fields]
        if self.profile.args_redacted:
            fields = [(k, "***" if k in ("api_key", "hf_token") else v) for k, v in fields]
        if self.profile.args_line == "namespace":
            return "args: Namespace(%s)" % ", ".join("%s=%r" % (k, v) for k, v in fields)
        return "non-default args: {%s}" % ", ".join("%r: %r" % (k, v) for k, v in fields)

    # ------------------------------------------------------------------ lifecycle
    def start(self):
        """Bind the port and start loading in the background; returns the base URL at once.

        A stopped or crashed server can be started again (a container restart): same port, fresh load."""
        with self._lock:
            if self._state in ("loading", "ready") or self._httpd is not None:
                raise RuntimeError("FakeVLLMServer already started (state %s)" % self._state)
            handler = type("FakeVLLMHandler", (Handler,), {"fake": self})
            httpd = HTTPServer((self.host, self.port), handler, bind_and_activate=False)
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
            self._exited.clear()
            self._unhealthy = False
            self._ready_at = None
            self._reset_engine()
            self._log_info(self.profile.version_line.format(version=self.version, model=self.model))
            self._log_info(self._args_line(), "api_server.py:1044")
            if self.extra_args.get("model_defaulted"):
                self._log_warning("No model given; using the default model %s" % self.model)
            if self.listen_during_load:
                self._activate()
        self._loader = self._spawn(self._load, "fake-vllm-loader")
        return self.url

    def _spawn(self, target, name):
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        return thread

    def _activate(self):
        self._httpd.server_activate()
        self._serving = True
        self._spawn(lambda: self._httpd.serve_forever(poll_interval=0.05), "fake-vllm-http")

    def _wait(self, simulated):
        """Wait `simulated` seconds (scaled); True when stopped meanwhile."""
        return self._stop_event.wait(self.scaled(simulated))

    def _load(self):
        try:
            self._load_steps()
        except StartupFailure as failure:
            self._crash(failure.lines + [DEFAULT_CRASH_MESSAGE])

    def _load_steps(self):
        self._log_info("Loading model %s ..." % self.model, "gpu_model_runner.py:1329")
        if self.gpu is not None:
            self.memory = GpuMemory(self.gpu, self.profile, self.facts, self.gpu_memory_utilization,
                                    self.tensor_parallel_size, self.cuda_context_mib, self.sleep_residue_mib,
                                    self.dtype, log=self._log)
            self.memory.create_context()
            self.memory.effective_dtype()
            self.memory.check_free()
        if self.crash_during_load:
            if self._wait(self.load_seconds * 0.5):
                return
            self._crash([self.crash_message])
            return
        if self.hang:
            self._stop_event.wait()
            return
        if self._wait(self.load_seconds * 0.8):
            return
        if self.memory is not None:
            self.memory.load_weights()
        gib = self.memory.weights_mib / 1024.0 if self.memory is not None else 5.1
        self._log_info(self.profile.load_line.format(gib=gib, gib_str=round(gib, 2),
                                                     seconds=self.scaled(self.load_seconds * 0.8)),
                       "gpu_model_runner.py:1347")
        if self._wait(self.load_seconds * 0.2):
            return
        if self.memory is not None:
            self.memory.size_kv_cache(self.max_model_len)
        dev_mode = self._dev_mode_value()  # read by build_app, once the engine is up
        if isinstance(dev_mode, ValueError):
            raise StartupFailure(["ValueError: %s" % dev_mode])
        if dev_mode and self.profile.at_least("0.9.2"):  # the warning exists from 0.9.2 (api_server.py)
            self._log_warning("SECURITY WARNING: Development endpoints are enabled! This should NOT be used in "
                              "production!")
        with self._lock:
            if self._state != "loading" or self._stop_event.is_set():
                return
            self._log_info(self.profile.listen_line.format(url="http://%s:%d" % (self.args_host or self.host, self.listen_port)),
                           "launcher.py:28")
            if not self._serving:
                self._activate()
            self._emit("INFO:     Started server process [%d]" % os.getpid())
            self._emit("INFO:     Waiting for application startup.")
            self._emit("INFO:     Application startup complete.")
            self._ready_at = time.monotonic()
            self._state = "ready"
            self._settled.set()

    def _crash(self, lines):
        with self._lock:
            if self._state != "loading" or self._stop_event.is_set():
                return
            self._log_error("EngineCore failed to start.", err=True)
            self._log_error("Traceback (most recent call last):", err=True)
            self._log_error('  File "/usr/local/lib/python3.12/dist-packages/vllm/v1/engine/core.py", line 387, '
                            'in run_engine_core', err=True)
            for line in lines[:-1]:
                self._log_error(line, err=True)
            self._log_error(lines[-1], err=True)
            self._emit("Traceback (most recent call last):", err=True)
            self._emit('  File "/usr/local/bin/vllm", line 8, in <module>', err=True)
            self._emit("    sys.exit(main())", err=True)
            self._emit(lines[-1], err=True)
            self._state = "crashed"
            self.exit_code = 1
            self._close_http()
            self._settled.set()
            self._exited.set()
            self._sched.notify_all()

    def track_connection(self, conn, add):
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

    def _shutdown(self, exit_code):
        """The process ends: HTTP gone, exit code set. GPU memory stays with the process id in the ledger
        (the kubelet reports the exit to the ledger, which frees it after its release delay)."""
        with self._lock:
            if self.exit_code is not None:
                return
            self._stop_event.set()
            if exit_code == 0:
                self._emit("INFO:     Application shutdown complete.")
                self._emit("INFO:     Finished server process [%d]" % os.getpid())
            self._close_http()
            self.exit_code = exit_code
            self._state = "stopped"
            self._settled.set()
            self._exited.set()
            self._sched.notify_all()

    def stop(self, grace=None):
        """SIGTERM: stop listening at once, exit ``shutdown_seconds`` (simulated) later with code 0; when
        ``grace`` (real seconds) runs out first, SIGKILL: exit 137. A crashed server keeps its code 1.
        Blocks until the process has exited; returns the exit code. Idempotent."""
        with self._lock:
            if self.exit_code is not None:
                return self.exit_code
            self._stop_event.set()
            self._sched.notify_all()
            if self._httpd is not None:
                self._emit("INFO:     Shutting down")
            self._close_http()
        shutdown = self.scaled(self.shutdown_seconds)
        if grace is not None and grace < shutdown:
            self._exited.wait(max(0.0, grace))
            with self._lock:
                if self.exit_code is None:
                    self.exit_code = SIGKILL_EXIT
                    self._state = "stopped"
                    self._settled.set()
                    self._exited.set()
        else:
            self._exited.wait(shutdown)
            self._shutdown(0)
        if self._loader is not None and self._loader is not threading.current_thread():
            self._loader.join(timeout=5)
        return self.exit_code

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

    def wait_exit(self, timeout):
        """The exit code once the process has exited within `timeout` real seconds, else None."""
        self._exited.wait(timeout)
        return self.exit_code

    # ------------------------------------------------------------------ the scheduler
    def _admit(self):
        """Queue, then run: waits while the scheduler is paused (sleep, 0.17+) or ``max_num_seqs`` requests
        run. False when the engine is dead or the server stops."""
        with self._lock:
            self._waiting += 1
            try:
                while not self._dead and not self._stop_event.is_set() and \
                        (self._paused or self._running >= self.max_num_seqs):
                    self._sched.wait(0.1)
                if self._dead or self._stop_event.is_set():
                    return False
                self._running += 1
                return True
            finally:
                self._waiting -= 1

    def _release(self, request, prompt_tokens, finish):
        with self._lock:
            self._running -= 1
            self._tokens_in_flight -= prompt_tokens + request["generated"]
            if finish is not None:
                self.metrics.finished(prompt_tokens, request["generated"], finish)
            self._sched.notify_all()

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def __repr__(self):
        return "FakeVLLMServer(model=%r, served=%r, version=%r, url=%r, state=%r)" % (
            self.model, self.served_model_names, self.version, self.url, self._state)
