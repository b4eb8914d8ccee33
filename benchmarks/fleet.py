"""Does switching a fleet cost more than switching one node? `gpu-mode.yml -e mode=r1` over N simulated GPU nodes
at once against the same playbook limited to one node, in the same run.

The fleet: one simulated k3s cluster (fake API server and kubelet simulator in this process) with N GPU nodes,
each an RTX 3060 12 GB like the home lab's worker, with its own modes (ml, the default, r1 and off, as the home
lab's), its own two model servers pinned to it behind its own Service, its own ConfigMap ``gpu-mode-<node>``,
Lease and least-privilege access. The manifests are the vllm role's own, rendered from a generated inventory
(every node of group gpu_nodes with its gpu_modes, the home lab's catalog entries once per node). Each node is a
local-connection host of a generated inventory whose switch runs with that node's kubeconfig and NVML (the
stand-in library reading that node's GPU memory ledger), as in the playbook's tests. Every simulated duration
runs at ``--time-scale`` (1.0 = real time): probe periods (the role's 1 s), termination, memory release, and the
fake vLLM's model load (``--load-seconds``, default 20 s: a 7-8B AWQ model from a warm cache) and shutdown after
SIGTERM (``--shutdown-seconds``, default 3 s).

Sequence (one cluster): every node switched to ml by its `gpu-mode` command (not measured); ml -> r1 with
``--limit <first node>`` (single_s); that node back to ml the same way (not measured); ml -> r1 for all N nodes at once
(fleet_s); then r1 -> r1 (nothing to do) for one node and for all N. Every run is the wall time of the
``ansible-playbook`` process, with ``--forks`` (default: N, so that forks do not bound the fleet; ``--forks 10``
shows a fleet larger than forks: it switches in waves). The figures beside them split each run into Ansible's
start-up, its tasks, and the switchers' own time (their clocks, from first API call to mode recorded), and give
the CPU seconds Ansible and the modules used per host. The no-op runs are what the playbook costs without
switching anything (Ansible's start-up and tasks, each host's module process with Python and the kubernetes
client): the benchmark reports their share of single_s and fleet_s and their cost per extra host. Here every
host's module runs on this machine, beside the simulated cluster, so on a 2-core machine that cost grows with
the fleet; on a real fleet each node runs its own module.

    .venv/bin/python benchmarks/fleet.py [--nodes 20] [--load-seconds 20] [--shutdown-seconds 3] [--time-scale 1]

Goal: ratio = fleet_s / single_s under 1.5 (forks, per-host serialisation or a shared lock would show here).
Last line, exactly: ``fleet nodes=<n> single_s=<s> fleet_s=<s> ratio=<r>``
"""

import argparse
import copy
import datetime
import json
import logging
import os
import pathlib
import resource
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / ".collections")]

import yaml  # noqa: E402

from ansible_collections.baremetal.gpu.plugins.module_utils import kube as k8s  # noqa: E402
from ansible_collections.baremetal.gpu.plugins.module_utils import kube_apply  # noqa: E402
from ansible_collections.baremetal.gpu.plugins.module_utils.gpu_mode import access  # noqa: E402
from tests.harness import fake_nvml  # noqa: E402
from tests.harness.fake_kube import FakeKubeAPI  # noqa: E402
from tests.harness.gpu_mode_node import Node  # noqa: E402
from tests.harness.kubelet import KubeletSimulator, NodeSpec  # noqa: E402
from tests.harness.role_render import INVENTORIES, render  # noqa: E402

NAMESPACE = "ml"
SWITCH_TASK = "Switch the node to mode"


def node_names(count):
    return ["gpu-%02d" % (i + 1) for i in range(count)]


