"""vLLM's development-mode endpoints and sleep mode, per release (versions.py has the sources).

The routes exist only when the environment has ``VLLM_SERVER_DEV_MODE=1`` (vLLM reads it as
``bool(int(...))``: any other integer string is false, a non-integer stops the server at start-up):
``POST /sleep?level=N[&mode=M]``, ``POST /wake_up[?tags=weights&tags=kv_cache]``, ``GET /is_sleeping``,
``POST /reset_prefix_cache``, ``POST /collective_rpc`` (0.10.2+) and ``GET /server_info``. They are not
under /v1, so ``--api-key`` does not guard them.

``--enable-sleep-mode`` is what makes sleeping free anything: without it weights and KV cache are plain
PyTorch allocations, /sleep still answers 200 and /is_sleeping says true, but no memory is released
("Sleep mode freed 0.00 GiB memory").

Level 1 copies the weights to host RAM and drops the KV cache; level 2 drops both (any level but 1 does,
before 0.17 level 0 too). Waking from level 2 maps fresh memory for the weights: the model answers garbage
until ``POST /collective_rpc {"method": "reload_weights"}`` has reloaded them. A forward pass while memory
is unmapped ends the engine with "CUDA error: an illegal memory access was encountered": before 0.17 any
request while asleep does that; from 0.17 the scheduler is paused while asleep (requests wait), but
0.17 .. 0.23 resume it after a partial wake_up.
"""

import json
import time

from tests.harness.fake_vllm.gpu import WakeFailure

__all__ = ["SleepMixin", "WAKE_FAULT"]

# What a failed cuMemMap looks like (vllm-project/vllm#45565: cumem_allocator.cpp:169 'invalid argument').
WAKE_FAULT = "CUDA Error: invalid argument at /workspace/csrc/cumem_allocator.cpp:169"
ILLEGAL_ACCESS_LINES = (
    "RuntimeError: CUDA error: an illegal memory access was encountered",
    "CUDA kernel errors might be asynchronously reported at some other API call, so the stacktrace below might "
    "be incorrect.",
    "For debugging consider passing CUDA_LAUNCH_BLOCKING=1",
    "Compile with `TORCH_USE_CUDA_DSA` to enable device-side assertions.",
)
TAG_ORDER = ("weights", "kv_cache")


def _validation_400(h, kind, message, value, ctx=None):
    """FastAPI query validation as vLLM 0.32+ answers it (validation_exception_handler)."""
    error = {"type": kind, "loc": "query.level", "msg": message, "input": value}
    if ctx:
        error["ctx"] = ctx
    h.send(400, {"error": {"message": "1 validation error:\n  %s" % error, "type": "Bad Request",
                           "param": "query.level", "code": 400}})


