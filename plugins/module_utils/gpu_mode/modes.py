# -*- coding: utf-8 -*-
# Copyright: baremetal.gpu maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""GPU modes: their definitions (inventory and cluster) and the plan of a switch between two of them.

A *mode* of a GPU node is the set of workloads (Deployments, with replicas) that own its GPUs while it is
active; ``off`` owns nothing. A mode may also keep *standby* workloads resident but asleep (vLLM's sleep
mode): they hold only their residue on the GPU, and a switch to a mode they serve wakes them up in about
a second instead of loading them. The inventory defines modes per GPU node (``gpu_modes``, catalog entry names);
the ``vllm`` role stores them in the cluster, in the node's ConfigMap ``gpu-mode-<node>`` (key
``modes.json``, Deployment names), and everything that switches reads them from there.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import re

OFF = "off"
HOSTNAME_LABEL = "kubernetes.io/hostname"
MODES_KEY = "modes.json"
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


class ModeError(ValueError):
    """A mode that cannot be used; the message says why and what is valid."""


def configmap_name(node):
    """Name of a GPU node's mode ConfigMap and Lease (node names are DNS subdomains, so are these)."""
    return "gpu-mode-" + node


def normalize_inventory_modes(gpu_modes, catalog_names, where="gpu_modes"):
    """``gpu_modes`` of one GPU node, as the inventory writes it, checked and normalized.

    Each mode: ``{description, default, workloads, standby}`` where workloads is a list of catalog entry names
    or a mapping name -> replicas, and standby a list of catalog entries kept resident but asleep while the
    mode is active (one replica each). ``off`` (no workloads, no standby) is always there. Returns
    ``(modes, default, problems)``; modes: ``{name: {"description": str, "workloads": {entry: replicas}}}``,
    plus ``"standby": {entry: 1}`` for a mode that has standby workloads.
    """
    problems = []
    modes = {}
    default = None
    if gpu_modes is None:
        gpu_modes = {}
    if not isinstance(gpu_modes, dict):
        return {}, None, ["%s must be a mapping of mode name -> {description, default, workloads}" % where]
    for name, spec in gpu_modes.items():
        name = str(name)
        here = "%s.%s" % (where, name)
        if not _NAME.match(name):
            problems.append("%s: a mode name must be lower case letters, digits and '-'" % here)
            continue
        if isinstance(spec, str):  # the old form, name: description
            spec = {"description": spec}
        if not isinstance(spec, dict):
            problems.append("%s must be a mapping with description, default, workloads" % here)
            continue
        unknown = sorted(set(spec) - {"description", "default", "workloads", "standby"})
        if unknown:
            problems.append("%s: unknown key(s) %s (allowed: description, default, workloads, standby)"
                            % (here, ", ".join(unknown)))
        raw = spec.get("workloads")
        if raw is None:
            raw = []
        if isinstance(raw, list):
            workloads = dict((str(w), 1) for w in raw)
        elif isinstance(raw, dict):
            workloads = {}
            for entry, replicas in raw.items():
                try:
                    workloads[str(entry)] = int(replicas)
                except (TypeError, ValueError):
                    problems.append("%s.workloads.%s: replicas must be an integer, got %r" % (here, entry, replicas))
                    continue
                if workloads[str(entry)] < 1:
                    problems.append("%s.workloads.%s: replicas must be at least 1 (leave the entry out of "
                                    "the mode instead)" % (here, entry))
        else:
            problems.append("%s.workloads must be a list of catalog entries or a mapping entry -> replicas" % here)
            workloads = {}
        if name == OFF and workloads:
            problems.append("%s: mode off frees the GPU and cannot have workloads" % here)
        for entry in sorted(workloads):
            if entry not in catalog_names:
                problems.append("%s: workload %s is not a vllm_catalog entry (known: %s)"
                                % (here, entry, ", ".join(sorted(catalog_names)) or "none"))
        standby, standby_problems = _standby_of(spec.get("standby"), here, name, workloads, catalog_names)
        problems.extend(standby_problems)
        if spec.get("default"):
            if default is not None:
                problems.append("%s: more than one default mode (%s and %s)" % (where, default, name))
            default = name
        modes[name] = {"description": str(spec.get("description") or ""), "workloads": workloads}
        if standby:
            modes[name]["standby"] = standby
    modes.setdefault(OFF, {"description": "no model: the GPU is free", "workloads": {}})
    if default is None and len(modes) > 1:
        problems.append("%s: mark one mode default: true (the mode a fresh node starts in)" % where)
    for entry in sorted(set(e for spec in modes.values() for e in spec.get("standby") or {})):
        many = sorted(m for m, spec in modes.items() if spec["workloads"].get(entry, 1) != 1)
        if many:
            problems.append("%s: %s is a standby workload, so it runs one replica (a sleeping server is one process on "
                            "its GPU), but mode(s) %s ask for more" % (where, entry, ", ".join(many)))
    return modes, default, problems


