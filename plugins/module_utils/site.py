# -*- coding: utf-8 -*-
# Copyright: baremetal.gpu maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What site.yml decides at the site level, as plain functions over plain data (the filters in
plugins/filter/site.py expose them to the playbooks):

- which catalog workloads the preflight checks on which GPU node (``node_workloads``): a workload some
  node's GPU modes name is *mode-bound* to that node and runs there only; the others run wherever their
  placement lets them, so they are checked on every GPU node; ``enabled: false`` entries never run;
- the summary printed at the end of a run (``summary_lines``): per node its driver, GPUs, k3s, active
  mode and the stages skipped on it (with the reason), the endpoints, and the time each stage took.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

# The stages of site.yml, in the order they run: (key, what the summary calls it).
STAGES = (
    ("preflight", "preflight"),
    ("driver", "NVIDIA driver"),
    ("k3s", "k3s"),
    ("container_toolkit", "container toolkit"),
    ("device_plugin", "device plugin"),
    ("vllm", "vllm"),
    ("gpu_mode", "gpu_mode"),
    ("gpu_router", "gpu_router"),
    ("health", "health check"),
)
STAGE_KEYS = tuple(stage[0] for stage in STAGES)
NODE_STAGES = ("os", "driver", "k3s", "container_toolkit")


class SiteError(ValueError):
    """Bad input, said in one sentence that names the variable."""


def _entries(catalog):
    if catalog is None:
        return []
    if isinstance(catalog, dict):
        return [dict(value, name=value.get("name", key)) for key, value in catalog.items()]
    if not isinstance(catalog, list):
        raise SiteError("the workloads must be a list of catalog entries (or a mapping name -> entry)")
    for index, entry in enumerate(catalog):
        if not isinstance(entry, dict):
            raise SiteError("workload %d is not a mapping: %r" % (index, entry))
    return [dict(entry) for entry in catalog]


def mode_workload_names(modes):
    """Catalog entry names a node's ``gpu_modes`` name (workloads as a list, or a mapping entry -> replicas)."""
    names = set()
    for mode in (modes or {}).values():
        workloads = (mode or {}).get("workloads") or []
        names.update(workloads.keys() if isinstance(workloads, dict) else workloads)
    return names


def mode_bound(hosts, hostvars):
    """{catalog entry name: inventory host whose modes name it}."""
    bound = {}
    for host in hosts or []:
        for name in sorted(mode_workload_names(hostvars[host].get("gpu_modes"))):
            bound.setdefault(name, host)
    return bound


def node_workloads(catalog, host, hosts, hostvars):
    """The enabled entries of ``catalog`` that may run on ``host``: those its own modes name, those no node's
    modes name (unless an entry's ``nodes`` list leaves it out), never one bound to another node."""
    bound = mode_bound(hosts, hostvars)
    out = []
    for entry in _entries(catalog):
        if entry.get("enabled", True) is False:
            continue
        name = entry.get("name") or entry.get("model")
        owner = bound.get(name)
        if owner is not None and owner != host:
            continue
        if owner is None and "nodes" in entry and host not in (entry.get("nodes") or []):
            continue
        out.append(entry)
    return out


def _seconds(value):
    return "%.1f s" % value if value < 100 else "%d min %02d s" % divmod(int(round(value)), 60)


def stage_times(clock, finished):
    """[(stage label, seconds)] from each stage's start time (``clock``: key -> epoch seconds) to the next
    stage's start, the last one to ``finished``. Stages that never started are left out."""
    started = [(key, label, float(clock[key])) for key, label in STAGES if key in (clock or {})]
    out = []
    for index, (unused_stage, label, start) in enumerate(started):
        end = started[index + 1][2] if index + 1 < len(started) else float(finished)
        out.append((label, max(0.0, end - start)))
    return out


def _gpus(facts):
    gpus = (facts or {}).get("gpus") or []
    if not gpus:
        return "none seen (%s)" % ((facts or {}).get("reason") or "no facts")
    names = {}
    for gpu in gpus:
        label = "%s %s MiB" % (gpu.get("name", "GPU"), gpu.get("memory_total_mib", "?"))
        names[label] = names.get(label, 0) + 1
    return ", ".join("%dx %s" % (count, label) for label, count in sorted(names.items()))


def _mode(node):
    switch = node.get("mode") or {}
    if not switch:
        return "-" if not node.get("modes") else "not activated"
    to = switch.get("to") or "?"
    outcome = switch.get("outcome") or "?"
    if outcome == "unchanged":
        return "%s (active and serving, left as it was)" % to
    if outcome == "switched":
        return "%s (activated: %s -> %s)" % (to, switch.get("from") or "none", to)
    return "%s (%s)" % (to, outcome)


