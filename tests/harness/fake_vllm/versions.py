"""What changes between vLLM releases, as a table of facts read from vLLM's own source.

Each fact is a list of changes ``(since, value, source)``: the value holds from release ``since`` on, until
the next change. ``since`` is the first release where the value was read (or the earlier of two releases
that bracket the change: ``0.10.1`` means "absent in 0.10.0, present in 0.10.1"). Sources name the file in
vLLM's repository and the release tags compared; every tag was read from the published ``vllm`` wheel of
that version. ``profile(version)`` answers the facts for one image tag; a tag this table does not know
(``latest``, ``nightly``) gets the newest facts, one older than the oldest row gets the oldest.

Read at: 0.8.5.post1, 0.9.0, 0.9.1, 0.9.2, 0.10.0, 0.10.1, 0.10.1.1, 0.10.2, 0.11.0, 0.12.0, 0.13.0, 0.14.0,
0.15.1, 0.16.0, 0.17.0, 0.18.0, 0.20.0, 0.22.0, 0.23.0, 0.24.0, 0.25.0, 0.27.0, 0.29.0, 0.31.0, 0.32.0,
0.33.0. Between two of these the table assumes the older behaviour.
"""

import re

__all__ = ["NEWEST", "OLDEST", "FACTS", "VersionProfile", "profile", "version_key", "version_from_image"]

OLDEST = "0.8.5.post1"
NEWEST = "0.33.0"

_V1 = "vllm/v1/metrics/loggers.py"
_SERVING = "vllm/entrypoints/openai/serving_engine.py (0.15+: .../engine/serving.py, 0.29+: serve/engine/serving.py)"
_AUTH = "AuthenticationMiddleware in vllm/entrypoints/openai/api_server.py (0.16+: server_utils.py, " \
        "0.29+: serve/middleware/authenticate.py)"
_SLEEP = "the dev-mode /sleep and /wake_up routes (api_server.py; 0.13+: serve/sleep/api_router.py; " \
         "0.25+: serve/dev/sleep/api_router.py)"
_KV = "check_enough_kv_cache_memory in vllm/v1/core/kv_cache_utils.py (0.33: kv_cache_planning.py)"

