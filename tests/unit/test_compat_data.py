"""The compatibility data and model catalog hold together: sources exist, ranges cover every release,
tables are ordered, every catalog model can be checked."""

import re

from ansible_collections.baremetal.gpu.plugins.module_utils import compat
from ansible_collections.baremetal.gpu.plugins.module_utils import compat_data as data
from ansible_collections.baremetal.gpu.plugins.module_utils import models, versions


def test_every_fact_names_a_source_that_exists():
    for series in data.VLLM_IMAGE_SERIES:
        assert series["sources"] and set(series["sources"]) <= set(data.SOURCES), series
        assert series["confidence"] in ("confirmed", "reported", "inferred")
        assert series["compat_libs"] in ("always", "opt_in")
    for cuda, entry in data.FORWARD_COMPAT_BRANCHES.items():
        assert entry["source"] in data.SOURCES, cuda
        assert entry["branches"] == sorted(entry["branches"])


def test_releases_are_ordered_and_each_belongs_to_exactly_one_series():
    releases = data.VLLM_RELEASES
    assert [versions.version_tuple(v) for v in releases] == sorted(versions.version_tuple(v) for v in releases)
    assert len(set(releases)) == len(releases)
    for version in releases:
        owners = [s for s in data.VLLM_IMAGE_SERIES
                  if versions.version_tuple(s["first"]) <= versions.version_tuple(version) <= versions.version_tuple(s["last"])]
        assert len(owners) == 1, version
    assert set(data.VLLM_TORCH) <= set(releases)
    assert data.VLLM_IMAGE_SERIES[0]["first"] == releases[0] and data.VLLM_IMAGE_SERIES[-1]["last"] == releases[-1]


def test_image_cuda_never_goes_backwards_across_releases():
    cudas = [versions.version_tuple(compat.image_info_from_data("vllm/vllm-openai:v" + v)["cuda"])
             for v in data.VLLM_RELEASES]
    assert cudas == sorted(cudas)


def test_minimum_driver_grows_with_cuda():
    rows = sorted(data.CUDA_MIN_DRIVER, key=lambda r: versions.version_tuple(r["cuda"]))
    drivers = [versions.version_tuple(r["min_driver"]) for r in rows]
    assert drivers == sorted(drivers)
    # every image CUDA in the data has a driver row
    for series in data.VLLM_IMAGE_SERIES:
        assert compat.min_driver_for_cuda(series["cuda"]), series["cuda"]
    for cuda in data.VLLM_TAG_CUDA_SUFFIXES.values():
        assert compat.min_driver_for_cuda(cuda), cuda


def test_release_notes_figures_quoted_in_the_issue():
    assert compat.min_driver_for_cuda("12.8") == "570.26"
    assert compat.min_driver_for_cuda("12.9") == "575.51.03"
    assert compat.min_driver_for_cuda("13.0") == "580.65.06"
    assert compat.driver_cuda_from_version("575.51.03") == "12.9"
    assert compat.driver_cuda_from_version("575.51.02") == "12.8"


def test_gpu_table_patterns_and_fields():
    for entry in data.GPUS:
        re.compile(entry["match"])
        assert re.match(r"^\d+\.\d+$", entry["compute_capability"]) and entry["memory_mib"] > 1000
        assert entry["class"] in ("consumer", "workstation", "datacenter")


def test_quantization_and_dtype_tables():
    for method, spec in data.QUANTIZATION.items():
        assert re.match(r"^\d+\.\d+$", spec["min_cc"]), method
        if spec.get("fallback"):
            assert spec["fallback"] in data.QUANTIZATION
    assert set(data.DTYPE_ALIASES.values()) <= set(data.DTYPE_BYTES)


def test_catalog_entries_are_complete_and_fallbacks_resolve():
    names = set()
    for entry in models.MODELS:
        assert entry["name"] not in names
        names.add(entry["name"])
        for key in ("params_b", "num_layers", "num_kv_heads", "head_dim", "max_position_embeddings"):
            assert entry[key] and entry[key] > 0, (entry["name"], key)
        assert entry["confidence"] in ("config", "verified", "estimated")
        assert entry["source"].startswith("https://huggingface.co/")
        if entry["quantization"]:
            assert entry["quantization"] in data.QUANTIZATION
        if entry["fallback"]:
            assert models.find_model(entry["fallback"]) is not None, entry["fallback"]
    for field_note_model in ("Qwen/Qwen3-8B-AWQ", "casperhansen/deepseek-r1-distill-qwen-7b-awq", "Qwen/Qwen3-ASR-1.7B",
                             "Qwen/Qwen3-ASR-0.6B", "Qwen/Qwen3-TTS-12Hz-1.7B-CustomVoice"):
        assert field_note_model in names


def test_catalog_lookup_by_served_path():
    assert models.find_model("/models/Qwen3-ASR-1.7B")["name"] == "Qwen/Qwen3-ASR-1.7B"
    assert models.find_model("qwen/qwen3-8b-awq")["name"] == "Qwen/Qwen3-8B-AWQ"
    assert models.find_model("nobody/nothing") is None
