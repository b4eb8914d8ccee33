"""vllm_compat's sleep-mode rules: which releases can be put to sleep at which level, what a sleeper keeps on
the GPU per release, host memory for a level-1 sleeper's weights, and the fit of an awake share beside
sleepers. Expected figures are written out from the sources compat_data names (vLLM's own source per release,
issue reports), never computed by the code under test."""

import pytest

from ansible_collections.baremetal.gpu.plugins.module_utils import compat
from ansible_collections.baremetal.gpu.plugins.module_utils import compat_data as data

RTX3060 = {"driver_version": "570.195.03",
           "gpus": [{"name": "NVIDIA GeForce RTX 3060", "compute_capability": "8.6", "memory_total_mib": 12288,
                     "memory_used_mib": 250}]}
H100 = {"driver_version": "580.159.04",
        "gpus": [{"name": "NVIDIA H100 80GB HBM3", "compute_capability": "9.0", "memory_total_mib": 81559,
                  "memory_used_mib": 480}]}
QWEN = {"name": "Qwen/Qwen3-8B-AWQ", "quantization": "awq_marlin", "max_model_len": 4096,
        "gpu_memory_utilization": 0.85, "enforce_eager": True, "sleep_mode": True, "host_memory_mib": 16384}
R1 = {"name": "casperhansen/deepseek-r1-distill-qwen-7b-awq", "quantization": "awq_marlin", "max_model_len": 4096,
      "gpu_memory_utilization": 0.85, "enforce_eager": True, "weights_gib": 5.2, "params_b": 7.6, "num_layers": 28,
      "num_kv_heads": 4, "head_dim": 128}
OLD = "vllm/vllm-openai:v0.8.5.post1"


def codes(result, severity=None):
    return [r["code"] for r in result["reasons"] if severity is None or r["severity"] == severity]


def only(result, code):
    (found,) = [r for r in result["reasons"] if r["code"] == code]
    return found


def test_sleep_facts_follow_the_releases_read():
    # vllm_src_dev_routes: read from 0.8.5.post1; vllm_src_collective_rpc: /collective_rpc from 0.10.2
    assert compat.sleep_facts("0.8.5.post1")["supported"] is True
    assert compat.sleep_facts("0.8.5")["supported"] is False
    assert compat.sleep_facts("0.10.1.1")["level2"] is False and compat.sleep_facts("0.10.2")["level2"] is True
    # vllm_src_weights_outside_pool: 0.13.0 frees the weights, 0.14.0 .. 0.16.x keep them, 0.17.0 frees them
    assert [compat.sleep_facts(v)["keeps_weights"] for v in ("0.13.0", "0.14.0", "0.15.1", "0.16.0", "0.17.0")] == \
        [False, True, True, True, False]
    assert compat.sleep_facts("0.16.0")["pauses_scheduler"] is False
    assert compat.sleep_facts("0.17.0")["pauses_scheduler"] is True
    for row in data.VLLM_SLEEP_RESIDUE:
        assert row["sources"] and set(row["sources"]) <= set(data.SOURCES)
        assert row["confidence"] in ("confirmed", "reported", "inferred")


def test_residue_is_the_release_figure_plus_the_weights_where_the_release_keeps_them():
    model, _entry = compat.normalize_model(dict(QWEN))
    assert compat.sleep_residue_mib("0.8.5.post1", model) == 1229
    # 0.14.0 keeps Qwen3-8B-AWQ's 5.7 GiB (5837 MiB, the catalog's weights_gib) on the GPU as well
    assert compat.sleep_residue_mib("0.14.0", model) == 1229 + 5837
    model, _entry = compat.normalize_model(dict(QWEN, sleep_residue_mib=900))
    assert compat.sleep_residue_mib("0.14.0", model) == 900  # the entry's own figure wins


def test_an_awake_share_beside_a_sleeper_fits_the_home_lab_gpu():
    result = compat.check(OLD, RTX3060, dict(QWEN), standby=[{"name": "r1", "image": OLD, "model": R1}])
    assert result["verdict"] == "ok", result["reasons"]
    # 0.8.5.post1 counts what others hold against its own share: the sleeper's residue leaves the KV cache
    # 10445 (0.85 x 12288) - 5837 weights - 2494 runtime - 1229 residue = 885 MiB, 6288 tokens of 147456 bytes
    assert result["memory"]["taken_mib"] == 1229 and result["memory"]["kv_cache_mib"] == 885
    assert result["standby"] == [{"name": "r1", "residue_mib": 1229, "host_mib": 5325 + 4096}]


