"""The weights check the vllm role's init container runs (roles/vllm/files/check_weights.py), on real
safetensors files written here and run as the container runs it (a separate Python process)."""

import importlib.util
import json
import pathlib
import struct
import subprocess
import sys

import pytest

SCRIPT = pathlib.Path(__file__).resolve().parents[2] / "roles" / "vllm" / "files" / "check_weights.py"


@pytest.fixture(scope="module")
def weights():
    spec = importlib.util.spec_from_file_location("check_weights", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_safetensors(path, tensors):
    """A valid safetensors file: u64 header length, JSON header with data_offsets, then the data."""
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for name, count in tensors.items():
        header[name] = {"dtype": "F32", "shape": [count], "data_offsets": [offset, offset + 4 * count]}
        offset += 4 * count
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0" * offset)
    return offset


def sharded_model(directory, shards=3):
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text('{"model_type": "qwen3"}')
    weight_map, total = {}, 0
    for i in range(1, shards + 1):
        name = "model-%05d-of-%05d.safetensors" % (i, shards)
        tensors = {"layers.%d.weight" % i: 16 * i, "layers.%d.bias" % i: 4}
        total += write_safetensors(directory / name, tensors)
        weight_map.update(dict.fromkeys(tensors, name))
    (directory / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}))
    return directory


def hub_snapshot(cache, repo, commit="0123abcd"):
    base = cache / "hub" / ("models--" + repo.replace("/", "--"))
    (base / "refs").mkdir(parents=True)
    (base / "refs" / "main").write_text(commit + "\n")
    return sharded_model(base / "snapshots" / commit)


def run(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=60, check=False)


def test_a_complete_sharded_model_passes(weights, tmp_path):
    assert weights.check_dir(str(sharded_model(tmp_path / "m"))) == []


def test_a_truncated_shard_is_named_with_its_sizes(weights, tmp_path):
    model = sharded_model(tmp_path / "m")
    shard = model / "model-00002-of-00003.safetensors"
    data = shard.read_bytes()
    shard.write_bytes(data[:-10])
    (problem,) = weights.check_dir(str(model))
    assert problem == "model-00002-of-00003.safetensors: size %d bytes, its header says %d (truncated)" % (
        len(data) - 10, len(data))


def test_missing_shards_config_and_corrupt_headers_are_each_reported(weights, tmp_path):
    model = sharded_model(tmp_path / "m")
    (model / "model-00003-of-00003.safetensors").unlink()
    (model / "config.json").unlink()
    (model / "model-00001-of-00003.safetensors").write_bytes(struct.pack("<Q", 10 ** 6) + b"{}")
    assert weights.check_dir(str(model)) == [
        "config.json: missing",
        "model-00001-of-00003.safetensors: truncated or corrupt: header of 1000000 bytes in a file of 10 bytes",
        "model-00003-of-00003.safetensors: missing",
    ]


def test_a_single_file_model_and_an_empty_directory(weights, tmp_path):
    single = tmp_path / "single"
    single.mkdir()
    (single / "config.json").write_text("{}")
    write_safetensors(single / "model.safetensors", {"w": 8})
    assert weights.check_dir(str(single)) == []
    empty = tmp_path / "empty"
    empty.mkdir()
    assert weights.check_dir(str(empty)) == [
        "config.json: missing", "no safetensors weights (model.safetensors.index.json or model.safetensors)"]


def test_the_hub_cache_layout_is_found_through_refs(weights, tmp_path):
    snapshot = hub_snapshot(tmp_path / "hf", "Qwen/Qwen3-8B-AWQ")
    assert weights.snapshot_dir(str(tmp_path / "hf"), "Qwen/Qwen3-8B-AWQ") == str(snapshot)
    assert weights.snapshot_dir(str(tmp_path / "hf"), "Qwen/Other") is None


def test_the_command_line_as_the_init_container_runs_it(tmp_path):
    hub_snapshot(tmp_path / "hf", "Qwen/Qwen3-8B-AWQ")
    ok = run("--repo", "Qwen/Qwen3-8B-AWQ", "--cache-dir", str(tmp_path / "hf"), "--check-only")
    assert ok.returncode == 0, ok.stderr
    assert "weights of Qwen/Qwen3-8B-AWQ complete" in ok.stdout
    local = sharded_model(tmp_path / "models" / "Qwen3-ASR-1.7B")
    (local / "model-00001-of-00003.safetensors").write_bytes(b"\0\0")
    bad = run("--repo", "Qwen/Qwen3-ASR-1.7B", "--local-dir", str(local), "--check-only")
    assert bad.returncode == 1
    assert "model-00001-of-00003.safetensors: truncated: 2 bytes" in bad.stderr
    missing = run("--repo", "Qwen/Absent", "--cache-dir", str(tmp_path / "hf"), "--check-only")
    assert missing.returncode == 1 and "Qwen/Absent: not in the cache" in missing.stderr