FACTS = {
    # --- HTTP ------------------------------------------------------------------------------------------
    "error_body": [
        ("0", "flat", "vllm/entrypoints/openai/protocol.py ErrorResponse(object='error', message, type, param, "
                      "code) at 0.8.5.post1 .. 0.10.0"),
        ("0.10.1", "nested", "protocol.py at 0.10.1: ErrorResponse(error: ErrorInfo(message, type, param, code))"),
    ],
    "not_found_param": [
        ("0", None, _SERVING + ": _check_model's NotFoundError has no param at 0.8.5.post1 .. 0.13.0"),
        ("0.14", "model", _SERVING + " at 0.14.0: param='model'"),
    ],
    "not_found_lists_aliases": [
        ("0", False, _SERVING + ": 'The model `x` does not exist.' at 0.8.5.post1 .. 0.31.0"),
        ("0.32", True, _SERVING + " at 0.32.0: '... does not exist. Valid aliases: a, b.'"),
    ],
    "unhandled_error_json": [
        ("0", False, "no exception_handler(Exception) in api_server.py at 0.8.5.post1 .. 0.17.0: Starlette "
                     "answers 500 'Internal Server Error' (text/plain)"),
        ("0.18", True, "api_server.py at 0.18.0: app.exception_handler(Exception) -> create_error_response(exc) "
                       "(ValueError -> 400 BadRequestError, anything else -> 500 InternalServerError); "
                       "EngineDeadError too (engine_error_handler), where 0.8.5.post1 .. 0.17.0 answer an empty "
                       "500"),
    ],
    "error_paths_sanitized": [
        ("0", False, "sanitize_message only strips ' at 0x...>' at 0.18.0 .. 0.25.0"),
        ("0.27", True, "serve/exception_handling/utils.py at 0.27.0: file paths become '<path>'"),
    ],
    "health_when_dead": [
        ("0", 500, "api_server.py health() at 0.8.5.post1 .. 0.10.2: check_health() raises EngineDeadError, the "
                   "exception handler answers an empty 500"),
        ("0.11", 503, "api_server.py health() at 0.11.0: `except EngineDeadError: return Response(status_code=503)`"),
    ],
    # --- authentication (--api-key / VLLM_API_KEY) -----------------------------------------------------
    "api_key_list": [
        ("0", False, "api_server.py at 0.8.5.post1 .. 0.10.0: `token := args.api_key or envs.VLLM_API_KEY`"),
        ("0.10.1", True, "api_server.py at 0.10.1: --api-key takes several keys; "
                         "`[key for key in (args.api_key or [envs.VLLM_API_KEY]) if key]`"),
    ],
    "auth_scheme_case_insensitive": [
        ("0", False, _AUTH + ": header must equal 'Bearer <key>' exactly at 0.8.5.post1 .. 0.10.2"),
        ("0.11", True, _AUTH + " at 0.11.0: scheme.lower() == 'bearer', sha256 + compare_digest"),
    ],
    "auth_prefixes": [
        ("0", ("/v1",), _AUTH + ": only paths starting with /v1 at 0.8.5.post1 .. 0.20.0"),
        ("0.22", ("/v1", "/v2", "/inference"), _AUTH + " at 0.22.0: GUARDED_PREFIX"),
        ("0.27", ("/v1", "/v2", "/inference", "/cohere"), _AUTH + " at 0.27.0: GUARDED_PREFIX"),
    ],
    # --- /metrics (names as prometheus_client exposes them: counters get _total) -----------------------
    "kv_usage_gauges": [
        ("0", ("vllm:gpu_cache_usage_perc",), _V1 + " at 0.8.5.post1 .. 0.9.1"),
        ("0.9.2", ("vllm:gpu_cache_usage_perc", "vllm:kv_cache_usage_perc"),
         _V1 + " at 0.9.2: kv_cache_usage_perc added, gpu_cache_usage_perc deprecated"),
        ("0.11", ("vllm:kv_cache_usage_perc",),
         _V1 + " at 0.11.0: gpu_cache_usage_perc only with --show-hidden-metrics-for-version=0.10"),
    ],
    "hidden_gpu_cache_gauge": [
        ("0", False, _V1 + ": no hidden metrics before 0.11"),
        ("0.11", True, _V1 + " at 0.11.0: `if self.show_hidden_metrics:` registers gpu_cache_usage_perc"),
        ("0.12", False, _V1 + " at 0.12.0: gpu_cache_usage_perc removed"),
    ],
    "sleep_state_gauge": [
        ("0", False, _V1 + ": no vllm:engine_sleep_state at 0.8.5.post1 .. 0.11.0"),
        ("0.12", True, _V1 + " at 0.12.0: vllm:engine_sleep_state{sleep_state=awake|weights_offloaded|"
                             "discard_all}"),
    ],
    "finish_reasons": [
        ("0", ("stop", "length", "abort"), "FINISH_REASON_STRINGS in vllm/v1/engine/__init__.py at 0.8.5.post1"),
        ("0.13", ("stop", "length", "abort", "error"), "vllm/v1/engine/__init__.py at 0.13.0"),
        ("0.17", ("stop", "length", "abort", "error", "repetition"), "vllm/v1/engine/__init__.py at 0.17.0"),
    ],
    # --- sleep mode ------------------------------------------------------------------------------------
    "collective_rpc": [
        ("0", False, "no /collective_rpc route at 0.8.5.post1 .. 0.10.1.1"),
        ("0.10.2", True, "api_server.py at 0.10.2: POST /collective_rpc {method, args, kwargs, timeout} "
                         "(dev mode)"),
    ],
    "sleep_pauses_scheduler": [
        ("0", False, "vllm/v1/engine/core.py at 0.8.5.post1 .. 0.16.0: sleep() frees memory under a scheduler "
                     "that keeps running: a request while asleep dies with 'CUDA error: an illegal memory access "
                     "was encountered' (vllm-project/vllm#15483, #28714)"),
        ("0.17", True, "vllm/v1/engine/core.py at 0.17.0: sleep(level, mode) pauses the scheduler first; new "
                       "requests wait until wake_up; mode=abort (default) aborts running ones"),
    ],
    "sleep_keeps_weights": [
        ("0", False, "vllm/v1/worker/gpu_worker.py load_model() at 0.8.5.post1 .. 0.13.0: the weights are loaded in "
                     "the sleep-mode pool (tag 'weights')"),
        ("0.14", True, "vllm/v1/worker/gpu_worker.py load_model() at 0.14.0 and 0.16.0: `with "
                       "self._maybe_get_memory_pool_context(tag='weights') and set_current_vllm_config(...)` enters "
                       "only the second: the weights stay on the GPU while asleep (vllm-project/vllm#32714)"),
        ("0.17", False, "vllm/v1/worker/gpu_worker.py load_model() at 0.17.0 enters both (vllm-project/vllm#32947)"),
    ],
    "partial_wake_resumes": [
        ("0", False, "before 0.17 wake_up does not touch the scheduler"),
        ("0.17", True, "vllm/v1/engine/core.py at 0.17.0 .. 0.23.0: wake_up(tags) resumes scheduling even when "
                       "only some tags are awake (crash class of vllm-project/vllm#44395, #44483)"),
        ("0.24", False, "vllm/v1/engine/core.py at 0.24.0: resume only once all executor memory is resident"),
    ],
    "sleep_json_response": [
        ("0", False, _SLEEP + ": empty 200 at 0.8.5.post1 .. 0.31.0; level = int(query 'level', default '1')"),
        ("0.32", True, _SLEEP + " at 0.32.0: {'status': 'sleeping', 'level': n}, wake_up {'status': "
                                "'awake'|'sleeping', 'tags': ...}; level is Query(ge=0, le=2)"),
    ],
    "reset_prefix_cache_json": [
        ("0", False, "/reset_prefix_cache answers an empty 200 at 0.8.5.post1 .. 0.25.0"),
        ("0.27", True, "serve/dev/cache/api_router.py at 0.27.0: {'success': bool}"),
    ],
    # --- start-up --------------------------------------------------------------------------------------
    "startup_free_check": [
        ("0", "none", "vllm/v1/worker/gpu_worker.py at 0.8.5.post1, 0.9.0: no check; determine_available_memory "
                      "counts every byte used on the device (other processes too) against the budget"),
        ("0.9.1", "plain", "vllm/v1/worker/gpu_worker.py at 0.9.1: 'Free memory on device (X/Y GiB) on startup is "
                           "less than desired GPU memory utilization (U, Z GiB). ...'"),
        ("0.14", "device", "vllm/v1/worker/utils.py request_memory at 0.14.0: 'Free memory on device cuda:0 "
                           "(X/Y GiB) ...', sizes by format_gib (round(b / GiB, 2))"),
    ],
    "kv_error_style": [
        ("0", "0.8", _KV + " at 0.8.5.post1, 0.9.0: \"models's\", '%.2f GiB', the estimate sentence is cut "
         "(a dangling f-string) and two spaces precede 'Try'"),
        ("0.9.1", "0.9.1", _KV + " at 0.9.1: estimate sentence complete"),
        ("0.13", "0.13", _KV + " at 0.13.0: adds the conserving_memory docs link"),
        ("0.14", "0.14", _KV + " at 0.14.0: sizes by format_gib"),
        ("0.22", "0.22", _KV + " at 0.22.0: \"model's\" and the CPU-backend remark"),
    ],
    "v0_below_cc80": [
        ("0", True, "_is_v1_supported_oracle in vllm/engine/arg_utils.py at 0.8.5.post1 .. 0.10.1.1: 'Compute "
                    "Capability < 8.0' falls back to the V0 engine, whose vllm/worker/worker.py raises \"The "
                    "model's max seq len (N) is larger than the maximum number of tokens that can be stored in "
                    "KV cache (M)\""),
        ("0.10.2", False, "vllm/engine/arg_utils.py at 0.10.2: no V0 fallback"),
    ],
    "auto_dtype_falls_back": [
        ("0", False, "_get_and_verify_dtype in vllm/config.py at 0.8.5.post1, 0.9.0: dtype=auto keeps the "
                     "checkpoint's bfloat16"),
        ("0.9.1", True, "_resolve_auto_dtype in vllm/config.py at 0.9.1: 'Your device ... doesn't support "
                        "torch.bfloat16. Falling back to torch.float16 for compatibility.'"),
    ],
    "version_line": [
        ("0", "vLLM API server version {version}", "api_server.py run_server at 0.8.5.post1 .. 0.14.0"),
        ("0.15", "vLLM server version {version}, serving model {model}",
         "log_version_and_model in vllm/entrypoints/utils.py at 0.15.1"),
    ],
    "args_redacted": [
        ("0", False, "the start-up args line prints --api-key as given at 0.8.5.post1 .. 0.27.0"),
        ("0.29", True, "redact_sensitive_args in serve/utils/api_utils.py at 0.29.0: api_key and hf_token "
                       "logged as '***'"),
    ],
    "args_line": [
        ("0", "namespace", "api_server.py at 0.8.5.post1 .. 0.10.0: logger.info('args: %s', args)"),
        ("0.10.1", "non_default", "vllm/entrypoints/utils.py at 0.10.1: 'non-default args: {...}'"),
    ],
    "listen_line": [
        ("0", "Starting vLLM API server on {url}", "api_server.py at 0.8.5.post1, 0.9.0"),
        ("0.9.1", "Starting vLLM API server 0 on {url}", "api_server.py at 0.9.1 .. 0.17.0"),
        ("0.18", "Starting vLLM server on {url}", "api_server.py at 0.18.0"),
    ],
    "load_line": [
        ("0", "Model loading took {gib:.4f} GiB and {seconds:.6f} seconds",
         "vllm/v1/worker/gpu_model_runner.py at 0.8.5.post1 .. 0.13.0"),
        ("0.14", "Model loading took {gib_str} GiB memory and {seconds:.6f} seconds",
         "vllm/v1/worker/gpu_model_runner.py at 0.14.0"),
    ],
}


