# -*- coding: utf-8 -*-
# Copyright: baremetal.gpu maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""GPU modes: their definitions (inventory and cluster) and the plan of a switch between two of them.

A *mode* of a GPU node is the set of workloads (Deployments, with replicas) that own its GPUs while it is
active; ``off`` owns nothing. The inventory defines modes per GPU node (``gpu_modes``, catalog entry names);
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

    Each mode: ``{description, default, workloads}`` where workloads is a list of catalog entry names or a
    mapping name -> replicas. ``off`` (no workloads) is always there. Returns ``(modes, default, problems)``;
    modes: ``{name: {"description": str, "workloads": {entry: replicas}}}``.
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
        unknown = sorted(set(spec) - {"description", "default", "workloads"})
        if unknown:
            problems.append("%s: unknown key(s) %s (allowed: description, default, workloads)" % (here, ", ".join(unknown)))
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
        if spec.get("default"):
            if default is not None:
                problems.append("%s: more than one default mode (%s and %s)" % (where, default, name))
            default = name
        modes[name] = {"description": str(spec.get("description") or ""), "workloads": workloads}
    modes.setdefault(OFF, {"description": "no model: the GPU is free", "workloads": {}})
    if default is None and len(modes) > 1:
        problems.append("%s: mark one mode default: true (the mode a fresh node starts in)" % where)
    return modes, default, problems


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
    return book


def describe_modes(book):
    """``["ml (default): Qwen3-8B AWQ", ...]`` for messages and ``gpu-mode list``."""
    out = []
    for name in sorted(book["modes"]):
        spec = book["modes"][name]
        label = name + (" (default)" if name == book.get("default") else "")
        out.append("%s: %s" % (label, spec.get("description") or ", ".join(sorted(spec.get("workloads") or {})) or "-"))
    return out


def check_mode(book, mode):
    """Raise ModeError unless ``mode`` is one of the book's modes (listing them with their descriptions)."""
    if mode not in book["modes"]:
        raise ModeError("unknown mode %r for node %s; valid modes: %s"
                        % (mode, book.get("node"), "; ".join(describe_modes(book))))


def plan(book, current, target, live):
    """What a switch to ``target`` does, from what really runs.

    ``live``: ``{deployment: spec.replicas}`` of the node's mode-bound Deployments that exist (what runs is
    read from the cluster, not assumed from the recorded mode, so a hand-scaled Deployment is stopped too).
    Returns ``{"from", "to", "stop": [deployments], "start": {deployment: replicas}, "keep": {...},
    "missing": [...]}``: ``stop`` leaves the GPU, ``start`` is scaled to its replicas, ``keep`` already
    runs as the target wants, ``missing`` are target workloads with no Deployment.
    """
    check_mode(book, target)
    wanted = dict(book["modes"][target]["workloads"])
    stop = sorted(d for d in bound_deployments(book) if (live.get(d) or 0) > 0 and d not in wanted)
    missing = sorted(d for d in wanted if d not in live)
    keep = dict((d, r) for d, r in wanted.items() if live.get(d) == r)
    start = dict((d, r) for d, r in wanted.items() if d not in keep and d not in missing)
    return {"from": current, "to": target, "stop": stop, "start": start, "keep": keep, "missing": missing}


def bound_deployments(book):
    """Every Deployment some mode of the book names."""
    out = set()
    for spec in book["modes"].values():
        out.update(spec["workloads"])
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
        for spec in found.values():
            groups.append(set(spec["workloads"]))
            for entry in spec["workloads"]:
                if entry in bound and bound[entry]["name"] != name:
                    problems.append("vllm_catalog entry %s is in the modes of two GPU nodes (%s and %s): a "
                                    "mode-bound entry runs on one node; give each node its own entry"
                                    % (entry, bound[entry]["name"], name))
                bound.setdefault(entry, {"name": name, "selector": selector})
        books[name] = {
            "node": name, "namespace": namespace, "default": default, "selector": selector,
            "modes": dict((mode, {"description": spec["description"],
                                  "workloads": dict((name_prefix + e, r) for e, r in spec["workloads"].items())})
                          for mode, spec in found.items())}
    return bound, books, groups, problems
