"""vllm_compat's rules on the reference deployments (docs/reference-deployments.md) and the failure modes they hit.

Expected values are written out; where one comes from a published fact (a driver version from NVIDIA's
release notes, the CUDA of a vLLM tag) the comment says which (docs/hardware-facts.md lists them)."""

import copy
import pathlib

import pytest

from ansible_collections.baremetal.gpu.plugins.module_utils import compat
from ansible_collections.baremetal.gpu.plugins.module_utils import compat_data as data
from ansible_collections.baremetal.gpu.plugins.module_utils import gpu

FIXTURES = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "gpu"


def facts_of(fixture):
    """Node facts exactly as gpu_facts returns them for a capture."""
    path = FIXTURES / fixture
    return gpu.parse_nvidia_smi_xml((path / "nvidia-smi-q.xml").read_text(),
                                    gpu.parse_compute_cap_csv((path / "compute-cap.csv").read_text()))


HOMELAB = {"driver_version": "570.195.03",
           "gpus": [{"name": "NVIDIA GeForce RTX 3060", "compute_capability": "8.6", "memory_total_mib": 12288}]}
QWEN_AWQ = {"name": "Qwen/Qwen3-8B-AWQ", "dtype": "auto", "quantization": "awq_marlin", "max_model_len": 8192,
            "tensor_parallel_size": 1, "gpu_memory_utilization": 0.90, "enforce_eager": True}


def codes(result, severity=None):
    return [r["code"] for r in result["reasons"] if severity is None or r["severity"] == severity]


def only(result, code):
    (found,) = [r for r in result["reasons"] if r["code"] == code]
    return found


# --- the home lab: one RTX 3060 --------------------------------------------------------------------------

def test_homelab_ml_mode_on_v0_8_5_post1_fits():
    result = compat.check("vllm/vllm-openai:v0.8.5.post1", HOMELAB, QWEN_AWQ)
    assert result["verdict"] == "ok" and result["compatible"] is True
    assert result["image_cuda"] == "12.4.1" and result["driver_cuda"] == "12.8"
    mem = result["memory"]
    # the home lab measured 10,820 of 12,288 MiB in use at 0.90: the budget must cover that
    assert mem["budget_mib"] >= 10820
    assert mem["weights_mib"] + mem["overhead_mib"] + mem["kv_cache_mib"] == pytest.approx(mem["budget_mib"], abs=2)
    assert mem["kv_capacity_tokens"] >= 8192


def test_homelab_v0_15_1_fails_with_the_error_users_saw():
    result = compat.check("vllm/vllm-openai:v0.15.1", HOMELAB, QWEN_AWQ)
    assert result["verdict"] == "fail" and result["compatible"] is False
    assert result["image_cuda"] == "12.9.1" and result["driver_cuda"] == "12.8"
    reason = only(result, "forward_compat_unsupported")
    assert "forward compatibility was attempted on non supported HW" in reason["message"]
    assert "NVIDIA GeForce RTX 3060" in reason["message"]
    # the fix names the newest release built on CUDA 12.8 (v0.11.0), and the first driver of CUDA 12.9.1
    # (575.57.08, NVIDIA's CUDA 12.9 Update 1 release notes)
    assert reason["fix"] == ("use image vllm/vllm-openai:v0.11.0 (CUDA 12.8.1) or install NVIDIA driver "
                             ">= 575.57.08 (branch R575 or newer)")


def test_homelab_v0_12_0_fails_and_carries_the_field_report():
    reason = only(compat.check("vllm/vllm-openai:v0.12.0", HOMELAB, QWEN_AWQ), "forward_compat_unsupported")
    assert "Engine core initialization failed" in reason["message"]


def test_qwen3_needs_vllm_0_8_4():
    result = compat.check("vllm/vllm-openai:v0.8.3", HOMELAB, QWEN_AWQ)
    reason = only(result, "vllm_too_old")
    assert reason["severity"] == "fail" and reason["fix"] == "use vllm/vllm-openai:v0.8.4 or newer"


def test_homelab_r1_mode_fits_too():
    model = dict(QWEN_AWQ, name="casperhansen/deepseek-r1-distill-qwen-7b-awq")
    assert compat.check("vllm/vllm-openai:v0.8.5.post1", HOMELAB, model)["verdict"] == "ok"


def test_facts_of_the_real_capture_feed_the_check_directly():
    h100 = facts_of("h100-80gb-driver-580.159.04")
    result = compat.check("vllm/vllm-openai:v0.33.0", h100, {"name": "meta-llama/Llama-3.1-8B-Instruct"})
    assert result["driver_cuda"] == "13.0" and result["verdict"] == "ok", result["reasons"]
    # 81,559 MiB at 0.9 holds the whole 131,072-token context of Llama-3.1-8B
    assert result["memory"]["kv_capacity_tokens"] >= 131072


