# -*- coding: utf-8 -*-
# Copyright: baremetal.gpu maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What ``gpu-mode status`` and ``gpu-mode list`` show, and the summary of a switch, as data and as text.

Everything comes from the cluster (the node's ConfigMap, its Deployments and pods) and from the GPU itself
(NVML on the node, processes mapped to pods through their cgroups): nothing from files on the node.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.baremetal.gpu.plugins.module_utils.gpu_mode import modes, standby, state
from ansible_collections.baremetal.gpu.plugins.module_utils.gpu_mode.cluster import NodeCluster, workload_info
from ansible_collections.baremetal.gpu.plugins.module_utils.gpu_mode.release import pod_uid_of_pid


def gpu_facts():
    from ansible_collections.baremetal.gpu.plugins.module_utils import gpu

    return gpu.gather("auto")


def _pod_names(cluster):
    try:
        return dict((p["metadata"]["uid"], "%s/%s" % (p["metadata"]["namespace"], p["metadata"]["name"]))
                    for p in cluster.kube.items("v1", "Pod", cluster.namespace))
    except Exception:  # pylint: disable=broad-except  # a status without pod names is still useful
        return {}


def gpu_memory(facts, pod_names, proc_root="/proc"):
    """Per GPU: name, used/total MiB and each process with its pod (when it runs in one)."""
    out = []
    for g in facts.get("gpus") or []:
        procs = []
        for p in g.get("processes") or []:
            uid = pod_uid_of_pid(p.get("pid"), proc_root)
            procs.append({"pid": p.get("pid"), "name": p.get("name"), "used_mib": p.get("used_memory_mib"),
                          "pod": pod_names.get(uid) or (("pod uid " + uid) if uid else None)})
        out.append({"index": g.get("index"), "name": g.get("name"), "used_mib": g.get("memory_used_mib"),
                    "reserved_mib": g.get("memory_reserved_mib"), "total_mib": g.get("memory_total_mib"),
                    "processes": procs})
    return out


def status(kube, namespace, node, proc_root="/proc", facts_fn=gpu_facts):
    cluster = NodeCluster(kube, namespace, node)
    configmap = cluster.configmap()
    book = cluster.book(configmap)
    recorded = state.read(configmap)
    deployments = cluster.deployments(modes.bound_deployments(book))
    workloads = []
    for name in modes.bound_deployments(book):
        d = deployments.get(name)
        if d is None:
            workloads.append({"name": name, "state": "missing"})
            continue
        spec_replicas = int((d.get("spec") or {}).get("replicas") or 0)
        ready = int((d.get("status") or {}).get("readyReplicas") or 0)
        info = workload_info(d)
        sleep = standby.sleep_info(d)
        entry = {"name": name, "replicas": spec_replicas, "ready": ready,
                 "state": "stopped" if not spec_replicas else ("ready" if ready >= spec_replicas else "starting"),
                 "serves": info["served_model_names"],
                 "modes": sorted(m for m, spec in book["modes"].items() if name in spec["workloads"]),
                 "standby_in": sorted(m for m, spec in book["modes"].items() if name in (spec.get("standby") or {}))}
        if sleep and spec_replicas:
            # awake, asleep or unknown (not answering yet), per pod, from the server itself
            pods = cluster.pods(d)
            answers = [standby.is_sleeping(kube, p, sleep["engine_port"]) for p in pods]
            entry["pods"] = dict((p["metadata"]["name"], {True: "asleep", False: "awake"}.get(a, "unknown"))
                                 for p, a in zip(pods, answers))
            if answers and all(a is True for a in answers):
                entry["state"] = "asleep"
            elif answers and all(a is False for a in answers) and entry["state"] == "ready":
                entry["state"] = "awake"
        elif spec_replicas and entry["state"] == "ready":
            entry["state"] = "awake"
        workloads.append(entry)
    try:
        facts = facts_fn()
        if facts.get("gpus"):
            memory = gpu_memory(facts, _pod_names(cluster), proc_root)
        else:  # no driver, or no GPU: say why rather than show nothing
            memory = {"error": facts.get("reason") or "no NVIDIA GPU found"}
    except Exception as exc:  # pylint: disable=broad-except  # off the node, or no driver
        memory = {"error": str(exc)}
    return {"node": node, "namespace": namespace, "mode": recorded["mode"], "default": book.get("default"),
            "last": recorded["last"], "history": recorded["history"][:5], "workloads": workloads, "gpus": memory}


def mode_list(kube, namespace, node, proc_root="/proc", facts_fn=gpu_facts):
    from ansible_collections.baremetal.gpu.plugins.module_utils.gpu_mode import fit

    cluster = NodeCluster(kube, namespace, node)
    configmap = cluster.configmap()
    book = cluster.book(configmap)
    active = state.read(configmap)["mode"]
    deployments = cluster.deployments(modes.bound_deployments(book))
    out = []
    for name in sorted(book["modes"]):
        spec = book["modes"][name]
        missing = [w for w in spec["workloads"] if w not in deployments]
        if missing:
            verdict, why = "fail", "missing Deployment(s) %s" % ", ".join(missing)
        elif not spec["workloads"]:
            verdict, why = "ok", ""
        else:
            verdicts = fit.check_mode_fit(facts_fn, book, name, deployments, cluster, proc_root)
            order = {"fail": 3, "unknown": 2, "warn": 1, "ok": 0}
            verdict = max((v["verdict"] for v in verdicts), key=lambda v: order.get(v, 2))
            why = "; ".join("%s: %s" % (v["workload"], v["why"]) for v in verdicts if v["why"])
        out.append({"mode": name, "default": name == book.get("default"), "active": name == active,
                    "description": spec.get("description") or "", "workloads": spec["workloads"],
                    "fit": verdict, "why": why})
    return {"node": node, "namespace": namespace, "modes": out}


# ---------------------------------------------------------------------- text


def _phases(phases):
    return ", ".join("%s %.1f" % (k, v) for k, v in phases.items() if v >= 0.05) or "-"


def status_text(data):
    lines = ["node %s  mode %s%s" % (data["node"], data["mode"] or "(none recorded)",
                                     " (default)" if data["mode"] and data["mode"] == data["default"] else "")]
    last = data.get("last")
    if last:
        lines.append("  last switch: %s -> %s %s at %s by %s (%s)" % (
            last.get("from") or "-", last.get("to"), last.get("outcome"), last.get("finished_at"), last.get("by"),
            _phases(last.get("phases") or {})))
    lines.append("workloads:")
    for w in data["workloads"]:
        if w["state"] == "missing":
            lines.append("  %-28s missing (run site.yml)" % w["name"])
            continue
        lines.append("  %-28s %-8s %d/%d ready  modes %s%s  serves %s" % (
            w["name"], w["state"], w["ready"], w["replicas"], ",".join(w["modes"]) or "-",
            "  standby in %s" % ",".join(w["standby_in"]) if w.get("standby_in") else "",
            ", ".join(w["serves"]) or "-"))
    gpus = data["gpus"]
    if isinstance(gpus, dict):
        lines.append("GPU memory: unavailable here (%s)" % gpus.get("error"))
    else:
        for g in gpus:
            lines.append("GPU %s %s: %s of %s MiB used" % (g["index"], g["name"], g["used_mib"], g["total_mib"]))
            for p in g["processes"]:
                lines.append("  pid %-8s %-16s %7s MiB  %s" % (p["pid"], p["name"] or "?", p["used_mib"], p["pod"] or
                                                               "(not in a pod of this namespace)"))
    if data["history"]:
        lines.append("last switches:")
        for h in data["history"]:
            lines.append("  %s  %s -> %s  %s%s" % (h.get("finished_at"), h.get("from") or "-", h.get("to"),
                                                   h.get("outcome"), (": " + h["error"][:120]) if h.get("error") else ""))
    return "\n".join(lines)


def list_text(data):
    lines = ["%-12s %-7s %-6s %-7s %-36s %s" % ("MODE", "DEFAULT", "ACTIVE", "FIT", "WORKLOADS", "DESCRIPTION")]
    for m in data["modes"]:
        workloads = ", ".join("%s%s" % (w, "" if r == 1 else " x%d" % r) for w, r in sorted(m["workloads"].items()))
        lines.append("%-12s %-7s %-6s %-7s %-36s %s" % (
            m["mode"], "*" if m["default"] else "", "*" if m["active"] else "", m["fit"], workloads or "-",
            m["description"]))
        if m["why"]:
            lines.append("%-12s %s" % ("", m["why"]))
    return "\n".join(lines)


def switch_text(result):
    if result.get("noop"):
        return "node %s is already in mode %s and serving: nothing to do (%.2f s)" % (
            result["node"], result["to"], result.get("total_seconds") or 0)
    plan = result.get("plan") or {}
    head = "node %s: %s -> %s" % (result["node"], result.get("from") or "(none)", result["to"])
    if result.get("outcome") == "planned":
        return "\n".join([head + " (dry run: nothing changed)",
                          "  stop:  %s" % (", ".join(plan.get("stop") or []) or "-"),
                          "  start: %s" % (", ".join("%s x%d" % kv for kv in sorted((plan.get("start") or {}).items()))
                                           or "-"),
                          "  keep:  %s" % (", ".join(sorted(plan.get("keep") or {})) or "-")] +
                         (["  sleep: %s" % ", ".join(plan["sleep"])] if plan.get("sleep") else []) +
                         (["  wake:  %s" % ", ".join(sorted(plan["wake"]))] if plan.get("wake") else []) +
                         (["  start asleep: %s" % ", ".join(plan["standby_start"])] if plan.get("standby_start") else []) +
                         (["  asleep: %s" % ", ".join(plan["keep_asleep"])] if plan.get("keep_asleep") else []) +
                         ["  expected load: about %.0f s" % (result.get("expected_load_seconds") or 0)])
    return "%s %s in %.1f s (%s)" % (head, result.get("outcome"), result.get("total_seconds") or 0,
                                     _phases(result.get("phases") or {}))