def summary_lines(nodes, endpoints, clock, finished, simulated=""):
    """The summary site.yml prints last.

    ``nodes``: [{name, host, driver: {version, branch}, gpus: gpu facts, k3s: {version, role} or None,
    modes: [names], mode: the gpu_mode switch result or None, skipped: {stage: reason}}];
    ``endpoints``: [{name, namespace, service, port, served_model_names, ingress_hosts, replicas}];
    ``clock``: stage -> start epoch seconds; ``simulated``: a note printed first when the run is a
    simulation (the first try)."""
    lines = []
    if simulated:
        lines.append("SIMULATED: %s" % simulated)
    for node in nodes or []:
        driver = node.get("driver") or {}
        k3s = node.get("k3s") or {}
        lines.append("node %s (inventory host %s)" % (node.get("name"), node.get("host")))
        lines.append("  driver:  %s" % ("%s (branch %s)" % (driver.get("version"), driver.get("branch"))
                                        if driver.get("version") else "not loaded (%s)" % (driver.get("reason") or "?")))
        lines.append("  GPUs:    %s" % _gpus(node.get("gpus")))
        lines.append("  k3s:     %s" % ("%s %s" % (k3s.get("version"), k3s.get("role")) if k3s.get("version") else "-"))
        lines.append("  modes:   %s" % (", ".join(node.get("modes") or []) or "-"))
        lines.append("  active:  %s" % _mode(node))
        for stage, reason in sorted((node.get("skipped") or {}).items()):
            lines.append("  skipped: %s: %s" % (stage, reason))
    for point in endpoints or []:
        target = "%s/%s:%s" % (point.get("namespace"), point.get("service"), point.get("port"))
        hosts = ", ".join("http://%s/" % h for h in point.get("ingress_hosts") or [])
        names = ", ".join(point.get("served_model_names") or [])
        served = " (%s)" % names if names else ""
        ingress = "; ingress %s" % hosts if hosts else ""
        lines.append("endpoint %s: %s%s%s" % (point.get("name"), target, served, ingress))
    times = stage_times(clock, finished)
    if times:
        lines.append("time: " + ", ".join("%s %s" % (label, _seconds(sec)) for label, sec in times)
                     + "; total %s" % _seconds(sum(time[1] for time in times)))
    return lines


def serving_endpoints(plan, active):
    """The endpoints that serve after a run: every workload that runs regardless of modes (replicas > 0),
    plus the workloads of each node's active mode. ``plan``: the vllm role's ``vllm_plan``; ``active``:
    {Kubernetes node name: active mode name}."""
    plan = plan or {}
    running = set()
    for book in plan.get("gpu_nodes") or []:
        mode = (book.get("modes") or {}).get(active.get(book.get("node")) or "") or {}
        running.update(name for name, replicas in (mode.get("workloads") or {}).items() if replicas)
    services = dict((svc["name"], svc) for svc in plan.get("services") or [])
    out = []
    for workload in plan.get("workloads") or []:
        if not (workload.get("replicas") or workload.get("full_name") in running):
            continue
        ingress = (services.get(workload["service"]) or {}).get("ingress") or {}
        out.append({"name": workload["name"], "namespace": workload["namespace"], "service": workload["service"],
                    "port": workload["service_port"], "served_model_names": workload.get("served_model_names") or [],
                    "ingress_hosts": [ingress["host"]] if ingress.get("host") else [],
                    "health": workload.get("health") or {}})
    return out


def node_name(host, host_vars):
    """The Kubernetes node name of an inventory host: ``gpu_node_name``, else the inventory hostname."""
    return str(host_vars.get("gpu_node_name") or host)


def gpu_node_names(hosts, hostvars):
    """Kubernetes names of the GPU nodes whose GPU stages ran (``site_gpu_ready``): each must advertise GPUs."""
    return [node_name(h, hostvars[h]) for h in hosts or [] if hostvars[h].get("site_gpu_ready") in (True, "True")]


def active_modes(hosts, hostvars):
    """{node name: the mode the gpu_mode stage left active} for nodes whose activation switched or found it
    serving."""
    out = {}
    for host in hosts or []:
        switch = hostvars[host].get("gpu_mode_switch") or {}
        if switch.get("outcome") in ("switched", "unchanged") and switch.get("to"):
            out[node_name(host, hostvars[host])] = switch["to"]
    return out


def node_report(host, host_vars):
    """What the summary says of one GPU node, from the facts its stages left."""
    facts = host_vars.get("preflight_facts") or {}
    version = facts.get("driver_version")
    k3s = host_vars.get("k3s_gpu_worker_node") or {}
    modes = host_vars.get("gpu_modes") or {}
    switch = host_vars.get("gpu_mode_switch") or {}
    return {
        "host": host,
        "name": node_name(host, host_vars),
        "driver": {"version": version, "branch": str(version).split(".", 1)[0] if version else None,
                   "reason": facts.get("reason")},
        "gpus": facts,
        "k3s": {"version": k3s.get("version"), "role": k3s.get("role")} if k3s else None,
        "modes": sorted(set(modes) | {"off"}) if modes else [],
        "mode": {"from": switch.get("from"), "to": switch.get("to"), "outcome": switch.get("outcome")}
        if switch.get("outcome") else None,
        "skipped": dict(host_vars.get("site_skip") or {}),
    }