class SleepMixin:
    # ------------------------------------------------------------------ state the other parts read
    def _forward_hits_unmapped_memory(self):
        """True when a forward pass now would touch unmapped memory (caller holds the lock)."""
        return self.enable_sleep_mode and bool(self._sleeping_tags)

    def _sleep_level_for_metrics(self):
        return self._sleep_level if (self._executor_sleeping or self._paused) else None

    def is_sleeping(self):
        with self._lock:
            if self.profile.sleep_pauses_scheduler:
                return self._paused or self._executor_sleeping
            return self._executor_sleeping

    # ------------------------------------------------------------------ routes
    def _dev_routes(self):
        if not self.dev_mode:
            return {}
        routes = {
            ("POST", "/sleep"): self._sleep,
            ("POST", "/wake_up"): self._wake_up,
            ("GET", "/is_sleeping"): self._is_sleeping,
            ("POST", "/reset_prefix_cache"): self._reset_prefix_cache,
            ("GET", "/server_info"): self._server_info,
        }
        if self.profile.collective_rpc:
            routes[("POST", "/collective_rpc")] = self._collective_rpc
        return routes

    def _is_sleeping(self, h):
        h.send(200, {"is_sleeping": self.is_sleeping()})

    def _server_info(self, h):
        h.send(200, {"vllm_config": "model=%r, served_model_name=%r, enable_sleep_mode=%r" % (
            self.model, self.served_model_names[0], self.enable_sleep_mode)})

    def _reset_prefix_cache(self, h):
        h.read_body()
        if self._unavailable(h):
            return
        self._log_info("Resetting prefix cache...")
        if self.profile.reset_prefix_cache_json:
            h.send(200, {"success": True})
        else:
            h.send(200, b"", content_type="")

    def _parse_level(self, h):
        raw = (h.query.get("level") or ["1"])[0]
        try:
            level = int(raw)
        except ValueError:
            if self.profile.sleep_json_response:
                _validation_400(h, "int_parsing", "Input should be a valid integer, unable to parse string as an "
                                "integer", raw)
            else:
                h.send_unhandled("invalid literal for int() with base 10: %r" % raw, 400, "BadRequestError")
            return None
        if self.profile.sleep_json_response and not 0 <= level <= 2:
            kind, op, bound = ("less_than_equal", "less than or equal to", 2) if level > 2 else \
                ("greater_than_equal", "greater than or equal to", 0)
            _validation_400(h, kind, "Input should be %s %d" % (op, bound), raw, {"le" if level > 2 else "ge": bound})
            return None
        return level

    def _sleep(self, h):
        h.read_body()  # a JSON body is ignored: vLLM reads the level from the query string only
        if self._unavailable(h):
            return
        level = self._parse_level(h)
        if level is None:
            return
        mode = (h.query.get("mode") or ["abort"])[0]
        if self.profile.sleep_pauses_scheduler and mode not in ("abort", "wait", "keep"):
            if self.profile.sleep_json_response:
                h.send(400, {"error": {"message": "1 validation error:\n  {'type': 'literal_error', 'loc': "
                                                  "'query.mode', 'msg': \"Input should be 'abort', 'wait' or "
                                                  "'keep'\", 'input': %r}" % mode, "type": "Bad Request",
                                       "param": "query.mode", "code": 400}})
            else:
                h.send_unhandled("Invalid pause mode: %s" % mode, 400, "BadRequestError")
            return
        if self.profile.sleep_pauses_scheduler:
            self._pause(mode)
            if level >= 1:
                self._executor_sleep(level)
            elif self._sleep_level is None:
                self._sleep_level = 0
        else:
            self._executor_sleep(2 if level != 1 else 1)
        if self.profile.sleep_json_response:
            h.send(200, {"status": "sleeping", "level": level})
        else:
            h.send(200, b"", content_type="")

    def _pause(self, mode):
        with self._lock:
            self._paused = True
            self._pause_mode = mode
            if mode == "abort":
                self._abort_epoch += 1
            self._sched.notify_all()
            if mode == "wait":
                self._log_info("Waiting for in-flight requests to complete before sleeping...", "core.py")
                while self._running and not self._dead and not self._stop_event.is_set():
                    self._sched.wait(0.05)

    def _executor_sleep(self, level):
        with self._lock:
            if self._executor_sleeping:
                self._log_warning("Executor is already sleeping.", "abstract.py")
                return
        started = time.monotonic()
        self._stop_event.wait(self.scaled(self.sleep_seconds))
        with self._lock:
            freed, still = 0, None
            if self.memory is not None:
                if self.enable_sleep_mode:
                    freed, still = self.memory.sleep(level)
                else:
                    still = self.memory.held_mib()
            self._executor_sleeping = True
            self._sleep_level = level
            self._sleeping_tags = set(TAG_ORDER)
            if level != 1:
                self._weights_valid = False if self.enable_sleep_mode else self._weights_valid
            if still is not None:
                self._log_info("Sleep mode freed %.2f GiB memory, %.2f GiB memory is still in use."
                               % (freed / 1024.0, still / 1024.0), "gpu_worker.py")
            self._log_info("It took %.6f seconds to fall asleep." % (time.monotonic() - started), "abstract.py")
            self._sched.notify_all()

    def _wake_up(self, h):
        h.read_body()
        if self._unavailable(h):
            return
        tags = h.query.get("tags") or None
        self._log_info("wake up the engine with tags: %s" % tags)
        executor_tags = tags
        if tags is not None and self.profile.sleep_pauses_scheduler and "scheduling" in tags:
            executor_tags = [t for t in tags if t != "scheduling"]
        try:
            if executor_tags is None or executor_tags:
                self._executor_wake(executor_tags)
        except WakeFailure as failure:
            message = "Call to wake_up method failed: %s" % failure
            if self.profile.error_paths_sanitized:
                message = message.replace("/workspace/csrc/cumem_allocator.cpp", "<path>")
            self._log_error("Invocation of wake_up method failed", "core.py")
            self._log_error(str(failure), "core.py")
            h.send_unhandled(message)
            return
        with self._lock:
            fully_awake = not self._executor_sleeping
            if self.profile.sleep_pauses_scheduler and (fully_awake or self.profile.partial_wake_resumes):
                self._paused = False
                if fully_awake:
                    self._sleep_level = None
                self._sched.notify_all()
        if self.profile.sleep_json_response:
            h.send(200, {"status": "awake" if fully_awake else "sleeping", "tags": tags})
        else:
            h.send(200, b"", content_type="")

    def _executor_wake(self, tags):
        with self._lock:
            if not self._executor_sleeping:
                self._log_warning("Executor is not sleeping.", "abstract.py")
                return
            for tag in tags or ():
                if tag not in self._sleeping_tags:
                    self._log_warning("Tag %s is not in sleeping tags %s" % (tag, self._sleeping_tags), "abstract.py")
                    return
            wanted = [t for t in TAG_ORDER if t in (tags or self._sleeping_tags)]
        started = time.monotonic()
        self._stop_event.wait(self.scaled(self.wake_seconds))
        if self.fail_wake:
            raise WakeFailure(WAKE_FAULT)
        if self.memory is not None and self.enable_sleep_mode:
            self.memory.wake(wanted)
        with self._lock:
            for tag in wanted:
                self._sleeping_tags.discard(tag)
            if not self._sleeping_tags:
                self._executor_sleeping = False
                if not self.profile.sleep_pauses_scheduler:
                    self._sleep_level = None
            if "weights" in wanted and self._sleep_level == 1:
                self._weights_valid = True
            self._log_info("It took %.6f seconds to wake up tags %s."
                           % (time.monotonic() - started, tags if tags is not None else set(wanted)), "abstract.py")
            self._sched.notify_all()

    def _collective_rpc(self, h):
        raw = h.read_body()
        if self._unavailable(h):
            return
        try:
            body = json.loads(raw.decode("utf-8") or "null")
        except ValueError as exc:
            h.send_error_body("JSON decode error: %s" % exc, "Bad Request", 400)
            return
        method = body.get("method") if isinstance(body, dict) else None
        if method is None:
            h.send_error_body("Missing 'method' in request body", "Bad Request", 400)
            return
        if method != "reload_weights":
            h.send_unhandled("Call to collective_rpc method failed: 'Worker' object has no attribute %r" % method)
            return
        with self._lock:
            if self.enable_sleep_mode and "weights" in self._sleeping_tags:
                self._engine_crash_locked()
                dead = True
            else:
                dead = False
        if dead:
            h.send_engine_dead()
            return
        self._stop_event.wait(self.scaled(self.reload_seconds))
        with self._lock:
            self._weights_valid = True
        self._log_info("Reloading weights inplace...", "gpu_model_runner.py")
        h.send(200, {"results": [None] * self.tensor_parallel_size})

    # ------------------------------------------------------------------ the engine dies
    def _engine_crash_locked(self):
        """A forward pass touched unmapped memory: the engine dies, the server exits (code 0, as vLLM's
        watchdog shuts uvicorn down: vllm-project/vllm#48966) a watchdog period later."""
        if self._dead:
            return
        self._dead = True
        self._unhealthy = True
        for line in ILLEGAL_ACCESS_LINES:
            self._log_error(line, "core.py", err=True)
        self._log_error("EngineCore encountered a fatal error.", "core.py", err=True)
        self._sched.notify_all()
        self._spawn(self._watchdog_exit, "fake-vllm-watchdog")

    def _watchdog_exit(self):
        if self._stop_event.wait(self.scaled(5.0)):  # VLLM_WATCHDOG_TIME_S in vllm/entrypoints/launcher.py
            return
        self._shutdown(exit_code=0)
