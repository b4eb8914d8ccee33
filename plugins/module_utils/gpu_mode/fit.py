# -*- coding: utf-8 -*-
# Copyright: baremetal.gpu maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Does a mode fit its GPU node? The compatibility preflight (``compat.check``) over the mode's workloads
together, on the node's GPU facts as they will be once the node's mode-bound pods are gone.

What other processes hold stays counted (a dual-use GPU, a desktop session); what the node's model servers
hold now does not (the switch stops them, or puts them to sleep, first). Workloads of the mode that share a
GPU (time-slicing, or more resident workloads than GPUs) are each other's co-located budget; the mode's
standby workloads count with what they keep asleep (their residue), and each of them must have been able
to start next to the other sleepers. Two resident pods on one GPU each request ``nvidia.com/gpu``: the
node must advertise enough of them (the device plugin's time-slicing), and the sleepers' weights copied to
host RAM must fit the node's memory for pods.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy

from ansible_collections.baremetal.gpu.plugins.module_utils import compat
from ansible_collections.baremetal.gpu.plugins.module_utils.gpu_mode.cluster import workload_info
from ansible_collections.baremetal.gpu.plugins.module_utils.gpu_mode.release import pod_uid_of_pid


def facts_without(facts, pod_uids, proc_root="/proc"):
    """GPU facts with the memory of the processes of ``pod_uids`` taken away (as if those pods had stopped)."""
    out = copy.deepcopy(facts)
    for gpu in out.get("gpus") or []:
        freed = 0
        kept = []
        for proc in gpu.get("processes") or []:
            if pod_uid_of_pid(proc.get("pid"), proc_root) in pod_uids:
                freed += proc.get("used_memory_mib") or 0
            else:
                kept.append(proc)
        gpu["processes"] = kept
        if gpu.get("memory_used_mib") is not None:
            gpu["memory_used_mib"] = max(0, gpu["memory_used_mib"] - freed)
        if gpu.get("memory_free_mib") is not None:
            gpu["memory_free_mib"] += freed
    return out


def _gpus_of(deployment):
    containers = (((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or []
    total = 0
    for container in containers:
        limits = (container.get("resources") or {}).get("limits") or {}
        try:
            total += int(limits.get("nvidia.com/gpu") or 0)
        except (TypeError, ValueError):
            continue
    return total


def node_capacity(node):
    """``(nvidia.com/gpu allocatable, memory allocatable MiB)`` of a Node object (None where unknown)."""
    from ansible_collections.baremetal.gpu.plugins.module_utils.catalog import quantity_mib

    allocatable = ((node or {}).get("status") or {}).get("allocatable") or {}
    gpus = allocatable.get("nvidia.com/gpu")
    try:
        memory = quantity_mib(allocatable.get("memory"))
    except ValueError:
        memory = None
    return (int(gpus) if gpus not in (None, "") else None), (int(memory) if memory is not None else None)


def _verdict(name, result):
    fails = [r for r in result["reasons"] if r["severity"] == "fail"]
    why = "; ".join(r["message"] + (" (fix: %s)" % r["fix"] if r.get("fix") else "") for r in fails)
    return {"workload": name, "verdict": result["verdict"], "why": why, "reasons": result["reasons"]}


def check_mode_fit(facts_fn, book, mode, deployments, cluster, proc_root="/proc"):
    """One verdict per workload of ``mode`` (its standby workloads as ``<name> (standby)``), plus one for the
    node's GPU count when the mode keeps more pods than it has: ``[{workload, verdict, why, reasons}]``."""
    # the GPU first, the pods second: a process NVML shows belongs to a pod that existed then, so the list
    # that follows has it (a pod created between a list and the GPU reading would look like a stranger)
    gpu_facts = facts_fn()
    bound_uids = set()
    for deployment in deployments.values():
        bound_uids.update(p["metadata"]["uid"] for p in cluster.pods(deployment))
    facts = facts_without(gpu_facts, bound_uids, proc_root)
    spec = book["modes"][mode]
    awake = dict(spec["workloads"])
    sleepers = dict(spec.get("standby") or {})
    node = cluster.node_object() if sleepers else None
    gpu_slots, host_mib = node_capacity(node)
    if host_mib is not None:
        facts["host_memory_mib"] = host_mib
    infos = dict((name, workload_info(deployments[name])) for name in list(awake) + list(sleepers))
    gpu_count = max(1, int(facts.get("gpu_count") or len(facts.get("gpus") or []) or 1))
    shared = len(infos) > gpu_count
    standby_of = dict((name, {"name": name, "image": infos[name]["compat"]["image"],
                              "model": infos[name]["compat"]["model"]})
                      for name in sleepers if infos[name]["compat"])
    out = []
    for name, info in sorted(infos.items()):
        label = name + (" (standby)" if name in sleepers else "")
        if not info["compat"]:
            out.append({"workload": label, "verdict": "unknown", "why": "no compatibility data on the Deployment",
                        "reasons": []})
            continue
        colocated = []
        standby = []
        if shared:
            if name in awake:  # awake beside the other awake ones (their shares) and the sleepers (their residue)
                for other in sorted(awake):
                    if other != name and infos[other]["compat"]:
                        util = infos[other]["compat"]["model"].get("gpu_memory_utilization", 0.9)
                        colocated.append({"name": other, "gpu_memory_utilization": util})
            standby = [standby_of[s] for s in sorted(standby_of) if s != name]
        result = compat.check(info["compat"]["image"], facts, info["compat"]["model"], colocated=colocated,
                              standby=standby)
        out.append(_verdict(label, result))
    if sleepers:
        wanted = sum(_gpus_of(deployments[n]) * (awake.get(n) or sleepers.get(n) or 1) for n in infos)
        if gpu_slots is None:
            out.append({"workload": "node %s" % cluster.node, "verdict": "unknown", "reasons": [],
                        "why": "the Node cannot be read, so its nvidia.com/gpu count is not checked"})
        elif wanted > gpu_slots:
            out.append({"workload": "node %s" % cluster.node, "verdict": "fail", "reasons": [],
                        "why": "mode %s keeps %d pods resident (%s) requesting %d nvidia.com/gpu, but the node advertises "
                               "%d: time-slice its GPU into at least %d (the nvidia_device_plugin role's "
                               "nvidia_device_plugin_configs, e.g. {ts%d: {replicas: %d}}, picked by the node's "
                               "k3s_gpu_worker_device_plugin_config)"
                               % (mode, len(infos), ", ".join("%s %s" % (n, "asleep" if n in sleepers else "awake")
                                                              for n in sorted(infos)),
                                  wanted, gpu_slots, wanted, wanted, wanted)})
    return out