def fleet_inventory(directory, nodes):
    """An inventory the vllm role renders the fleet from: the home lab's settings and its two catalog entries
    once per node (``ml-<node>``, ``r1-<node>``, behind the node's own Service ``vllm-api-<node>``), each node of
    gpu_nodes with the home lab's modes over its own entries."""
    homelab = yaml.safe_load((INVENTORIES["homelab"] / "group_vars" / "all.yml").read_text())
    group_vars = dict((k, v) for k, v in homelab.items()
                      if k.startswith("vllm_") and k not in ("vllm_catalog", "vllm_kubeconfig"))
    group_vars.update(vllm_node_selector={}, vllm_ingress_enabled=False, vllm_prepull=False)
    catalog, hosts = [], {}
    for node in nodes:
        modes = copy.deepcopy(homelab["gpu_modes"])
        for entry in homelab["vllm_catalog"]:
            mine = dict(copy.deepcopy(entry), name="%s-%s" % (entry["name"], node),
                        service={"name": "vllm-api-" + node, "port": 8000, "selector": {"app": "vllm-server-" + node}})
            mine.pop("ingress", None)
            catalog.append(mine)
            for spec in modes.values():
                if spec.get("workloads"):
                    spec["workloads"] = [w if w != entry["name"] else mine["name"] for w in spec["workloads"]]
        hosts[node] = {"gpu_modes": modes}
    group_vars["vllm_catalog"] = catalog
    (directory / "group_vars").mkdir(parents=True)
    (directory / "group_vars" / "all.yml").write_text(yaml.safe_dump(group_vars))
    (directory / "hosts.yml").write_text(yaml.safe_dump({"all": {"children": {"gpu_nodes": {"hosts": hosts}}}}))
    return directory


def switch_inventory(path, kube, sim, nodes, nvml_lib, tmp):
    """The gpu-mode.yml inventory: each GPU node a local-connection host with the kubeconfig the gpu_mode role
    would have written for it (its own ServiceAccount), this venv's Python, and that node's NVML and /proc."""
    hosts = {}
    for node in nodes:
        node_kubeconfig = tmp / ("%s.kubeconfig" % node)
        node_kubeconfig.write_text(access.ensure(kube, node, NAMESPACE, kube.api.configuration.host)["kubeconfig"])
        node_kubeconfig.chmod(0o600)
        gpu = sim.node_state_dir(node) / "gpu"
        hosts[node] = {
            "ansible_connection": "local",
            "ansible_python_interpreter": "{{ ansible_playbook_python }}",
            "gpu_mode_python_interpreter": "{{ ansible_playbook_python }}",
            "gpu_mode_node_kubeconfig": str(node_kubeconfig),
            "gpu_mode_become": False,
            "gpu_mode_proc_root": str(gpu / "proc"),
            "gpu_mode_switch_environment": fake_nvml.environment(nvml_lib, gpu / "nvml.txt"),
            "vllm_namespace": NAMESPACE,
        }
    path.write_text(yaml.safe_dump({"all": {"children": {"gpu_nodes": {"hosts": hosts}}}}))
    return path


def cli_switch(sim, kube, nvml_lib, tmp, nodes, mode):
    """Switch ``nodes`` to ``mode`` with each node's `gpu-mode` command, all at once (the steps not measured)."""
    procs = [(node, Node(sim, kube, tmp / ("%s.kubeconfig" % node), nvml_lib, tmp, node, NAMESPACE).start(mode, "--json"))
             for node in nodes]
    for node, proc in procs:
        out, err = proc.communicate(timeout=600)
        if proc.returncode != 0:
            raise RuntimeError("gpu-mode %s on %s: exit %d\n%s\n%s" % (mode, node, proc.returncode, out[-2000:], err[-2000:]))


def _instant(stamp):
    return datetime.datetime.fromisoformat(stamp.rstrip("Z")).replace(tzinfo=datetime.timezone.utc).timestamp()