# --- speech services sharing a GPU ----------------------------------------------------------------

def test_asr_over_two_16gb_gpus_with_tensor_parallelism():
    # driver 575 (CUDA 12.9) runs v0.16.0, the first release that serves Qwen3-ASR natively
    node = {"driver_version": "575.57.08", "gpus": [{"name": "NVIDIA A16"}, {"name": "NVIDIA A16"}]}
    model = {"name": "Qwen/Qwen3-ASR-1.7B", "tensor_parallel_size": 2, "gpu_memory_utilization": 0.9,
             "max_model_len": 4096, "dtype": "bfloat16"}
    assert codes(compat.check("vllm/vllm-openai:v0.16.0", node, model), "warn") == []
    one = {"driver_version": "575.57.08", "gpus": [{"name": "NVIDIA A16"}]}
    reason = only(compat.check("vllm/vllm-openai:v0.16.0", one, model), "gpu_count_insufficient")
    assert "tensor_parallel_size 2" in reason["message"] and reason["fix"].startswith("tensor_parallel_size: 1")


def test_t4_pair_with_float16_and_the_tts_sharing_the_card():
    node = facts_of("t4-16gb-driver-535.247.01")
    node["gpus"][0]["memory_used_mib"] = 0  # before deploying
    asr = {"name": "Qwen/Qwen3-ASR-1.7B", "gpu_memory_utilization": 0.45, "max_model_len": 4096, "dtype": "float16"}
    result = compat.check("vllm/vllm-openai:v0.8.5.post1", node, asr, colocated=[{"name": "tts", "memory_mib": 3994}])
    # fits next to the TTS; the driver (535, CUDA 12.2) is older than the image's CUDA 12.4, which the
    # forward-compatibility package covers on this datacenter card: a warning, not a failure (and
    # vLLM 0.8.5 predates native Qwen3-ASR support: the T4 pair runs it with qwen-asr's plugin)
    assert result["verdict"] == "warn"
    assert codes(result, "warn") == ["driver_too_old", "vllm_too_old"]
    assert "R535" in only(result, "driver_too_old")["message"]
    assert "compute_capability_too_low" in codes(result, "info")  # no FlashAttention-2 on a T4, said but not failed
    node["driver_version"], node["cuda_driver_version"] = "550.163.01", "12.4"
    assert codes(compat.check("vllm/vllm-openai:v0.8.5.post1", node, asr,
                              colocated=[{"name": "tts", "memory_mib": 3994}]), "warn") == ["vllm_too_old"]


def test_bf16_on_a_t4_fails_with_vllms_message_and_float16_as_fix():
    node = {"driver_version": "535.247.01", "gpus": [{"name": "Tesla T4"}]}
    asr = {"name": "Qwen/Qwen3-ASR-1.7B", "gpu_memory_utilization": 0.45, "max_model_len": 4096, "dtype": "bfloat16"}
    reason = only(compat.check("vllm/vllm-openai:v0.5.5", node, asr), "dtype_unsupported")
    assert reason["severity"] == "fail"
    assert "Your Tesla T4 GPU has compute capability 7.5" in reason["message"]
    assert reason["fix"] == "dtype: float16"
    auto = only(compat.check("vllm/vllm-openai:v0.5.5", node, dict(asr, dtype="auto")), "dtype_unsupported")
    assert auto["severity"] == "warn" and auto["fix"] == "dtype: float16"


def test_kv_cache_too_small_names_a_max_model_len_that_fits():
    node = {"driver_version": "535.247.01", "gpus": [{"name": "Tesla T4"}]}
    model = {"name": "Qwen/Qwen3-ASR-1.7B", "gpu_memory_utilization": 0.45, "max_model_len": 32768, "dtype": "float16"}
    result = compat.check("vllm/vllm-openai:v0.5.5", node, model)
    reason = only(result, "kv_cache_insufficient")
    capacity = result["memory"]["kv_capacity_tokens"]
    assert "larger than the maximum number of tokens that can be stored in KV cache (%d)" % capacity in reason["message"]
    fixed_len = int(reason["fix"].split("max_model_len: ")[1].split()[0])
    assert 0 < fixed_len <= capacity
    assert compat.check("vllm/vllm-openai:v0.5.5", node, dict(model, max_model_len=fixed_len))["verdict"] != "fail"


