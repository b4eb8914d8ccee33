"""How fast a GPU mode switch is, beyond what the models themselves take: the simulated cluster at real time.

The home lab's catalog (inventories/homelab, rendered by the vllm role) on the simulated k3s node, every
simulated duration at time scale 1.0: probe periods (the role's 1 s), pod sandbox creation, termination
grace, GPU memory release (0.15 s), and the fake vLLM's model load L and shutdown T. Each switch is
`gpu-mode` run as the node runs it (its own process, NVML through the stand-in library reading the node's
GPU memory ledger), so its start-up counts too.

* overhead: the switch's time (the switcher's own clock, from its first API call to the mode recorded) minus L
  (the target's load) minus T (the outgoing server's shutdown): probe periods, scheduling, API calls and the
  memory wait all count as overhead; for L = 5 s and 20 s (goal: under 2 s for both). The Python start-up of
  the `gpu-mode` process (importing the kubernetes client: about 0.6 s here) is printed beside it, not in it;
* no-op: `gpu-mode r1` when r1 is active and serving, the same way (goal: under 1 s);
* rollback: a target that crashes while loading (after L/2), rolled back to ml and serving again: the
  switch's time minus L_prev, L_target and T (the outgoing server's shutdown, as above) (goal: under 3 s);
* release wait: from the moment the ledger released the outgoing model's memory to the moment the switcher
  saw it (goal: 0.25 s);
* standby switch: the home lab's hot-standby variant (inventories/examples/homelab-standby: both models
  resident on a time-sliced GPU, the inactive one asleep), ml to r1 and back: the switch's time minus the
  simulated sleep of the outgoing server and wake-up of the target (drain, the memory seen down to the
  sleeper's residue, the woken model's health, model list and one completion, the Service, the record all
  count) (goal: under 1 s).

    .venv/bin/python benchmarks/gpu_mode.py [--shutdown-seconds 2] [--sleep-seconds 0.5 --wake-seconds 1]

Last line, exactly:
``gpu_mode overhead_s=<max over L> noop_s=<s> rollback_extra_s=<s> release_wait_s=<s> standby_switch_s=<s>``
"""

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / ".collections")]

from ansible_collections.baremetal.gpu.plugins.module_utils import kube as k8s  # noqa: E402
from tests.harness.fake_kube import FakeKubeAPI  # noqa: E402
from tests.harness.kubelet import KubeletSimulator, NodeSpec  # noqa: E402
from tests.harness.role_render import render  # noqa: E402
from tests.harness import fake_nvml  # noqa: E402

NODE = "k3s-gpu-worker"
NS = "ml"
CLI = ("import sys; sys.path[:0] = ['.', '.collections']\n"
       "from ansible_collections.baremetal.gpu.plugins.module_utils.gpu_mode.cli import main\nsys.exit(main())\n")


class Cluster:
    """One simulated home-lab node at time scale 1, with the home lab deployed and mode ml active."""

    def __init__(self, tmp, manifests, nvml_lib, load, shutdown, faults=None, every_pod=None, node=None):
        self.tmp, self.manifests, self.nvml_lib = tmp, manifests, nvml_lib
        self.load, self.shutdown, self.faults = load, shutdown, faults or {}
        self.every_pod = every_pod or {}  # fake vLLM keywords for every pod (sleep and wake times)
        self.node = node or {}  # NodeSpec keywords

    def __enter__(self):
        self.api = FakeKubeAPI().__enter__()
        kubeconfig = self.api.write_kubeconfig(self.tmp / "kubeconfig")

        def overrides(ctx):
            return dict(self.every_pod,
                        **self.faults.get(ctx.pod["metadata"]["labels"].get("app.kubernetes.io/instance", ""), {}))

        self.sim = KubeletSimulator(self.api.url, nodes=[NodeSpec(name=NODE, **self.node)], time_scale=1.0,
                                    state_dir=self.tmp / "cluster", vllm_load_seconds=self.load,
                                    vllm_shutdown_seconds=self.shutdown, vllm_overrides=overrides).__enter__()
        self.kube = k8s.Kube.from_params({"kubeconfig": str(kubeconfig)})
        k8s.apply_all(self.kube, self.manifests)
        gpu = self.sim.node_state_dir(NODE) / "gpu"
        config = self.tmp / "gpu-mode.json"
        config.write_text(json.dumps({"node": NODE, "namespace": NS, "kubeconfig": str(kubeconfig),
                                      "proc_root": str(gpu / "proc")}))
        self.env = dict(os.environ, LD_LIBRARY_PATH=str(self.nvml_lib), FAKE_NVML_DATA=str(gpu / "nvml.txt"),
                        GPU_MODE_CONFIG=str(config))
        result, _wall = self.switch("ml")
        assert result.get("outcome") == "switched", result
        return self

    def __exit__(self, *exc):
        self.kube.close()
        self.sim.__exit__(*exc)
        self.api.__exit__(*exc)

    def switch(self, mode, *args):
        """(JSON result, wall seconds) of `gpu-mode MODE --json` run as a node process."""
        started = time.monotonic()
        proc = subprocess.run([sys.executable, "-c", CLI, mode, "--json", *args], cwd=ROOT, env=self.env, check=False,
                              capture_output=True, text=True, timeout=600)
        wall = time.monotonic() - started
        try:
            result = json.loads(proc.stdout)
        except ValueError:
            raise RuntimeError("gpu-mode %s: exit %d\n%s" % (mode, proc.returncode, proc.stderr[-3000:]))
        result["exit_code"] = proc.returncode
        return result, wall

    def ml_pid(self):
        (pid,) = [p.pid for p in self.sim.ledger(NODE).processes(0)]
        return pid