def playbook(inventory, mode, forks, limit=None, outcome="switched"):
    """``ansible-playbook gpu-mode.yml -e mode=MODE`` with the JSON callback, every switch ending in ``outcome``;
    its wall time, the CPU seconds it and its children used (and this process: the simulated cluster), and where
    the time went."""
    cmd = [str(pathlib.Path(sys.executable).parent / "ansible-playbook"), str(ROOT / "gpu-mode.yml"),
           "-i", str(inventory), "-e", "mode=" + mode, "--forks", str(forks)] + (["--limit", limit] if limit else [])
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_LOAD_CALLBACK_PLUGINS="1", ANSIBLE_STDOUT_CALLBACK="ansible.posix.json")
    cpu_before = [resource.getrusage(who) for who in (resource.RUSAGE_CHILDREN, resource.RUSAGE_SELF)]
    started_at, started = time.time(), time.monotonic()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900, check=False)
    wall = time.monotonic() - started
    cpu = [after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime for before, after in
           zip(cpu_before, [resource.getrusage(who) for who in (resource.RUSAGE_CHILDREN, resource.RUSAGE_SELF)])]
    try:
        (play,) = json.loads(proc.stdout)["plays"]
    except ValueError:
        raise RuntimeError("ansible-playbook printed no JSON (exit %d):\n%s\n%s"
                           % (proc.returncode, proc.stdout[-3000:], proc.stderr[-3000:]))
    (task,) = [t for t in play["tasks"] if SWITCH_TASK in t["task"]["name"]]
    results = task["hosts"]
    failed = sorted(h for h, r in results.items() if r.get("failed") or r.get("outcome") != outcome)
    if proc.returncode != 0 or failed:
        raise RuntimeError("gpu-mode.yml -e mode=%s failed on %s (exit %d): %s" % (
            mode, ", ".join(failed) or "-", proc.returncode,
            "; ".join("%s: %s" % (h, results[h].get("msg")) for h in failed)[-3000:]))
    switch_task = _instant(task["task"]["duration"]["end"]) - _instant(task["task"]["duration"]["start"])
    switches = sorted(r["total_seconds"] for r in results.values())
    tasks = [(" ".join(t["task"]["name"].split(" : ")[-1].split()[:4]), _instant(t["task"]["duration"]["end"])
              - _instant(t["task"]["duration"]["start"])) for t in play["tasks"] if "end" in t["task"]["duration"]]
    return {"wall": wall, "hosts": len(results), "switch_max": switches[-1], "switch_min": switches[0],
            "ansible_start": _instant(play["play"]["duration"]["start"]) - started_at,
            "switch_task": switch_task, "cpu": cpu[0], "cluster_cpu": cpu[1], "tasks": tasks,
            "phases": max(results.values(), key=lambda r: r["total_seconds"])["phases"]}


def describe(name, run):
    """The figures of one run of the playbook."""
    outside = run["wall"] - run["switch_max"]
    return ("%s: %.2f s wall for %d node(s); the switches' own time %.2f-%.2f s (the slowest's phases %s); outside "
            "the slowest switch %.2f s (%.0f%% of the wall), Ansible's start-up %.2f s and its tasks (by their first words, s) %s; CPU "
            "seconds: Ansible and the modules %.1f (%.2f per node), the simulated cluster %.1f" % (
                name, run["wall"], run["hosts"], run["switch_min"], run["switch_max"],
                json.dumps(run["phases"], sort_keys=True), outside, 100.0 * outside / run["wall"],
                run["ansible_start"], ", ".join("%s %.2f" % (task, seconds) for task, seconds in run["tasks"]),
                run["cpu"], run["cpu"] / run["hosts"], run["cluster_cpu"]))