def test_two_services_oversubscribing_one_gpu():
    node = {"driver_version": "570.195.03", "gpus": [{"name": "NVIDIA GeForce RTX 3060"}]}
    model = dict(QWEN_AWQ, gpu_memory_utilization=0.6)
    result = compat.check("vllm/vllm-openai:v0.8.5.post1", node, model,
                          colocated=[{"name": "tts", "gpu_memory_utilization": 0.45}])
    reason = only(result, "gpu_memory_oversubscribed")
    assert "tts" in reason["message"] and reason["fix"].startswith("gpu_memory_utilization: 0.55")
    # memory already held on the GPU counts the same way
    busy = copy.deepcopy(node)
    busy["gpus"][0]["memory_used_mib"] = 6000
    assert "gpu_memory_oversubscribed" in codes(compat.check("vllm/vllm-openai:v0.8.5.post1", busy, model))


def test_default_context_of_llama_3_1_8b_does_not_fit_a_24gb_card():
    node = {"driver_version": "580.82.07", "gpus": [{"name": "NVIDIA GeForce RTX 3090"}]}
    result = compat.check("vllm/vllm-openai:v0.20.0", node, {"name": "meta-llama/Llama-3.1-8B-Instruct"})
    reason = only(result, "kv_cache_insufficient")
    assert "max seq len (131072)" in reason["message"]
    # vllm-project/vllm#10517 reports about 23-31k tokens fit at 0.9
    assert 23000 <= result["memory"]["kv_capacity_tokens"] <= 31500


def test_weights_that_do_not_fit_get_a_fallback_model_that_does():
    node = {"driver_version": "570.195.03", "gpus": [{"name": "NVIDIA GeForce RTX 3060"}]}
    result = compat.check("vllm/vllm-openai:v0.9.2", node, {"name": "Qwen/Qwen3-14B", "max_model_len": 8192})
    reason = only(result, "vram_insufficient")
    fallback = reason["fix"].split("model: ")[1].split(" with")[0]
    assert compat.check("vllm/vllm-openai:v0.9.2", node, {"name": fallback, "max_model_len": 8192})["verdict"] == "ok"


# --- CUDA and drivers ------------------------------------------------------------------------------

def test_datacenter_gpus_get_forward_compatibility_on_listed_branches_only():
    h100 = {"driver_version": "535.247.01", "gpus": [{"name": "NVIDIA H100 80GB HBM3"}]}
    model = {"name": "Qwen/Qwen3-8B", "max_model_len": 8192}
    covered = only(compat.check("vllm/vllm-openai:v0.15.1", h100, model), "driver_too_old")
    assert covered["severity"] == "warn" and "R535" in covered["message"]
    h100["driver_version"] = "545.29.06"  # a short-lived branch the compat package does not support
    uncovered = only(compat.check("vllm/vllm-openai:v0.15.1", h100, model), "driver_too_old")
    assert uncovered["severity"] == "fail" and "does not cover driver branch R545" in uncovered["message"]


def test_opt_in_compat_images_name_the_switch_on_datacenter_gpus():
    h100 = {"driver_version": "570.195.03", "gpus": [{"name": "NVIDIA H100 80GB HBM3"}]}
    reason = only(compat.check("vllm/vllm-openai:v0.20.0", h100, {"name": "Qwen/Qwen3-8B"}), "driver_too_old")
    assert reason["severity"] == "warn" and "VLLM_ENABLE_CUDA_COMPATIBILITY=1" in reason["fix"]


def test_opt_in_compat_images_still_fail_on_consumer_cards():
    reason = only(compat.check("vllm/vllm-openai:v0.16.0", HOMELAB, QWEN_AWQ), "forward_compat_unsupported")
    assert "unsatisfied condition: cuda>=12.9" in reason["message"]


def test_no_driver_and_no_gpu():
    result = compat.check("vllm/vllm-openai:v0.9.2", {"driver_installed": False, "gpus": [],
                                                      "reason": "nvidia-smi not found"}, QWEN_AWQ)
    reason = only(result, "driver_too_old")
    assert reason["severity"] == "fail" and "nvidia-smi not found" in reason["message"]
    # CUDA 12.8 Update 1 needs driver 570.124.06 (NVIDIA's release notes)
    assert reason["fix"] == "install an NVIDIA driver >= 570.124.06 (branch R570 or newer) and reboot"
    empty = compat.check("vllm/vllm-openai:v0.9.2", {"driver_version": "570.195.03", "gpus": []}, QWEN_AWQ)
    assert "gpu_count_insufficient" in codes(empty, "fail")


