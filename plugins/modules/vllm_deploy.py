#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: baremetal.gpu maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: vllm_deploy
short_description: Apply Kubernetes manifests with server-side apply, prune what is gone, wait for rollouts
version_added: "0.1.0"
description:
  - Applies a list of manifests (the C(baremetal.gpu.vllm) role renders them from its model catalog)
    with server-side apply under the field manager O(field_manager).
  - Reports a change only when the server's object changed - the live object before and after are
    compared (ignoring status and server bookkeeping) - never merely because an object was sent.
  - With O(prune), deletes objects that carry the collection's managed-by label
    (C(app.kubernetes.io/managed-by=baremetal-gpu)) in the namespaces of the manifests and are no
    longer listed.
  - With O(wait), watches Deployments (and DaemonSets, StatefulSets, Jobs listed in O(wait_kinds))
    until they have rolled out, under a deadline. On timeout the error names each pod that is not
    ready, its phase and container states, its last events and last log lines.
  - Secret values in the manifests never appear in the output, the diff or the logged arguments.
  - The logic lives in C(plugins/module_utils/kube_apply.py) (apply, diff, prune), C(kube_rollout.py) (the
    wait) and C(kube_diagnosis.py) (what a failed rollout shows), over C(kube_client.py).
author:
  - baremetal.gpu maintainers (@baremetal-gpu)
options:
  manifests:
    description: Kubernetes objects to apply, in order (Namespaces and what others depend on are applied first).
    type: list
    elements: dict
    required: true
  namespace:
    description: Namespace for namespaced objects that name none.
    type: str
    default: default
  field_manager:
    description: Field manager of the server-side apply.
    type: str
    default: baremetal-gpu
  force_conflicts:
    description: Take ownership of fields another manager set (C(force=true)); otherwise such conflicts fail.
    type: bool
    default: true
  prune:
    description: Delete objects matching O(prune_selector) of the O(prune_kinds) in the manifests' namespaces that are not in O(manifests).
    type: bool
    default: false
  prune_selector:
    description: Label selector of the objects prune may delete.
    type: str
    default: app.kubernetes.io/managed-by=baremetal-gpu
  prune_kinds:
    description:
      - Kinds prune looks at, as C(apiVersion/Kind) strings such as C(apps/v1/Deployment) or C(v1/Service).
      - The default leaves Namespaces and PersistentVolumeClaims (weights caches) alone.
    type: list
    elements: str
  prune_namespaces:
    description: Extra namespaces to prune in (a namespace no manifest uses any more).
    type: list
    elements: str
    default: []
  wait:
    description: Wait until the applied objects of O(wait_kinds) are ready (not in check mode).
    type: bool
    default: true
  wait_kinds:
    description: Kinds to wait for.
    type: list
    elements: str
    default: [Deployment]
  wait_timeout:
    description: Seconds the whole wait may take.
    type: float
    default: 600
  log_lines:
    description: Log lines of each failing container to include in a timeout message.
    type: int
    default: 20
notes:
  - Check mode applies with C(dryRun=All), so the server validates and defaults the objects and the
    reported changes and diffs are what a real run would do; prune reports without deleting.
attributes:
  check_mode:
    description: Applies with C(dryRun=All) and reports what would change; prunes nothing and does not wait.
    support: full
  diff_mode:
    description: Returns, per changed object, its live and applied versions (Secret values masked).
    support: full
extends_documentation_fragment:
  - baremetal.gpu.kube_auth
seealso:
  - module: baremetal.gpu.vllm_health
  - module: kubernetes.core.k8s
"""

EXAMPLES = r"""
- name: Apply the rendered manifests, prune what the catalog dropped, wait for the rollout
  baremetal.gpu.vllm_deploy:
    manifests: "{{ vllm_manifests }}"
    prune: true
    wait_timeout: 900
    kubeconfig: /etc/rancher/k3s/k3s.yaml
  register: deployed

- name: Show what changed
  ansible.builtin.debug:
    msg: "{{ deployed.results | selectattr('changed') | map(attribute='name') | list }}"
"""

RETURN = r"""
results:
  description: One entry per manifest, in apply order.
  returned: always
  type: list
  elements: dict
  sample:
    - {apiVersion: apps/v1, kind: Deployment, namespace: ml, name: vllm-ml, action: configured,
       changed: true, seconds: 0.012, resource_version: "1042", generation: 3}
pruned:
  description: Objects deleted by prune (in check mode, that would be deleted).
  returned: always
  type: list
  elements: dict
  sample: [{apiVersion: apps/v1, kind: Deployment, namespace: ml, name: vllm-old, action: pruned, changed: true}]
rollout:
  description: Seconds each waited-for object took to become ready, keyed C(Kind/namespace/name).
  returned: always
  type: dict
  sample: {Deployment/ml/vllm-ml: 21.4}