def _standby_of(raw, here, mode, workloads, catalog_names):
    """A mode's ``standby`` list, checked: ``({entry: 1}, problems)``."""
    if raw is None:
        return {}, []
    if not isinstance(raw, list) or not all(isinstance(e, str) for e in raw):
        return {}, ["%s.standby must be a list of catalog entries kept resident but asleep" % here]
    problems = []
    if mode == OFF and raw:
        problems.append("%s: mode off frees the GPU and cannot keep standby workloads (a sleeper holds GPU memory)"
                        % here)
    for entry in raw:
        if entry not in catalog_names:
            problems.append("%s: standby %s is not a vllm_catalog entry (known: %s)"
                            % (here, entry, ", ".join(sorted(catalog_names)) or "none"))
        if entry in workloads:
            problems.append("%s: %s is both a workload (awake) and standby (asleep) of the mode" % (here, entry))
    return dict((e, 1) for e in raw), problems


def book_from_configmap(configmap):
    """The mode book stored in a node's ConfigMap: ``{node, namespace, default, modes}``."""
    data = (configmap or {}).get("data") or {}
    text = data.get(MODES_KEY)
    if not text:
        raise ModeError("ConfigMap %s has no %s: run site.yml (the vllm role) to define this node's modes"
                        % ((configmap or {}).get("metadata", {}).get("name"), MODES_KEY))
    try:
        book = json.loads(text)
    except ValueError as exc:
        raise ModeError("%s in ConfigMap %s is not JSON: %s" % (MODES_KEY, configmap["metadata"]["name"], exc))
    book.setdefault("modes", {})
    book["modes"].setdefault(OFF, {"description": "no model: the GPU is free", "workloads": {}})
    for spec in book["modes"].values():
        spec.setdefault("workloads", {})
        spec.setdefault("standby", {})
    return book


def describe_modes(book):
    """``["ml (default): Qwen3-8B AWQ", ...]`` for messages and ``gpu-mode list``."""
    out = []
    for name in sorted(book["modes"]):
        spec = book["modes"][name]
        label = name + (" (default)" if name == book.get("default") else "")
        standby = " (standby: %s)" % ", ".join(sorted(spec["standby"])) if spec.get("standby") else ""
        out.append("%s: %s%s" % (label, spec.get("description") or ", ".join(sorted(spec.get("workloads") or {})) or "-",
                                 standby))
    return out


def check_mode(book, mode):
    """Raise ModeError unless ``mode`` is one of the book's modes (listing them with their descriptions)."""
    if mode not in book["modes"]:
        raise ModeError("unknown mode %r for node %s; valid modes: %s"
                        % (mode, book.get("node"), "; ".join(describe_modes(book))))


def plan(book, current, target, live, asleep=(), sleepable=None, unanswered=()):
    """What a switch to ``target`` does, from what really runs.

    ``live``: ``{deployment: spec.replicas}`` of the node's mode-bound Deployments that exist (what runs is
    read from the cluster, not assumed from the recorded mode, so a hand-scaled Deployment is stopped too).
    ``asleep``: the running Deployments whose servers all say they are asleep (``GET /is_sleeping``);
    ``sleepable``: those that can be put to sleep (None: all); ``unanswered``: running sleep-mode Deployments
    with a server that answers neither way (starting, crashing: e.g. a sleeper's pod that was recreated and
    cannot start beside the awake model), which a target keeping them in standby restarts.

    Returns ``{"from", "to", "stop", "start", "keep", "missing", "sleep", "wake", "standby_start",
    "keep_asleep"}``: ``stop`` leaves the GPU, ``start`` is scaled to its replicas (loads cold), ``keep``
    already runs awake as the target wants, ``missing`` are target workloads with no Deployment, ``sleep``
    are running servers put to sleep (the target keeps them in standby), ``wake`` are the target's servers
    that are resident and asleep, ``standby_start`` are the target's standby workloads that do not run
    yet (started, then put to sleep), ``keep_asleep`` the standby workloads already asleep.

    Standby workloads are started while nothing of the target is awake, so that each can have its share at
    start-up: when some must start, the target's awake workloads that already run are put to sleep first
    and woken at the end (in ``sleep`` and ``wake``), or restarted (``stop`` and ``start``) when they cannot
    sleep.
    """
    check_mode(book, target)
    spec = book["modes"][target]
    wanted = dict(spec["workloads"])
    standby = dict(spec.get("standby") or {})
    asleep = set(asleep)
    can_sleep = (lambda d: True) if sleepable is None else (lambda d: d in set(sleepable))
    running = set(d for d in bound_deployments(book) if (live.get(d) or 0) > 0)
    stop = sorted(d for d in running if d not in wanted and d not in standby)
    missing = sorted(d for d in list(wanted) + list(standby) if d not in live)
    wake = dict((d, r) for d, r in wanted.items() if d in asleep and live.get(d) == r)
    keep = dict((d, r) for d, r in wanted.items() if d not in asleep and live.get(d) == r)
    start = dict((d, r) for d, r in wanted.items() if d not in keep and d not in wake and d not in missing)
    stop.extend(d for d in start if d in asleep)  # asleep at other replicas: restarted
    unanswered = set(unanswered) - asleep
    restart = sorted(d for d in standby if d in running and d in unanswered)
    stop.extend(restart)
    sleep = sorted(d for d in standby if d in running and d not in asleep and d not in unanswered)
    keep_asleep = sorted(d for d in standby if d in running and d in asleep)
    standby_start = sorted(d for d in standby if (d not in running or d in unanswered) and d not in missing)
    if standby_start:
        for name, replicas in sorted(keep.items()):
            if can_sleep(name):
                sleep.append(name)
                wake[name] = replicas
            else:
                stop.append(name)
                start[name] = replicas
        keep = {}
    return {"from": current, "to": target, "stop": sorted(set(stop)), "start": start, "keep": keep,
            "missing": missing, "sleep": sorted(sleep), "wake": wake, "standby_start": standby_start,
            "keep_asleep": keep_asleep}


