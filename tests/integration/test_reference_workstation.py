"""Reference deployment "workstation speech recognition" (a README for running Qwen3-ASR with the vLLM
backend inside a local speech service): inventories/examples/workstation-asr-fallback rendered through the
vllm role as ``ansible-playbook`` renders it, compared with the README. Each assertion cites the part of
the README it comes from."""

import json

import pytest

from ansible_collections.baremetal.gpu.plugins.module_utils import compat
from tests.harness.role_render import flag_values, main_container, render, schema_errors


@pytest.fixture(scope="module")
def rendered():
    return render("workstation-asr-fallback")


@pytest.fixture(scope="module")
def deployments(rendered):
    return rendered.by_kind("Deployment")


def test_every_object_validates(rendered):
    assert schema_errors(rendered.manifests) == []


def test_the_image_carries_the_package_the_readme_installs(deployments):
    asr = main_container(deployments["vllm-asr"])
    # conda/uv route, step 2: pip install -e . brings qwen-asr and the vLLM it pins; the image built from
    # that package and its qwen-asr-serve (vllm serve with the Qwen3-ASR architecture registered)
    assert asr["image"] == "qwenllm/qwen3-asr:latest"
    assert asr["command"] == ["qwen-asr-serve", "Qwen/Qwen3-ASR-1.7B"]


def test_the_readmes_asr_config(deployments):
    asr = main_container(deployments["vllm-asr"])
    flags = flag_values(asr["args"])
    # step 3, ASR.config: model_path Qwen/Qwen3-ASR-1.7B, gpu_memory_utilization 0.7
    assert asr["command"][1] == "Qwen/Qwen3-ASR-1.7B"
    assert flags["--gpu-memory-utilization"] == "0.7"
    # max_inference_batch_size 128: requests decoded together
    assert flags["--max-num-seqs"] == "128"
    # max_new_tokens 4096: the longest answer, vLLM's server-wide max_tokens
    assert json.loads(flags["--override-generation-config"]) == {"max_new_tokens": 4096}
    # host 0.0.0.0, port 11001
    assert flags["--host"] == "0.0.0.0" and flags["--port"] == "11001"
    # forced_aligner: null: nothing of an aligner is started
    assert not any("aligner" in arg.lower() for arg in asr["args"] + asr["command"])


def test_out_of_memory_falls_back_to_the_smaller_model_behind_the_same_service(rendered, deployments):
    # common problems, 2 (OOM): switch to the 0.6B model (model_path Qwen/Qwen3-ASR-0.6B)
    small = main_container(deployments["vllm-asr-small"])
    assert small["command"] == ["qwen-asr-serve", "Qwen/Qwen3-ASR-0.6B"]
    assert deployments["vllm-asr"]["metadata"]["annotations"]["baremetal.gpu/fallback"] == "vllm-asr-small"
    # two GPU modes of the workstation: asr (default) and asr-small; `gpu-mode asr-small` switches
    book = json.loads(rendered.by_kind("ConfigMap")["gpu-mode-workstation"]["data"]["modes.json"])
    assert book["default"] == "asr"
    assert {m: spec["workloads"] for m, spec in book["modes"].items()} == {
        "asr": {"vllm-asr": 1}, "asr-small": {"vllm-asr-small": 1}, "off": {}}
    (service,) = rendered.by_kind("Service").values()
    assert service["metadata"]["name"] == "asr" and service["spec"]["ports"][0]["port"] == 11001
    # clients keep one alias across the fallback
    for deployment in deployments.values():
        args = main_container(deployment)["args"]
        assert "asr" in args[args.index("--served-model-name") + 1:args.index("--host")]


def test_a_stock_vllm_image_would_not_load_the_model(rendered):
    # the vLLM the README's package pins (0.14.0) knows Qwen3-ASR only through that package: a stock
    # vllm/vllm-openai image of that release (or the role's default) is warned about, naming the release
    # that added the architecture
    asr = [w for w in rendered.plan["workloads"] if w["name"] == "asr"][0]
    node = {"driver_version": "570.195.03", "gpus": [{"name": "NVIDIA GeForce RTX 4090"}]}
    for image in ("vllm/vllm-openai:v0.14.0", "vllm/vllm-openai:v0.8.5.post1"):
        (reason,) = [r for r in compat.check(image, node, asr["compat"])["reasons"] if r["code"] == "vllm_too_old"]
        assert reason["severity"] == "warn" and reason["fix"] == "use vllm/vllm-openai:v0.16.0 or newer"
    codes = [r["code"] for r in compat.check(asr["image"], node, asr["compat"])["reasons"]]
    assert "vllm_too_old" not in codes  # the image that carries qwen-asr is not a stock vLLM release
