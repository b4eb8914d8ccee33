# -*- coding: utf-8 -*-
# Copyright: baremetal.gpu maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The active mode of a GPU node and its history, kept in the cluster (never on a node's disk).

The node's ConfigMap ``gpu-mode-<node>`` holds, beside the mode definitions the ``vllm`` role writes
(``modes.json``), what the switcher records with its own field manager (``baremetal-gpu-mode``), so that a
``site.yml`` run and a switch never take each other's keys:

* ``mode``: the active mode (what ``gpu-mode status`` and the next switch read);
* ``state.json``: the last switch (from, to, by, when, seconds per phase, outcome, error);
* ``history.json``: the last ``HISTORY`` switches, newest first.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

from ansible_collections.baremetal.gpu.plugins.module_utils.gpu_mode.modes import configmap_name

FIELD_MANAGER = "baremetal-gpu-mode"
HISTORY = 20


def read(configmap):
    """``{"mode", "last", "history"}`` recorded in a node's ConfigMap (mode None when nothing is recorded)."""
    data = (configmap or {}).get("data") or {}

    def load(key, default):
        try:
            return json.loads(data[key]) if data.get(key) else default
        except ValueError:
            return default

    return {"mode": data.get("mode") or None, "last": load("state.json", None), "history": load("history.json", [])}


def record(kube, namespace, node, entry, configmap=None):
    """Record a switch (``entry``: from, to, by, started_at, finished_at, outcome, phases, error...) and the
    mode active after it (``entry["active"]``; None keeps the recorded one). Server-side apply of the
    switcher's keys only, forced (a person who edited them with kubectl is overruled by the switch)."""
    recorded = read(configmap)
    data = {"state.json": json.dumps(entry, sort_keys=True),
            "history.json": json.dumps(([entry] + list(recorded["history"]))[:HISTORY], sort_keys=True)}
    # always send `mode` once it exists: a server-side apply that leaves out a key its manager set removes it
    active = entry.get("active") or recorded["mode"]
    if active:
        data["mode"] = active
    body = {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": configmap_name(node), "namespace": namespace}, "data": data}
    return kube.apply(body, field_manager=FIELD_MANAGER, force=True)