def bound_deployments(book):
    """Every Deployment some mode of the book names (as a workload or in standby)."""
    out = set()
    for spec in book["modes"].values():
        out.update(spec["workloads"])
        out.update(spec.get("standby") or {})
    return sorted(out)


def standby_deployments(book):
    """Every Deployment some mode of the book keeps in standby (they run vLLM's sleep mode)."""
    out = set()
    for spec in book["modes"].values():
        out.update(spec.get("standby") or {})
    return sorted(out)


def bind(catalog_names, gpu_nodes, name_prefix, namespace, disabled=()):
    """The inventory's modes of every GPU node, against the catalog.

    ``gpu_nodes``: ``[{"name": Kubernetes node name, "modes": that node's gpu_modes, "selector": the node
    labels that pick it (default: its hostname label)}]``. Returns ``(bound, books, groups, problems)``:
    ``bound`` maps each mode-bound catalog entry to its node's ``{"name", "selector"}`` (an entry is bound
    to one node: its Deployment is pinned there and only that node's switches scale it), ``books`` the mode
    book of each node as stored in its ConfigMap (Deployment names, ``name_prefix`` + entry), ``groups`` the
    sets of entries that run together (one per mode of each node). ``disabled`` entries (``enabled: false``)
    are left out of the modes that name them, as they are out of the cluster.
    """
    bound = {}
    books = {}
    groups = []
    problems = []
    if not isinstance(gpu_nodes or [], list) or not all(isinstance(n, dict) for n in gpu_nodes or []):
        return bound, books, groups, ["vllm_gpu_nodes must be a list of {name, modes, selector}, got %r" % (gpu_nodes,)]
    for node in gpu_nodes or []:
        name = str(node.get("name") or "")
        where = "gpu_modes of GPU node %s" % name
        if not name:
            problems.append("a GPU node with modes has no name")
            continue
        selector = dict(node.get("selector") or {HOSTNAME_LABEL: name})
        found, default, node_problems = normalize_inventory_modes(node.get("modes"), catalog_names, where)
        problems.extend(node_problems)
        for spec in found.values():
            for entry in set(spec["workloads"]) & set(disabled):
                del spec["workloads"][entry]
            for entry in set(spec.get("standby") or {}) & set(disabled):
                del spec["standby"][entry]
        for spec in found.values():
            groups.append(set(spec["workloads"]))  # what serves together (standby workloads serve nothing)
            for entry in list(spec["workloads"]) + list(spec.get("standby") or {}):
                if entry in bound and bound[entry]["name"] != name:
                    problems.append("vllm_catalog entry %s is in the modes of two GPU nodes (%s and %s): a "
                                    "mode-bound entry runs on one node; give each node its own entry"
                                    % (entry, bound[entry]["name"], name))
                bound.setdefault(entry, {"name": name, "selector": selector})
        books[name] = {
            "node": name, "namespace": namespace, "default": default, "selector": selector,
            "modes": dict((mode, _prefixed(spec, name_prefix)) for mode, spec in found.items())}
    return bound, books, groups, problems


def _prefixed(spec, name_prefix):
    """A mode as stored in the ConfigMap: Deployment names (``standby`` only when the mode has some)."""
    out = {"description": spec["description"],
           "workloads": dict((name_prefix + e, r) for e, r in spec["workloads"].items())}
    if spec.get("standby"):
        out["standby"] = dict((name_prefix + e, r) for e, r in spec["standby"].items())
    return out
