"""``GET /metrics``: vLLM's Prometheus series, rendered the way prometheus_client's text exposition does.

Names, help texts, labels and buckets come from vLLM's PrometheusStatLogger (vllm/v1/metrics/loggers.py,
read at 0.8.5.post1, 0.11.0, 0.15.1 and 0.29.0): every series carries ``engine`` and ``model_name`` (the
first served model name); counters are exposed with ``_total`` plus a ``_created`` gauge, histograms with
``_bucket``/``_count``/``_sum`` plus ``_created``; labels are sorted, as prometheus_client prints them.
Which KV-cache gauge exists, the finish reasons and the sleep-state gauge depend on the release
(versions.py).
"""

import threading
import time

__all__ = ["Metrics", "TTFT_BUCKETS", "go_float"]

TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0,
                40.0, 80.0, 160.0, 640.0, 2560.0)
_HELP = {
    "vllm:num_requests_running": "Number of requests in model execution batches.",
    "vllm:num_requests_waiting": "Number of requests waiting to be processed.",
    "vllm:gpu_cache_usage_perc": "GPU KV-cache usage. 1 means 100 percent usage.",
    "vllm:kv_cache_usage_perc": "KV-cache usage. 1 means 100 percent usage.",
    "vllm:prompt_tokens": "Number of prefill tokens processed.",
    "vllm:generation_tokens": "Number of generation tokens processed.",
    "vllm:request_success": "Count of successfully processed requests.",
    "vllm:time_to_first_token_seconds": "Histogram of time to first token in seconds.",
    "vllm:engine_sleep_state": "Engine sleep state; awake = 0 means engine is sleeping; awake = 1 means engine is "
                               "awake; weights_offloaded = 1 means sleep level 1; discard_all = 1 means sleep level 2.",
}
_DEPRECATED_GPU_CACHE = "GPU KV-cache usage. 1 means 100 percent usage.DEPRECATED: Use vllm:kv_cache_usage_perc instead."


def go_float(value):
    """prometheus_client's floatToGoString: 1.0, 0.25, +Inf, 1.733e+09."""
    value = float(value)
    if value == float("inf"):
        return "+Inf"
    text = repr(value)
    dot = text.find(".")
    if value > 0 and dot > 6:
        mantissa = ("%s.%s%s" % (text[0], text[1:dot], text[dot + 1:])).rstrip("0.")
        return "%se+0%d" % (mantissa, dot - 1)
    return text


def _labels(**labels):
    return "{%s}" % ",".join('%s="%s"' % (k, str(v).replace("\\", r"\\").replace("\n", r"\n").replace('"', r'\"'))
                             for k, v in sorted(labels.items()))


class Metrics:
    """Counters and the TTFT histogram of one engine; gauges are read from the server when rendering."""

    def __init__(self, profile, model_name):
        self.profile = profile
        self.model_name = model_name
        self.created = time.time()
        self._lock = threading.Lock()
        self.prompt_tokens = 0
        self.generation_tokens = 0
        self.success = {reason: 0 for reason in profile.finish_reasons}
        self.ttft_counts = [0] * (len(TTFT_BUCKETS) + 1)
        self.ttft_sum = 0.0

    def first_token(self, seconds):
        with self._lock:
            index = next((i for i, bound in enumerate(TTFT_BUCKETS) if seconds <= bound), len(TTFT_BUCKETS))
            self.ttft_counts[index] += 1
            self.ttft_sum += seconds

    def finished(self, prompt_tokens, generated, reason):
        with self._lock:
            self.prompt_tokens += prompt_tokens
            self.generation_tokens += generated
            if reason in self.success:
                self.success[reason] += 1

    def render(self, running, waiting, kv_usage, sleep_level=None, show_hidden=False):
        """The text of /metrics. `sleep_level`: None awake, 0/1/2 asleep at that level."""
        base = {"engine": "0", "model_name": self.model_name}
        out = []

        def family(name, kind, samples, help_text=None):
            out.append("# HELP %s %s" % (name, help_text or _HELP.get(name, name)))
            out.append("# TYPE %s %s" % (name, kind))
            out.extend("%s%s %s" % (sample, _labels(**labels), go_float(value)) for sample, labels, value in samples)

        def counter(name, samples):
            family(name + "_total", "counter", [(name + "_total", labels, value) for labels, value in samples],
                   _HELP[name])
            family(name + "_created", "gauge", [(name + "_created", labels, self.created) for labels, _value in samples],
                   _HELP[name])

        with self._lock:
            family("vllm:num_requests_running", "gauge", [("vllm:num_requests_running", base, running)])
            family("vllm:num_requests_waiting", "gauge", [("vllm:num_requests_waiting", base, waiting)])
            gauges = list(self.profile.kv_usage_gauges)
            if show_hidden and self.profile.hidden_gpu_cache_gauge:
                gauges.insert(0, "vllm:gpu_cache_usage_perc")
            for name in gauges:
                help_text = _DEPRECATED_GPU_CACHE if name == "vllm:gpu_cache_usage_perc" and \
                    self.profile.at_least("0.9.2") else None
                family(name, "gauge", [(name, base, kv_usage)], help_text)
            if self.profile.sleep_state_gauge:
                states = {"awake": 1 if sleep_level is None else 0, "weights_offloaded": int(sleep_level == 1),
                          "discard_all": int(sleep_level == 2)}
                family("vllm:engine_sleep_state", "gauge",
                       [("vllm:engine_sleep_state", dict(base, sleep_state=s), v) for s, v in states.items()])
            counter("vllm:prompt_tokens", [(base, self.prompt_tokens)])
            counter("vllm:generation_tokens", [(base, self.generation_tokens)])
            counter("vllm:request_success", [(dict(base, finished_reason=r), n) for r, n in self.success.items()])
            name = "vllm:time_to_first_token_seconds"
            cumulative, samples = 0, []
            for bound, count in zip(TTFT_BUCKETS + (float("inf"),), self.ttft_counts):
                cumulative += count
                samples.append((name + "_bucket", dict(base, le=go_float(bound)), cumulative))
            samples.append((name + "_count", base, cumulative))
            samples.append((name + "_sum", base, self.ttft_sum))
            family(name, "histogram", samples)
            family(name + "_created", "gauge", [(name + "_created", base, self.created)], _HELP[name])
        return "\n".join(out) + "\n"
