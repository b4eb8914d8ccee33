"""Benchmark of the vLLM compatibility preflight.

* in-process: verdicts for every catalog model x 6 node profiles (goal: the whole matrix under 1 s);
* through Ansible: wall time of one ``ansible localhost -m baremetal.gpu.vllm_compat`` call, Ansible's
  own start-up included (goal: under 1.5 s), next to an ``ansible.builtin.ping`` call for reference.

A module call is judged by what it adds to Ansible's own start-up on the machine at hand, so each
``vllm_compat`` call is followed by an ``ansible localhost -m ping`` in the same run, and both medians
are reported.

Run from the repository root: ``.venv/bin/python benchmarks/compat.py [--image TAG] [--repeat N]``.
The last line is exactly ``compat matrix_s=<seconds> module_call_s=<seconds> verdicts=<count> ping_s=<seconds>``.
"""

import argparse
import collections
import json
import os
import pathlib
import statistics
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / ".collections")]

from ansible_collections.baremetal.gpu.plugins.module_utils import compat  # noqa: E402
from ansible_collections.baremetal.gpu.plugins.module_utils import gpu  # noqa: E402
from ansible_collections.baremetal.gpu.plugins.module_utils import models  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures" / "gpu"


def capture(name):
    """gpu_facts of a capture, as before deploying: the captured processes' memory is not counted."""
    path = FIXTURES / name
    facts = gpu.parse_nvidia_smi_xml((path / "nvidia-smi-q.xml").read_text(),
                                     gpu.parse_compute_cap_csv((path / "compute-cap.csv").read_text()))
    for card in facts["gpus"]:
        card["memory_used_mib"] = 0
    return facts


def profiles():
    """Six nodes: the reference deployments' cards, the real H100 capture, and two common ones."""
    return collections.OrderedDict([
        ("rtx3060-570", capture("rtx3060-12gb-driver-570.195.03")),
        ("t4-535", capture("t4-16gb-driver-535.247.01")),
        ("h100-580", capture("h100-80gb-driver-580.159.04")),
        ("2xa16-570", {"driver_version": "570.195.03", "gpus": [{"name": "NVIDIA A16"}, {"name": "NVIDIA A16"}]}),
        ("rtx4090-575", {"driver_version": "575.64.05", "gpus": [{"name": "NVIDIA GeForce RTX 4090"}]}),
        ("l40s-550", {"driver_version": "550.163.01", "gpus": [{"name": "NVIDIA L40S"}]}),
    ])


def matrix(image, nodes):
    verdicts = []
    for node_name, node in nodes.items():
        for entry in models.MODELS:
            request = {"name": entry["name"], "max_model_len": min(8192, entry["max_position_embeddings"]),
                       "tensor_parallel_size": max(1, len(node.get("gpus", [])))}
            result = compat.check(image, node, request)
            verdicts.append((node_name, entry["name"], result["verdict"]))
    return verdicts


def ansible_wall(args, env):
    start = time.monotonic()
    proc = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    return time.monotonic() - start, proc


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", default="vllm/vllm-openai:v0.15.1")
    parser.add_argument("--repeat", type=int, default=20, help="warm repetitions of the matrix")
    parser.add_argument("--module-calls", type=int, default=3)
    opts = parser.parse_args()

    nodes = profiles()
    start = time.perf_counter()
    verdicts = matrix(opts.image, nodes)
    cold = time.perf_counter() - start
    warm = []
    for _round in range(opts.repeat):
        start = time.perf_counter()
        matrix(opts.image, nodes)
        warm.append(time.perf_counter() - start)
    counts = collections.Counter(v for _node, _model, v in verdicts)
    print("matrix: %d models x %d node profiles = %d verdicts with %s" % (
        len(models.MODELS), len(nodes), len(verdicts), opts.image))
    print("  first run %.3f s, warm median %.4f s: %.0f verdicts/s; %s" % (
        cold, statistics.median(warm), len(verdicts) / statistics.median(warm),
        ", ".join("%s=%d" % kv for kv in sorted(counts.items()))))
    for node_name in nodes:
        row = collections.Counter(v for n, _model, v in verdicts if n == node_name)
        print("  %-12s %s" % (node_name, " ".join("%s=%d" % kv for kv in sorted(row.items()))))

    bindir = pathlib.Path(sys.executable).parent
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    module_args = json.dumps({"image": opts.image, "node": nodes["rtx3060-570"], "fail_on": "never",
                              "model": {"name": "Qwen/Qwen3-8B-AWQ", "quantization": "awq_marlin",
                                        "max_model_len": 8192, "enforce_eager": True}})
    calls, pings = [], []
    for _call in range(opts.module_calls):
        wall, proc = ansible_wall([str(bindir / "ansible"), "localhost", "-m", "baremetal.gpu.vllm_compat",
                                   "-a", module_args], env)
        if proc.returncode != 0:
            sys.exit("ansible -m baremetal.gpu.vllm_compat failed:\n%s\n%s" % (proc.stdout, proc.stderr))
        calls.append(wall)
        wall, proc = ansible_wall([str(bindir / "ansible"), "localhost", "-m", "ansible.builtin.ping"], env)
        if proc.returncode != 0:
            sys.exit("ansible -m ping failed:\n%s\n%s" % (proc.stdout, proc.stderr))
        pings.append(wall)
    module_call, ping = statistics.median(calls), statistics.median(pings)
    print("ansible -m baremetal.gpu.vllm_compat: median %.2f s of %s; ansible -m ping: median %.2f s of %s "
          "(Ansible's own start-up on this machine): the module adds %.2f s"
          % (module_call, ", ".join("%.2f" % c for c in calls), ping, ", ".join("%.2f" % p for p in pings),
             module_call - ping))
    print("compat matrix_s=%.3f module_call_s=%.2f verdicts=%d ping_s=%.2f" % (cold, module_call, len(verdicts), ping))


if __name__ == "__main__":
    main()