def test_driver_cuda_is_derived_like_the_driver_reports_it():
    # the captures carry the driver's own answer; the release-notes table must agree with it
    for fixture in ("h100-80gb-driver-580.159.04", "rtx3060-12gb-driver-570.195.03", "t4-16gb-driver-535.247.01"):
        facts = facts_of(fixture)
        assert compat.driver_cuda_from_version(facts["driver_version"]) == facts["cuda_driver_version"]


@pytest.mark.parametrize("tag, cuda", [
    ("v0.5.5", "12.4.1"), ("v0.8.5.post1", "12.4.1"), ("v0.9.0", "12.8.1"), ("v0.11.0", "12.8.1"),
    ("v0.11.1", "12.9.1"), ("v0.15.1", "12.9.1"), ("v0.20.0", "13.0.2"), ("v0.21.0-cu129", "12.9.1"),
    ("v0.29.0-cu129-ubuntu2404", "12.9.1"), ("v0.33.0", "13.0.2"),
])
def test_image_cuda_per_tag(tag, cuda):
    info = compat.image_info_from_data("vllm/vllm-openai:" + tag)
    assert info["cuda"] == cuda and info["known"] is True


def test_newest_tag_per_driver_cuda():
    assert compat.newest_tag_for("12.8") == ("v0.11.0", "12.8.1")
    assert compat.newest_tag_for("12.9") == ("v%s-cu129" % data.VLLM_RELEASES[-1], "12.9.1")
    assert compat.newest_tag_for("13.0")[0] == "v%s" % data.VLLM_RELEASES[-1]
    assert compat.newest_tag_for("12.2") is None


def test_cuda_13_dropped_volta():
    v100 = {"driver_version": "580.82.07", "gpus": [{"name": "Tesla V100-SXM2-32GB"}]}
    model = {"name": "Qwen/Qwen3-8B", "dtype": "float16", "max_model_len": 8192}
    reason = only(compat.check("vllm/vllm-openai:v0.20.0", v100, model), "compute_capability_too_low")
    assert reason["severity"] == "fail" and "-cu129" in reason["fix"]
    p40 = {"driver_version": "570.195.03", "gpus": [{"name": "Tesla P40"}]}
    assert "compute_capability_too_low" in codes(
        compat.check("vllm/vllm-openai:v0.9.2", p40, {"name": "Qwen/Qwen3-0.6B", "dtype": "float16"}), "fail")


# --- kernels ---------------------------------------------------------------------------------------

def node_with(name):
    return {"driver_version": "580.82.07", "gpus": [{"name": name}]}


def test_fp8_full_on_ada_weight_only_on_ampere_none_on_turing():
    model = {"name": "Qwen/Qwen3-8B-FP8", "max_model_len": 4096}
    assert "quantization_unsupported" not in codes(compat.check("vllm/vllm-openai:v0.33.0", node_with("NVIDIA L4"), model))
    ampere = only(compat.check("vllm/vllm-openai:v0.33.0", node_with("NVIDIA A10"), model), "quantization_unsupported")
    assert ampere["severity"] == "warn" and "Marlin" in ampere["message"]
    turing = only(compat.check("vllm/vllm-openai:v0.33.0", node_with("Tesla T4"), model), "quantization_unsupported")
    assert turing["severity"] == "fail"


def test_marlin_needs_ampere_and_falls_back_to_plain_awq():
    reason = only(compat.check("vllm/vllm-openai:v0.9.2", node_with("Tesla T4"), QWEN_AWQ), "quantization_unsupported")
    assert "Minimum capability: 80. Current capability: 75" in reason["message"] and reason["fix"] == "quantization: awq"
    plain = dict(QWEN_AWQ, quantization="awq", dtype="float16")
    assert "quantization_unsupported" not in codes(compat.check("vllm/vllm-openai:v0.9.2", node_with("Tesla T4"), plain))


def test_awq_needs_turing():
    v100 = {"driver_version": "570.195.03", "gpus": [{"name": "Tesla V100-SXM2-32GB"}]}
    model = dict(QWEN_AWQ, quantization="awq", dtype="float16")
    assert "quantization_unsupported" in codes(compat.check("vllm/vllm-openai:v0.9.2", v100, model), "fail")


def test_requested_method_must_match_the_checkpoint():
    reason = only(compat.check("vllm/vllm-openai:v0.9.2", HOMELAB, dict(QWEN_AWQ, quantization="gptq")),
                  "quantization_unsupported")
    assert "model config (awq)" in reason["message"] and reason["fix"] == "quantization: awq"


# --- unknowns --------------------------------------------------------------------------------------

