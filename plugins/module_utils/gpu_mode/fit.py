# -*- coding: utf-8 -*-
# Copyright: baremetal.gpu maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Does a mode fit its GPU node? The compatibility preflight (``compat.check``) over the mode's workloads
together, on the node's GPU facts as they will be once the node's mode-bound pods are gone.

What other processes hold stays counted (a dual-use GPU, a desktop session); what the node's model servers
hold now does not (the switch stops them first). Workloads of the mode that share a GPU (time-slicing, or
more workloads than GPUs) are each other's co-located budget.
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


def check_mode_fit(facts_fn, book, mode, deployments, cluster, proc_root="/proc"):
    """One verdict per workload of ``mode``: ``[{workload, verdict, why, reasons}]``."""
    bound_uids = set()
    for deployment in deployments.values():
        bound_uids.update(p["metadata"]["uid"] for p in cluster.pods(deployment))
    facts = facts_without(facts_fn(), bound_uids, proc_root)
    workloads = book["modes"][mode]["workloads"]
    infos = dict((name, workload_info(deployments[name])) for name in workloads)
    shared = len(infos) > max(1, int(facts.get("gpu_count") or len(facts.get("gpus") or []) or 1))
    out = []
    for name, info in sorted(infos.items()):
        if not info["compat"]:
            out.append({"workload": name, "verdict": "unknown", "why": "no compatibility data on the Deployment",
                        "reasons": []})
            continue
        colocated = []
        if shared:
            for other, other_info in sorted(infos.items()):
                if other != name and other_info["compat"]:
                    util = other_info["compat"]["model"].get("gpu_memory_utilization", 0.9)
                    colocated.append({"name": other, "gpu_memory_utilization": util})
        result = compat.check(info["compat"]["image"], facts, info["compat"]["model"], colocated=colocated)
        fails = [r for r in result["reasons"] if r["severity"] == "fail"]
        why = "; ".join(r["message"] + (" (fix: %s)" % r["fix"] if r.get("fix") else "") for r in fails)
        out.append({"workload": name, "verdict": result["verdict"], "why": why, "reasons": result["reasons"]})
    return out
