"""A fake vLLM OpenAI-compatible server: real HTTP on loopback, no GPU, no model, behaving like the vLLM
release its image tag names (``version=``, ``--fake-version``; default: the newest release in versions.py).

HTTP (endpoints.py, http.py, sleep.py):

* ``GET /health``: ``health_mode="vllm"`` answers 200 with an EMPTY body when up; when the engine is dead
  503 (an empty 500 before 0.11). HEAD /health is 405, as for every FastAPI GET route. ``health_mode="json"``
  mimics a FastAPI TTS service: ``{"status": "healthy", "ready": true}`` with 200 when up,
  ``{"status": "initializing", "ready": false}`` while loading (503, or 200 with ``json_loading_status=200``)
  and ``{"status": "unhealthy", "ready": false}`` when broken; combine it with ``listen_during_load=True``.
* ``GET /v1/models``: the OpenAI list, one entry per ``--served-model-name`` (else the model).
* ``POST /v1/chat/completions`` and ``/v1/completions``: small deterministic answers in OpenAI format,
  streaming (SSE ``data:`` lines and ``data: [DONE]``) when ``stream`` is true; an unknown model name gets
  vLLM's 404 ``NotFoundError``; a prompt plus ``max_tokens`` beyond ``max_model_len`` gets vLLM's 400. Error
  bodies have the release's shape: flat ``{"object": "error", ...}`` before 0.10.1, ``{"error": {...}}`` after.
  Each request takes ``token_delay`` per generated token and runs only when fewer than ``max_num_seqs``
  requests run (the rest wait).
* ``--api-key`` / ``VLLM_API_KEY``: paths under /v1 (from 0.22 also /v2, /inference; 0.27 /cohere) need
  ``Authorization: Bearer <key>``, else 401 ``{"error": "Unauthorized"}``; /health, /metrics, /version and
  the dev endpoints stay open.
* ``GET /metrics``: vLLM's Prometheus series (metrics.py): ``vllm:num_requests_running`` (requests from
  admission to their last byte), ``vllm:num_requests_waiting``, the KV-cache gauge of the release, token
  and success counters, the time-to-first-token histogram, ``vllm:engine_sleep_state`` (0.12+).
* Sleep mode (sleep.py), only with ``VLLM_SERVER_DEV_MODE=1`` in ``env``: ``/sleep``, ``/wake_up``,
  ``/is_sleeping``, ``/collective_rpc`` (0.10.2+), ``/reset_prefix_cache``; memory is freed only with
  ``--enable-sleep-mode``.
* ``GET /version``, ``GET|POST /ping``.

Start-up (server.py, gpu.py): the HTTP server listens only once the engine has loaded (the port is bound
at ``start()`` but refuses connections until then); ``listen_during_load=True`` answers 503 while loading.
With ``gpu=`` (a tests.harness.gpu_ledger.GpuClaim) the server creates its CUDA context, checks the dtype
and free memory, loads the weights and sizes the KV cache as the release does, failing with vLLM's own
messages (exit 1); ``crash_during_load`` stops after half of ``load_seconds`` with vLLM's error lines,
``hang`` never becomes healthy, ``fail_health_after`` kills the engine that long after it became ready.
``stop(grace)`` is SIGTERM: exit 0 after ``shutdown_seconds``, or 137 when ``grace`` runs out first.

Run as a process: ``python -m tests.harness.fake_vllm serve MODEL --port 8000 [vLLM args]
[--load-seconds S] [--token-delay S] [--shutdown-seconds S] [--sleep-seconds S] [--wake-seconds S]
[--crash-during-load] [--hang] [--health-mode json] [--listen-during-load] [--response-delay S]
[--fail-health-after S] [--fail-wake] [--fake-version V]``.
"""

from tests.harness.fake_vllm.args import parse_max_model_len, parse_vllm_args
from tests.harness.fake_vllm.cli import main
from tests.harness.fake_vllm.models import MODEL_FACTS, ModelFacts, facts_for
from tests.harness.fake_vllm.server import DEFAULT_CRASH_MESSAGE, FakeVLLMServer
from tests.harness.fake_vllm.versions import NEWEST, OLDEST, profile, version_from_image

__all__ = ["FakeVLLMServer", "parse_vllm_args", "parse_max_model_len", "main", "DEFAULT_CRASH_MESSAGE", "profile",
           "version_from_image", "NEWEST", "OLDEST", "ModelFacts", "MODEL_FACTS", "facts_for"]