def version_key(version):
    """A sortable key: ``0.8.5.post1`` > ``0.8.5`` > ``0.8.5rc1``; None for a tag with no version."""
    match = re.match(r"^v?(\d+(?:\.\d+)*)(.*)$", str(version).strip())
    if not match:
        return None
    numbers = [int(n) for n in match.group(1).split(".")]
    numbers += [0] * (4 - len(numbers))
    rest = match.group(2).lower()
    suffix = 1 if "post" in rest else (-1 if re.search(r"rc|dev|a\d|b\d", rest) else 0)
    return tuple(numbers[:4]) + (suffix,)


def version_from_image(image):
    """``vllm/vllm-openai:v0.8.5.post1`` -> ``0.8.5.post1``; None when the tag names no version."""
    name = str(image).rsplit("@", 1)[0]
    tag = name.rsplit(":", 1)[1] if ":" in name.rsplit("/", 1)[-1] else ""
    match = re.match(r"^v?(\d+\.\d+(?:\.\d+)*(?:(?:\.post|rc|\.dev)\d+)?)", tag)
    return match.group(1) if match else None


class VersionProfile:
    """The facts of one vLLM release: attributes named as FACTS' keys; ``sources`` says where each came from."""

    def __init__(self, version):
        self.version = str(version)
        key = version_key(version)
        if key is None:
            key = version_key(NEWEST)
        key = max(key, version_key(OLDEST))
        self.sources = {}
        for name, changes in FACTS.items():
            value, source = changes[0][1], changes[0][2]
            for since, candidate, where in changes:
                if version_key(since) <= key:
                    value, source = candidate, where
            setattr(self, name, value)
            self.sources[name] = source
        self.key = key

    def at_least(self, version):
        return self.key >= version_key(version)

    def __repr__(self):
        return "VersionProfile(%r)" % self.version


def profile(version=None):
    return VersionProfile(version or NEWEST)