timings:
  description: Seconds spent applying, pruning, waiting, and in total; API requests made.
  returned: always
  type: dict
  sample: {apply_s: 0.21, prune_s: 0.03, wait_s: 21.4, total_s: 21.7, requests: 40}
diagnostics:
  description: On a rollout failure, what each object that did not become ready showed (status, pods, events, logs).
  returned: failure
  type: list
  elements: dict
"""

import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.baremetal.gpu.plugins.module_utils import kube as k8s


def _parse_kinds(values):
    kinds = []
    for value in values:
        api_version, kind = value.rpartition("/")[::2]
        if not api_version or not kind:
            raise ValueError("prune_kinds entries look like apps/v1/Deployment or v1/Service, got %r" % value)
        kinds.append((api_version, kind))
    return kinds


def main():
    argument_spec = dict(
        manifests=dict(type="list", elements="dict", required=True),
        namespace=dict(type="str", default="default"),
        field_manager=dict(type="str", default=k8s.FIELD_MANAGER),
        force_conflicts=dict(type="bool", default=True),
        prune=dict(type="bool", default=False),
        prune_selector=dict(type="str", default=k8s.MANAGED_BY_SELECTOR),
        prune_kinds=dict(type="list", elements="str"),
        prune_namespaces=dict(type="list", elements="str", default=[]),
        wait=dict(type="bool", default=True),
        wait_kinds=dict(type="list", elements="str", default=["Deployment"]),
        wait_timeout=dict(type="float", default=600),
        log_lines=dict(type="int", default=20),
    )
    argument_spec.update(k8s.AUTH_ARG_SPEC)
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    problem = k8s.requirement_error()
    if problem:
        module.fail_json(msg=problem)
    params = module.params
    # Secret values must not leave the module: not in results, diffs, nor the logged invocation.
    module.no_log_values.update(k8s.secret_values(params["manifests"]))

    started = time.monotonic()
    timings = {}
    out = dict(changed=False, results=[], pruned=[], rollout={}, timings=timings)
    kube = None
    try:
        prune_kinds = _parse_kinds(params["prune_kinds"]) if params["prune_kinds"] else list(k8s.PRUNE_KINDS)
        kube = k8s.Kube.from_params(params)
        t0 = time.monotonic()
        results, applied = k8s.apply_all(kube, params["manifests"], field_manager=params["field_manager"],
                                         force=params["force_conflicts"], check_mode=module.check_mode,
                                         want_diff=module._diff, default_namespace=params["namespace"])
        timings["apply_s"] = round(time.monotonic() - t0, 4)
        diffs = [r.pop("diff") for r in results if "diff" in r]
        out["results"] = results
        out["changed"] = any(r["changed"] for r in results)
        if diffs:
            out["diff"] = diffs
        if params["prune"]:
            t0 = time.monotonic()
            namespaces = set(params["prune_namespaces"])
            for obj in applied:
                meta = obj.get("metadata") or {}
                if meta.get("namespace"):
                    namespaces.add(meta["namespace"])
                elif obj.get("kind") == "Namespace":
                    namespaces.add(meta.get("name"))
            out["pruned"] = k8s.prune(kube, applied, namespaces, kinds=prune_kinds, selector=params["prune_selector"],
                                      check_mode=module.check_mode, default_namespace=params["namespace"])
            out["changed"] = out["changed"] or bool(out["pruned"])
            timings["prune_s"] = round(time.monotonic() - t0, 4)
        if params["wait"] and not module.check_mode:
            t0 = time.monotonic()
            targets = [(obj["apiVersion"], obj["kind"], (obj.get("metadata") or {}).get("namespace"),
                        obj["metadata"]["name"]) for obj in applied if obj.get("kind") in params["wait_kinds"]]
            try:
                done = k8s.wait_ready(kube, targets, params["wait_timeout"], log_lines=params["log_lines"])
            except k8s.RolloutTimeout as exc:
                timings["wait_s"] = round(time.monotonic() - t0, 4)
                timings["total_s"] = round(time.monotonic() - started, 4)
                timings["requests"] = kube.requests
                module.fail_json(msg=str(exc), diagnostics=exc.report, **out)
            out["rollout"] = dict(("%s/%s/%s" % key, seconds) for key, seconds in done.items())
            timings["wait_s"] = round(time.monotonic() - t0, 4)
    except (k8s.KubeError, ValueError) as exc:
        timings["total_s"] = round(time.monotonic() - started, 4)
        module.fail_json(msg=str(exc), status=getattr(exc, "status", None), **out)
    finally:
        if kube is not None:
            timings["requests"] = kube.requests
            kube.close()
    timings["total_s"] = round(time.monotonic() - started, 4)
    module.exit_json(**out)


if __name__ == "__main__":
    main()
