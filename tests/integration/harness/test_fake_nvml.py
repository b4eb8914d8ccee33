"""The NVML stand-in answers live: a process polling it through gpu_facts' NVML code (nvidia-ml-py over the
built libnvidia-ml.so.1) sees the GPU memory ledger of another process release memory, whether it calls
nvmlInit for every reading or initialises once and queries memory and processes again and again."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

from tests.harness.gpu_ledger import GpuLedger

ROOT = pathlib.Path(__file__).resolve().parents[3]
READER = r"""
import json, sys, time
sys.path[:0] = ['.', '.collections']
import pynvml
from ansible_collections.baremetal.gpu.plugins.module_utils import gpu

mode, deadline = sys.argv[1], time.monotonic() + float(sys.argv[2])


def report(used, processes):
    print(json.dumps({"used": used, "pids": [p["pid"] for p in processes]}), flush=True)
    return not processes


if mode == "gather":  # nvmlInit ... nvmlShutdown for every reading, as gpu_facts does
    while time.monotonic() < deadline:
        card = gpu.gather("nvml")["gpus"][0]
        if report(card["memory_used_mib"], card["processes"]):
            break
        time.sleep(0.01)
else:  # one nvmlInit, then memory and processes again and again, as a release wait polls
    pynvml.nvmlInit()
    handle = pynvml.nvmlDeviceGetHandleByIndex(0)
    while time.monotonic() < deadline:
        _total, _reserved, used, _free = gpu._nvml_memory(pynvml, handle)
        if report(used, gpu._nvml_processes(pynvml, handle)):
            break
        time.sleep(0.01)
    pynvml.nvmlShutdown()
"""


@pytest.mark.parametrize("mode", ["gather", "one-init"])
def test_a_polling_reader_sees_the_ledger_release_memory(fake_nvml_lib, tmp_path, mode):
    ledger = GpuLedger.from_profile("gpu-node", "NVIDIA-GeForce-RTX-3060", release_delay=0.05,
                                    export_dir=tmp_path / "node")
    ledger.start_process(4242, "python3", pod_uid="uid-1", container="vllm", gpus=[0])
    ledger.allocate(4242, 0, 10000)
    env = dict(os.environ, LD_LIBRARY_PATH=str(fake_nvml_lib), FAKE_NVML_DATA=str(tmp_path / "node" / "nvml.txt"))
    reader = subprocess.Popen([sys.executable, "-c", READER, mode, "30"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        first = json.loads(reader.stdout.readline() or "null")
        assert first == {"used": 10000, "pids": [4242]}, reader.stderr.read()
        ledger.exit_process(4242)  # the process is gone; its memory is released 50 ms later
        out, err = reader.communicate(timeout=30)
    finally:
        if reader.poll() is None:
            reader.kill()
            reader.communicate()
        ledger.close()
    assert reader.returncode == 0, err
    readings = [json.loads(line) for line in out.splitlines()]
    assert readings[-1] == {"used": 0, "pids": []}
    assert all(r in ({"used": 10000, "pids": [4242]}, {"used": 0, "pids": []}) for r in readings)
