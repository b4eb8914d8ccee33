"""Reference deployment "datacenter text to speech" (a repair plan for a Qwen3-TTS service of the same Helm
chart, which failed with "model type qwen3_tts ... Transformers does not recognize this architecture"):
the tts entry of inventories/examples/datacenter-speech rendered through the vllm role as
``ansible-playbook`` renders it, compared with the plan's values. Each assertion cites the part of the
plan it comes from."""

import pytest

from ansible_collections.baremetal.gpu.plugins.module_utils import compat
from tests.harness.role_render import flag_values, main_container, pod_spec, render, schema_errors


@pytest.fixture(scope="module")
def rendered():
    return render("datacenter-speech")


@pytest.fixture(scope="module")
def tts(rendered):
    return rendered.by_kind("Deployment")["local-llm-tts"]


def test_every_object_validates(rendered):
    assert schema_errors(rendered.manifests) == []


def test_the_stable_image_always_pulled(tts):
    main = main_container(tts)
    # Task 1: repository vllm/vllm-openai (not the vllm-omni pre-release), tag v0.14.0, pullPolicy Always
    assert main["image"] == "vllm/vllm-openai:v0.14.0"
    assert main["imagePullPolicy"] == "Always"
    # deploy commands: kubectl logs -f deployment/local-llm-tts (release local-llm, service tts)
    assert tts["metadata"]["name"] == "local-llm-tts"


def test_the_bootstrap_runs_before_vllm_serve_in_the_plans_order(tts):
    main = main_container(tts)
    shell, flag, script = main["command"][:3]
    assert (shell, flag) == ("/bin/bash", "-c")
    lines = [line for line in script.splitlines() if line.strip()]
    # Task 1, bootstrap: clone vllm-omni (depth 1), install it from source (--no-deps, else with its
    # dependencies), install qwen-tts, install flash-attn without build isolation, in this order
    assert lines == [
        'echo "Cloning vllm-omni repository..."',
        "git clone --depth 1 https://github.com/vllm-project/vllm-omni.git /tmp/vllm-omni",
        'echo "Installing vllm-omni from source..."',
        "pip install -e /tmp/vllm-omni --no-deps 2>/dev/null || pip install -e /tmp/vllm-omni",
        'echo "Installing qwen-tts..."',
        "pip install qwen-tts",
        'echo "Installing flash-attn..."',
        "pip install -U flash-attn --no-build-isolation",
        'echo "Bootstrap complete!"',
        'exec vllm serve "$@"',
    ]
    # expected start-up log: vllm serve /models/Qwen3-TTS-12Hz-1.7B-CustomVoice ... after the bootstrap
    assert main["command"][3:] == ["bootstrap", "/models/Qwen3-TTS-12Hz-1.7B-CustomVoice"]
    # the plan never pins or upgrades transformers at start (the unpinned upgrade to 5.0 was the root cause)
    assert "transformers" not in script


def test_the_engine_arguments_and_resources(tts):
    main = main_container(tts)
    flags = flag_values(main["args"])
    # values: model name Qwen/Qwen3-TTS-12Hz-1.7B-CustomVoice (served), path /models/... (the command's)
    assert main["args"][main["args"].index("--served-model-name") + 1] == "Qwen/Qwen3-TTS-12Hz-1.7B-CustomVoice"
    assert "--model" not in flags
    # extraArgs: --tensor-parallel-size 1 --gpu-memory-utilization 0.85 --max-model-len 4096
    # --max-num-seqs 128 --trust-remote-code --dtype float16
    assert flags["--tensor-parallel-size"] == "1"
    assert flags["--gpu-memory-utilization"] == "0.85"
    assert flags["--max-model-len"] == "4096"
    assert flags["--max-num-seqs"] == "128"
    assert flags["--trust-remote-code"] is True
    assert flags["--dtype"] == "float16"
    # definition of done: the service answers on port 8006; replicaCount 1; nvidia.com/gpu: 1
    assert flags["--port"] == "8006"
    assert tts["spec"]["replicas"] == 1
    assert main["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert main["name"] == "vllm-api"


def test_placement_service_and_start_up_time(rendered, tts):
    # affinity: memorysize In [16GB]
    terms = pod_spec(tts)["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert terms == {"nodeSelectorTerms": [{"matchExpressions": [
        {"key": "memorysize", "operator": "In", "values": ["16GB"]}]}]}
    service = rendered.by_kind("Service")["local-llm-tts"]
    # service.port 8006; the chart's selector app: custom-chart, service: tts
    assert service["spec"]["ports"][0]["port"] == 8006
    assert service["spec"]["selector"] == {"app": "custom-chart", "service": "tts"}
    # the repair plan adds no ingress for tts
    assert "local-llm-tts" not in rendered.by_kind("Ingress")
    # start-up time 2-5 min (clone plus pip installs plus load): the startup probe allows at least 5 min
    startup = main_container(tts)["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 5 * 60
    # verification: curl http://<pod-ip>:8006/health once loaded
    assert startup["httpGet"] == {"path": "/health", "port": "http"}


def test_the_preflight_names_the_package_the_image_lacks(rendered):
    # root cause 3 and the fix: vllm-omni is needed for qwen3_tts and vllm/vllm-openai does not contain it
    tts = [w for w in rendered.plan["workloads"] if w["name"] == "tts"][0]
    node = {"driver_version": "580.95.05", "gpus": [{"name": "NVIDIA L4"}]}
    reasons = {r["code"]: r for r in compat.check(tts["image"], node, tts["compat"])["reasons"]}
    assert reasons["package_missing"]["severity"] == "warn"
    assert reasons["package_missing"]["message"] == (
        "Qwen/Qwen3-TTS-12Hz-1.7B-CustomVoice needs vllm-omni, which docker.io/vllm/vllm-openai:v0.14.0 does not "
        "contain")