def test_unknown_image_offline_is_a_warning_and_skips_the_driver_check():
    result = compat.check("qwenllm/qwen3-asr:latest", HOMELAB, QWEN_AWQ)
    assert result["verdict"] == "warn" and codes(result) == ["unknown_image"]
    digest = "vllm/vllm-openai@sha256:" + "a" * 64
    assert "unknown_image" in codes(compat.check(digest, HOMELAB, QWEN_AWQ), "warn")


def test_inferred_cuda_is_said_but_does_not_warn():
    result = compat.check("vllm/vllm-openai:v0.17.0", {"driver_version": "580.82.07", "gpus": [{"name": "NVIDIA L4"}]},
                          {"name": "Qwen/Qwen3-8B", "max_model_len": 8192})
    assert result["verdict"] == "ok" and "unknown_image" in codes(result, "info")


def test_unknown_model_without_metadata_warns_and_with_metadata_is_checked():
    result = compat.check("vllm/vllm-openai:v0.9.2", HOMELAB, {"name": "acme/secret-7b"})
    assert only(result, "unknown_model")["severity"] == "warn" and result["memory"]["weights_mib"] is None
    described = {"name": "acme/secret-7b", "params_b": 7, "num_layers": 32, "num_kv_heads": 8, "head_dim": 128,
                 "max_model_len": 4096, "dtype": "float16"}
    result = compat.check("vllm/vllm-openai:v0.9.2", HOMELAB, described)
    assert only(result, "unknown_model")["severity"] == "info"
    assert "vram_insufficient" in codes(result)  # 7B in fp16 is 13 GiB: not on 12 GiB


def test_tts_model_needs_vllm_omni():
    model = {"name": "Qwen/Qwen3-TTS-12Hz-1.7B-CustomVoice", "dtype": "float16", "max_model_len": 4096}
    reason = only(compat.check("vllm/vllm-openai:v0.14.0", node_with("NVIDIA L4"), model), "package_missing")
    assert "vllm-omni" in reason["message"]


# --- bad input -------------------------------------------------------------------------------------

@pytest.mark.parametrize("image, node, model, colocated, field", [
    ("vllm/vllm-openai:v0.9.2", {"driver_version": "570.195.03", "gpus": [{"name": "Acme X1"}]}, QWEN_AWQ, None,
     "node.gpus[0]"),
    ("vllm/vllm-openai:v0.9.2", {"driver_version": "570.195.03", "gpus": [{"name": "Acme X1",
                                                                          "compute_capability": "9.0"}]},
     QWEN_AWQ, None, "memory_total_mib"),
    ("vllm/vllm-openai:v0.9.2", {"driver_version": "five-seventy", "gpus": []}, QWEN_AWQ, None, "node.driver_version"),
    ("Vllm/VLLM:bad tag", HOMELAB, QWEN_AWQ, None, "image"),
    ("vllm/vllm-openai:v0.9.2", HOMELAB, dict(QWEN_AWQ, gpu_memory_utilization=1.5), None, "model.gpu_memory_utilization"),
    ("vllm/vllm-openai:v0.9.2", HOMELAB, dict(QWEN_AWQ, gpu_memory_utilization=0), None, "model.gpu_memory_utilization"),
    ("vllm/vllm-openai:v0.9.2", HOMELAB, dict(QWEN_AWQ, max_model_len=-8192), None, "model.max_model_len"),
    ("vllm/vllm-openai:v0.9.2", HOMELAB, dict(QWEN_AWQ, tensor_parallel_size=0), None, "model.tensor_parallel_size"),
    ("vllm/vllm-openai:v0.9.2", HOMELAB, dict(QWEN_AWQ, dtype="int4"), None, "model.dtype"),
    ("vllm/vllm-openai:v0.9.2", HOMELAB, {"dtype": "auto"}, None, "model.name"),
    ("vllm/vllm-openai:v0.9.2", HOMELAB, QWEN_AWQ, [{"name": "tts", "gpu_memory_utilization": 2}],
     "colocated[0].gpu_memory_utilization"),
    ("vllm/vllm-openai:v0.9.2", HOMELAB, QWEN_AWQ, [{"name": "tts"}], "colocated[0]"),
])
def test_bad_input_names_the_field(image, node, model, colocated, field):
    with pytest.raises(ValueError) as err:
        compat.check(image, node, model, colocated=colocated)
    assert field in str(err.value)


def test_reason_codes_are_the_documented_ones():
    with pytest.raises(ValueError):
        compat.reason("something_else", "fail", "x")
    assert compat.verdict_of([]) == "ok"
    assert compat.verdict_of([compat.reason("unknown_model", "info", "x")]) == "ok"
