#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: baremetal.gpu maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: gpu_mode
short_description: Switch which model servers own a GPU node's GPUs, safely, with rollback
version_added: "0.2.0"
description:
  - Runs ON the GPU node (as the node CLI C(gpu-mode) does, with the same code), because the switch
    waits for the GPU memory of the stopped servers to be really released, which only NVML on the node
    can see.
  - Reads the node's modes and the active mode from the cluster (ConfigMap C(gpu-mode-<node>), written by the
    C(vllm) role and by earlier switches), never from files on the node.
  - "Phases: validate (the mode exists, its Deployments exist, they fit the node together), lock (the node's
    Lease), drain (the outgoing pods leave their Service, in-flight requests finish), stop (scale to 0, pods
    gone), release (GPU memory freed), start (scale up, pods Ready), health (through the Service), record."
  - Any failure after the first change rolls back to the previous mode and fails with the reason (pod state,
    events, last log lines). Switching to the active, serving mode changes nothing.
  - The logic is C(plugins/module_utils/gpu_mode/).
author:
  - baremetal.gpu maintainers (@baremetal-gpu)
requirements:
  - kubernetes (Python library)
  - nvidia-ml-py (Python library), unless O(memory_wait=false)
options:
  mode:
    description: The mode to switch to (one of the node's modes, or C(off)). Exclusive with O(activate).
    type: str
  activate:
    description:
      - Instead of a mode, bring up the node's recorded mode, or its default mode when the cluster has none
        recorded (what C(site.yml) does). Decided under the node's lock, so a switch made meanwhile is kept.
    type: bool
    default: false
  node:
    description: Kubernetes name of the GPU node.
    type: str
    required: true
  namespace:
    description: Namespace of the model servers, their ConfigMap and Lease.
    type: str
    default: ml
  force:
    description: Do not wait for in-flight requests of the outgoing servers.
    type: bool
    default: false
  wait_for_lock:
    description: When another switch of this node runs, wait for it (up to O(lock_timeout)) instead of failing.
    type: bool
    default: false
  lock_timeout:
    description: Seconds to wait for the lock with O(wait_for_lock).
    type: float
    default: 600
  drain_timeout:
    description: Seconds in-flight requests may take to finish before the switch gives up (nothing changed).
    type: float
    default: 120
  release_timeout:
    description: Seconds the GPU memory of the stopped servers may take to be released.
    type: float
    default: 60
  start_timeout:
    description: Seconds the new mode's pods may take to become ready (model load included).
    type: float
    default: 900
  health_timeout:
    description: Seconds the new mode's Services may take to serve their models once the pods are ready.
    type: float
    default: 120
  sleep_timeout:
    description: Seconds one server may take to fall asleep (hot standby, vLLM's sleep mode).
    type: float
    default: 120
  wake_timeout:
    description: Seconds one sleeping server may take to wake up before it is restarted cold instead.
    type: float
    default: 300
  memory_wait:
    description:
      - Wait for the GPU memory to be released (needs NVML on the host the module runs on).
      - C(false) trusts that a pod gone means its memory is free, which is not always true.
    type: bool
    default: true
  proc_root:
    description: Where the host's C(/proc) is (another path when the module runs in a container).
    type: path
    default: /proc
extends_documentation_fragment:
  - baremetal.gpu.kube_auth
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details: Validates and returns the plan (what stops, what starts, the expected load time); changes nothing.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
"""

EXAMPLES = r"""
- name: Switch the home-lab worker to the reasoning model
  baremetal.gpu.gpu_mode:
    mode: r1
    node: k3s-gpu-worker
    kubeconfig: /etc/baremetal-gpu/gpu-mode.kubeconfig
"""

RETURN = r"""
from:
  description: The mode recorded before the switch (null when none was).
  returned: always
  type: str
to:
  description: The mode asked for.
  returned: always
  type: str
outcome:
  description: C(switched), C(unchanged), C(planned) (check mode), C(rolled back) or C(failed).
  returned: always
  type: str
plan:
  description:
    - Deployments stopped, started (with replicas) and kept; with hot standby also those put to sleep
      (C(sleep)), woken (C(wake)), started asleep (C(standby_start)) and left asleep (C(keep_asleep)).
  returned: when the mode is valid
  type: dict
phases:
  description: Seconds per phase (validate, lock, drain, sleep, stop, release, standby, wake, start, health, record, rollback).
  returned: always
  type: dict
total_seconds:
  description: Seconds the whole switch took.
  returned: always
  type: float
expected_load_seconds:
  description: The slowest target workload's expected load time (from the catalog).
  returned: when the mode is valid
  type: float
rolled_back:
  description: Whether a failed switch restored the previous mode.
  returned: always
  type: bool
cold_restarts:
  description: Workloads that did not wake up and were restarted cold instead, each with why (its log's error lines).
  returned: when a wake-up failed
  type: list
  elements: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.baremetal.gpu.plugins.module_utils import kube as k8s


def main():
    spec = dict(
        mode=dict(type="str"),
        activate=dict(type="bool", default=False),
        node=dict(type="str", required=True),
        namespace=dict(type="str", default="ml"),
        force=dict(type="bool", default=False),
        wait_for_lock=dict(type="bool", default=False),
        lock_timeout=dict(type="float", default=600),
        drain_timeout=dict(type="float", default=120),
        release_timeout=dict(type="float", default=60),
        start_timeout=dict(type="float", default=900),
        health_timeout=dict(type="float", default=120),
        sleep_timeout=dict(type="float", default=120),
        wake_timeout=dict(type="float", default=300),
        memory_wait=dict(type="bool", default=True),
        proc_root=dict(type="path", default="/proc"),
    )
    spec.update(k8s.AUTH_ARG_SPEC)
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    if bool(module.params["mode"]) == bool(module.params["activate"]):
        module.fail_json(msg="give either mode (the mode to switch to) or activate: true (the recorded mode, else "
                             "the default), not both and not neither")
    problem = k8s.requirement_error()
    if problem:
        module.fail_json(msg=problem)
    from ansible_collections.baremetal.gpu.plugins.module_utils.gpu_mode import report
    from ansible_collections.baremetal.gpu.plugins.module_utils.gpu_mode.modes import ModeError
    from ansible_collections.baremetal.gpu.plugins.module_utils.gpu_mode.switch import SwitchError, switch

    p = module.params
    try:
        kube = k8s.Kube.from_params(p)
    except k8s.KubeError as exc:
        module.fail_json(msg=str(exc))
    try:
        result = switch(kube, p["namespace"], p["node"], None if p["activate"] else p["mode"],
                        check_mode=module.check_mode, force=p["force"],
                        wait_for_lock=p["wait_for_lock"], lock_timeout=p["lock_timeout"],
                        drain_timeout=p["drain_timeout"], release_timeout=p["release_timeout"],
                        start_timeout=p["start_timeout"], health_timeout=p["health_timeout"],
                        sleep_timeout=p["sleep_timeout"], wake_timeout=p["wake_timeout"],
                        memory_wait=p["memory_wait"], proc_root=p["proc_root"], facts_fn=report.gpu_facts)
    except ModeError as exc:
        module.fail_json(msg=str(exc), outcome="invalid", changed=False)
    except SwitchError as exc:
        result = exc.result
        module.fail_json(msg=str(exc), **dict((k, v) for k, v in result.items() if k not in ("msg", "failed")))
    except k8s.KubeError as exc:
        module.fail_json(msg="the cluster answered an error: %s" % exc)
    finally:
        kube.close()
    module.exit_json(**result)


if __name__ == "__main__":
    main()