def measure(manifests, nvml_lib, load, shutdown):
    with tempfile.TemporaryDirectory() as tmp, Cluster(pathlib.Path(tmp), manifests, nvml_lib, load, shutdown) as c:
        ml_pid = c.ml_pid()
        result, wall = c.switch("r1")
        assert result["outcome"] == "switched", result
        released = c.sim.ledger(NODE).released_at(ml_pid)
        release_wait = result["release"]["released_at"] - released
        noop_result, noop_wall = c.switch("r1")
        assert noop_result["outcome"] == "unchanged", noop_result
    total = result["total_seconds"]
    return {"load_s": load, "shutdown_s": shutdown, "total_s": total, "startup_s": round(wall - total, 3),
            "overhead_s": round(total - load - shutdown, 3), "release_wait_s": round(release_wait, 3),
            "noop_s": noop_result["total_seconds"], "noop_wall_s": round(noop_wall, 3), "phases": result["phases"]}


def measure_rollback(manifests, nvml_lib, load, shutdown):
    faults = {"vllm-r1": {"crash_during_load": True}}
    with tempfile.TemporaryDirectory() as tmp, Cluster(pathlib.Path(tmp), manifests, nvml_lib, load, shutdown,
                                                       faults) as c:
        result, _wall = c.switch("r1")
        assert result["exit_code"] == 1 and result.get("rolled_back"), result
    total = result["total_seconds"]
    return {"total_s": total, "extra_s": round(total - load - load - shutdown, 3), "phases": result["phases"],
            "rollback": result["rollback"]["seconds"]}


def measure_standby(manifests, nvml_lib, load, shutdown, sleep_s, wake_s):
    """ml -> r1 -> ml with both resident (the inactive one asleep): each switch minus its sleep and wake-up."""
    fake = {"sleep_seconds": sleep_s, "wake_seconds": wake_s}
    with tempfile.TemporaryDirectory() as tmp, Cluster(pathlib.Path(tmp), manifests, nvml_lib, load, shutdown,
                                                       every_pod=fake, node={"time_slicing_replicas": 2}) as c:
        runs = []
        for target in ("r1", "ml"):
            result, wall = c.switch(target)
            assert result["outcome"] == "switched" and result["plan"]["wake"] and not result.get("cold_restarts"), result
            runs.append({"to": target, "total_s": result["total_seconds"], "startup_s": round(wall - result["total_seconds"], 3),
                         "extra_s": round(result["total_seconds"] - sleep_s - wake_s, 3), "phases": result["phases"]})
    return runs


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--loads", type=float, nargs="+", default=[5.0, 20.0], help="model load seconds L")
    parser.add_argument("--shutdown-seconds", type=float, default=2.0, help="outgoing server's shutdown T")
    parser.add_argument("--sleep-seconds", type=float, default=0.5, help="a server's fall asleep (sleep mode)")
    parser.add_argument("--wake-seconds", type=float, default=1.0,
                        help="a level-1 wake-up (vLLM measured 0.26 to 0.82 s for small models on an A100)")
    args = parser.parse_args(argv)
    catalog = render("homelab", {"vllm_prepull": False})
    standby_catalog = render("homelab-standby", {"vllm_prepull": False})
    with tempfile.TemporaryDirectory() as lib:
        nvml_lib = fake_nvml.build(lib)
        runs = []
        for load in args.loads:
            run = measure(catalog.manifests, nvml_lib, load, args.shutdown_seconds)
            runs.append(run)
            print("switch ml -> r1, L=%.0f s T=%.0f s: %.2f s (+ %.2f s process start-up), overhead %.2f s, release "
                  "noticed %.3f s after the memory was freed, no-op %.2f s (%.2f s with start-up); phases %s" % (
                      load, args.shutdown_seconds, run["total_s"], run["startup_s"], run["overhead_s"],
                      run["release_wait_s"], run["noop_s"], run["noop_wall_s"], json.dumps(run["phases"], sort_keys=True)))
        rollback = measure_rollback(catalog.manifests, nvml_lib, min(args.loads), args.shutdown_seconds)
        print("rollback (r1 crashes at L/2, back to ml), L=%.0f s: total %.2f s, total - L_prev - L_target - T %.2f s; "
              "phases %s, rollback steps %s" % (min(args.loads), rollback["total_s"], rollback["extra_s"],
                                                json.dumps(rollback["phases"], sort_keys=True),
                                                json.dumps(rollback["rollback"], sort_keys=True)))
        standby = measure_standby(standby_catalog.manifests, nvml_lib, min(args.loads), args.shutdown_seconds,
                                  args.sleep_seconds, args.wake_seconds)
        for run in standby:
            print("standby switch to %s (sleep %.1f s, wake-up %.1f s): %.2f s (+ %.2f s process start-up), total - "
                  "sleep - wake %.2f s; phases %s" % (
                      run["to"], args.sleep_seconds, args.wake_seconds, run["total_s"], run["startup_s"],
                      run["extra_s"], json.dumps(run["phases"], sort_keys=True)))
    print("probe periods 1 s (the vllm role's default), time scale 1.0, gpu-mode run as a separate process")
    print("gpu_mode overhead_s=%.2f noop_s=%.2f rollback_extra_s=%.2f release_wait_s=%.3f standby_switch_s=%.2f" % (
        max(r["overhead_s"] for r in runs), max(r["noop_s"] for r in runs), rollback["extra_s"],
        max(r["release_wait_s"] for r in runs), max(r["extra_s"] for r in standby)))


if __name__ == "__main__":
    main()
