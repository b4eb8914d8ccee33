"""A container's vLLM command line, read the way vLLM's argument parser reads it."""

import collections
import os
import shlex

__all__ = ["parse_vllm_args", "parse_max_model_len", "strip_entrypoint", "VLLM_DEFAULT_MODEL", "DEFAULT_PORT"]

# EngineArgs' default model when neither a positional model nor --model is given.
VLLM_DEFAULT_MODEL = "facebook/opt-125m"
# vLLM's --port default (vllm/entrypoints/openai/cli_args.py).
DEFAULT_PORT = 8000

# Options read into `known`, with how many values they take ("+": one or more) and how to convert them.
_VALUE_OPTIONS = {
    "--model": (1, str),
    "--served-model-name": ("+", tuple),
    "--host": (1, str),
    "--port": (1, int),
    "--max-model-len": (1, "max_model_len"),
    "--api-key": ("+", list),
    "--gpu-memory-utilization": (1, float),
    "--max-num-seqs": (1, int),
    "--dtype": (1, str),
    "--tensor-parallel-size": (1, int),
    "-tp": (1, int),
    # fake-only behaviours (a real vLLM would refuse them; they exist so a manifest can script the fake)
    "--load-seconds": (1, float),
    "--response-delay": (1, float),
    "--token-delay": (1, float),
    "--health-mode": (1, str),
    "--fail-health-after": (1, float),
    "--fake-version": (1, str),
    "--crash-message": (1, str),
    "--shutdown-seconds": (1, float),
    "--sleep-seconds": (1, float),
    "--wake-seconds": (1, float),
    "--sleep-residue-mib": (1, int),
}
_DESTS = {"--served-model-name": "served_model_names", "--fake-version": "version", "-tp": "tensor_parallel_size"}
_FAKE_FLAGS = ("--crash-during-load", "--hang", "--listen-during-load", "--fail-wake")
# vLLM flags the fake acts on; they also stay in `extras` so the start-up args line shows them.
_VLLM_FLAGS = ("--enable-sleep-mode", "--enforce-eager")
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


def strip_entrypoint(argv):
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


def _convert(name, kind, values):
    if kind == "max_model_len":
        return None if str(values[0]) in ("-1", "auto") else parse_max_model_len(values[0])
    if kind in (tuple, list):
        return kind(values)
    try:
        return kind(values[0])
    except ValueError:
        raise ValueError("argument %s: invalid %s value: %r" % (name, kind.__name__, values[0])) from None


def parse_vllm_args(argv):
    """Parse a container's vLLM command line into (known, extras).

    ``known`` maps what the fake acts on (``model``, ``served_model_names``, ``host``, ``port``,
    ``max_model_len``, ``api_key`` (a list), ``gpu_memory_utilization``, ``max_num_seqs``, ``dtype``,
    ``tensor_parallel_size``, ``enable_sleep_mode``, ``enforce_eager`` and the fake-only behaviours) to
    converted values; ``extras`` maps every vLLM option (dest-style name) to its value as given (True for
    a bare flag, a list for several values), in order: the start-up args line.
    """
    args = strip_entrypoint(argv)
    known, extras, positional = {}, collections.OrderedDict(), []
    i = 0
    while i < len(args):
        token = args[i]
        if not _is_option(token):
            positional.append(token)
            i += 1
            continue
        name, has_inline, inline = token.partition("=")
        if name in _FAKE_FLAGS or name in _VLLM_FLAGS:
            value = True if not has_inline else inline.lower() in ("1", "true", "yes")
            known[name.lstrip("-").replace("-", "_")] = value
            if name in _VLLM_FLAGS:
                extras[name.lstrip("-").replace("-", "_")] = value
            i += 1
            continue
        values = [inline] if has_inline else []
        j = i + 1
        arity, kind = _VALUE_OPTIONS.get(name, (None, None))
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
        key = name.lstrip("-").replace("-", "_")
        if arity is None:
            extras[key] = True if not values else (values[0] if len(values) == 1 else values)
        else:
            if not values:
                raise ValueError("argument %s: expected at least one argument" % name)
            dest = _DESTS.get(name, key)
            known[dest] = _convert(name, kind, values)
            if not name.startswith("--") or name[2:] not in _FAKE_ONLY:
                extras[dest if dest != "served_model_names" else "served_model_name"] = \
                    values[0] if len(values) == 1 and arity == 1 else list(values)
        i = j
    if positional:
        if "model" in known and known["model"] != positional[0]:
            extras["ignored_model_option"] = known["model"]
        known["model"] = positional[0]
        if len(positional) > 1:
            extras["unparsed_positionals"] = positional[1:]
    for key in ("model", "host", "port", "served_model_name", "max_model_len"):
        extras.pop(key, None)
    if known.get("max_model_len", 0) is None:
        known.pop("max_model_len")
    return known, extras


_FAKE_ONLY = {"load-seconds", "response-delay", "token-delay", "health-mode", "fail-health-after", "fake-version",
              "crash-message", "shutdown-seconds", "sleep-seconds", "wake-seconds", "sleep-residue-mib"}