def test_an_awake_share_that_leaves_no_room_for_the_sleeper_fails_with_the_numbers():
    result = compat.check(OLD, RTX3060, dict(QWEN, gpu_memory_utilization=0.9),
                          standby=[{"name": "r1", "image": OLD, "model": R1}])
    reason = only(result, "gpu_memory_oversubscribed")
    assert reason["severity"] == "fail"
    # 12288 - 250 in use - 1229 asleep = 10809 MiB free (10.56 GiB) < 0.90 x 12288 = 11059 MiB (10.80 GiB)
    assert "Free memory on device (10.56/12.00 GiB) on startup is less than desired GPU memory utilization " \
           "(0.90, 10.80 GiB): r1 (asleep, 1229 MiB) take 12% of NVIDIA GeForce RTX 3060" in reason["message"]
    assert reason["fix"] == "gpu_memory_utilization: 0.87 (or lower the others' share)"


def test_from_0_9_1_the_share_is_the_servers_own():
    image = "vllm/vllm-openai:v0.9.2"
    result = compat.check(image, H100, dict(QWEN, gpu_memory_utilization=0.5),
                          standby=[{"name": "r1", "image": image, "model": R1}])
    assert "taken_mib" not in result["memory"] and result["verdict"] == "ok", result["reasons"]


def test_a_release_that_keeps_the_weights_asleep_is_flagged_and_its_residue_counted():
    image = "vllm/vllm-openai:v0.14.0"
    result = compat.check(image, H100, dict(QWEN, gpu_memory_utilization=0.5),
                          standby=[{"name": "r1", "image": image, "model": R1}])
    assert "sleep_keeps_weights" in codes(result, "warn")
    # r1 asleep keeps 1229 MiB + its 5.2 GiB of weights (5325 MiB)
    assert result["standby"][0]["residue_mib"] == 1229 + 5325
    mine, sleeper = [r for r in result["reasons"] if r["code"] == "sleep_keeps_weights"]
    assert mine["message"].startswith("vLLM 0.14.0 loads the weights outside its sleep-mode memory pool: asleep, "
                                      "Qwen/Qwen3-8B-AWQ keeps its weights on the GPU (7066 MiB per GPU kept")
    assert sleeper["message"].startswith("standby r1: vLLM 0.14.0 loads the weights outside")
    assert mine["fix"] == "use v0.13.0, or v0.17.0 or newer, where a sleep frees the weights"


def test_level_2_needs_collective_rpc_to_reload_the_weights():
    result = compat.check(OLD, RTX3060, dict(QWEN, sleep_level=2))
    reason = only(result, "sleep_mode_unsupported")
    assert "no /collective_rpc to reload them on wake-up (from 0.10.2)" in reason["message"]
    assert reason["fix"] == "sleep_level: 1, or vllm/vllm-openai:v0.10.2 or newer"


def test_a_release_older_than_the_ones_read_is_not_put_to_sleep():
    result = compat.check("vllm/vllm-openai:v0.8.4", RTX3060, dict(QWEN))
    assert "sleep_mode_unsupported" in codes(result, "fail")
    assert "predates the sleep-mode HTTP endpoints the collection drives (read from 0.8.5.post1 on)" in \
        only(result, "sleep_mode_unsupported")["message"]


def test_a_level_1_pod_whose_memory_cannot_hold_the_weights_fails():
    result = compat.check(OLD, RTX3060, dict(QWEN, host_memory_mib=8192))
    reason = only(result, "host_memory_insufficient")
    # Qwen3-8B-AWQ: 5837 MiB of weights + 4096 for the server = 9933 MiB > 8192
    assert "copies Qwen/Qwen3-8B-AWQ's weights (5837 MiB) to pinned host RAM: the pod's memory (8192 MiB)" in \
        reason["message"]
    assert reason["fix"] == "memory and memory_limit: 10Gi (or more), or sleep_level: 2"
    level2 = compat.check(OLD, RTX3060, dict(QWEN, host_memory_mib=8192, sleep_level=2))
    assert "host_memory_insufficient" not in codes(level2)


def test_the_sleepers_must_fit_the_nodes_host_memory():
    node = dict(RTX3060, host_memory_mib=8000)
    result = compat.check(OLD, node, dict(QWEN), standby=[{"name": "r1", "image": OLD, "model": R1}])
    reason = only(result, "host_memory_insufficient")
    assert reason["message"] == ("the sleepers' weights and servers need 9421 MiB of host memory (r1 9421) but the "
                                 "node has 8000 MiB for pods")


@pytest.mark.parametrize("bad", [{"sleep_level": 3}, {"sleep_level": True}])
def test_bad_sleep_input_names_the_field(bad):
    with pytest.raises(ValueError, match="model.sleep_level must be 1"):
        compat.check(OLD, RTX3060, dict(QWEN, **bad))
    with pytest.raises(ValueError, match=r"standby\[0\] needs name, image and model"):
        compat.check(OLD, RTX3060, dict(QWEN), standby=[{"name": "r1"}])