def check_fleet(kube, nodes, mode):
    """Every node records ``mode`` and runs exactly its servers: the benchmark measured real switches."""
    deployments = dict((d["metadata"]["name"], d["spec"].get("replicas"))
                       for d in kube.items("apps/v1", "Deployment", NAMESPACE))
    for node in nodes:
        recorded = kube.get("v1", "ConfigMap", "gpu-mode-" + node, NAMESPACE)["data"].get("mode")
        running = dict((m, deployments["vllm-%s-%s" % (m, node)]) for m in ("ml", "r1"))
        wanted = {"ml": int(mode == "ml"), "r1": int(mode == "r1")}
        if recorded != mode or running != wanted:
            raise RuntimeError("node %s: recorded %s, replicas %s; expected %s, %s" % (
                node, recorded, running, mode, wanted))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--nodes", type=int, default=20, help="GPU nodes in the fleet")
    parser.add_argument("--load-seconds", type=float, default=20.0,
                        help="fake vLLM model load, simulated seconds (a 7-8B AWQ model from a warm cache)")
    parser.add_argument("--shutdown-seconds", type=float, default=3.0,
                        help="fake vLLM exit after SIGTERM, simulated seconds")
    parser.add_argument("--time-scale", type=float, default=1.0, help="real seconds per simulated second")
    parser.add_argument("--forks", type=int, default=0, help="ansible-playbook --forks (default: --nodes)")
    args = parser.parse_args(argv)
    # the fake API server's asyncio logs each client that goes away mid-watch (a module process that exited)
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    nodes = node_names(args.nodes)
    forks = args.forks or args.nodes

    with tempfile.TemporaryDirectory(prefix="fleet-bench-") as tmp_name:
        tmp = pathlib.Path(tmp_name)
        nvml_lib = fake_nvml.build(tmp)
        rendered = render(str(fleet_inventory(tmp / "render-inventory", nodes)))
        kinds = {}
        for manifest in rendered.manifests:
            kinds[manifest["kind"]] = kinds.get(manifest["kind"], 0) + 1
        print("fleet: %d GPU nodes (RTX 3060 12 GB each), the vllm role's manifests: %s" % (
            len(nodes), ", ".join("%d %s" % (n, k) for k, n in sorted(kinds.items()))))
        print("simulated: model load %.0f s, shutdown after SIGTERM %.0f s, probe periods 1 s (the role's), at time "
              "scale %g: %.1f s and %.1f s of real time; ansible-playbook --forks %d; %d CPU core(s) here, shared "
              "with the simulated cluster (load average now %.1f)" % (
                  args.load_seconds, args.shutdown_seconds, args.time_scale, args.load_seconds * args.time_scale,
                  args.shutdown_seconds * args.time_scale, forks, os.cpu_count() or 0, os.getloadavg()[0]))
        with FakeKubeAPI() as api, KubeletSimulator(
                api.url, nodes=[NodeSpec(name=node) for node in nodes], time_scale=args.time_scale,
                state_dir=tmp / "cluster", vllm_load_seconds=args.load_seconds,
                vllm_shutdown_seconds=args.shutdown_seconds) as sim:
            kube = k8s.Kube.from_params({"kubeconfig": api.write_kubeconfig(tmp / "kubeconfig")})
            try:
                kube_apply.apply_all(kube, rendered.manifests, field_manager="baremetal-gpu",
                                     default_namespace=NAMESPACE)
                inventory = switch_inventory(tmp / "hosts.yml", kube, sim, nodes, nvml_lib, tmp)
                cli_switch(sim, kube, nvml_lib, tmp, nodes, "ml")  # not measured: every node's gpu-mode at once
                check_fleet(kube, nodes, "ml")
                single = playbook(inventory, "r1", forks, limit=nodes[0])
                print(describe("single: %s ml -> r1" % nodes[0], single))
                cli_switch(sim, kube, nvml_lib, tmp, nodes[:1], "ml")  # not measured
                check_fleet(kube, nodes, "ml")
                fleet = playbook(inventory, "r1", forks)
                check_fleet(kube, nodes, "r1")
                print(describe("fleet: %d nodes ml -> r1" % len(nodes), fleet))
                # the same playbook with nothing to do: what Ansible and Python cost per run and per host here
                noop_single = playbook(inventory, "r1", forks, limit=nodes[0], outcome="unchanged")
                noop_fleet = playbook(inventory, "r1", forks, outcome="unchanged")
                print(describe("no-op: %s r1 -> r1" % nodes[0], noop_single))
                print(describe("no-op: %d nodes r1 -> r1" % len(nodes), noop_fleet))
            finally:
                kube.close()
            if sim.errors:
                raise RuntimeError("the simulated cluster reported errors: %s" % sim.errors[:5])

    ratio = fleet["wall"] / single["wall"]
    per_host = (noop_fleet["wall"] - noop_single["wall"]) / max(1, len(nodes) - 1)
    print("Ansible and Python start-up (the no-op runs: ansible-playbook, its tasks, each host's module process with "
          "the kubernetes client): %.2f s for one node, %.2f s for %d (%.2f s more per extra host; %.2f CPU seconds "
          "per host, on %d cores): %.0f%% of single_s, %.0f%% of fleet_s. Beyond it, the switching took %.2f s for "
          "one node and %.2f s for %d. Here every host's module runs on this machine, beside the simulated "
          "cluster; on a real fleet each node runs its own. Load average at the end %.1f (other work on this "
          "machine slows every figure)" % (
              noop_single["wall"], noop_fleet["wall"], len(nodes), per_host,
              (noop_fleet["cpu"] - noop_single["cpu"]) / max(1, len(nodes) - 1), os.cpu_count() or 0,
              100.0 * noop_single["wall"] / single["wall"], 100.0 * noop_fleet["wall"] / fleet["wall"],
              single["wall"] - noop_single["wall"], fleet["wall"] - noop_fleet["wall"], len(nodes), os.getloadavg()[0]))
    print("goal: ratio under 1.5 %s" % ("met" if ratio < 1.5 else "MISSED"))
    print("fleet nodes=%d single_s=%.2f fleet_s=%.2f ratio=%.2f" % (len(nodes), single["wall"], fleet["wall"], ratio))
    return 0


if __name__ == "__main__":
    sys.exit(main())
