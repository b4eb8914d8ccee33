#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: baremetal.gpu maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: gpu_mode_access
short_description: Give a GPU node least-privilege access to switch its own GPU mode, and its kubeconfig
version_added: "0.2.0"
description:
  - Runs against the cluster with an administrator's credentials (the controller's kubeconfig), for one GPU
    node whose modes the C(vllm) role stored in ConfigMap C(gpu-mode-<node>).
  - Creates or updates, in the namespace of the model servers, a ServiceAccount C(gpu-mode-<node>), a Role of
    the same name allowing exactly what a switch of that node does (its ConfigMap, its Lease and its mode-bound
    Deployments by name; pods, pod and Service proxies, Services, events and pod logs of the namespace), a
    RoleBinding, and a Secret C(gpu-mode-<node>-token) of type C(kubernetes.io/service-account-token) that
    the cluster fills with a token valid while the Secret exists.
  - On a node with hot-standby modes the Role also allows C(create) on pods/proxy (vLLM's sleep and wake-up
    POSTs), and a ClusterRole and ClusterRoleBinding C(gpu-mode-<node>) allow C(get) of the node's own Node;
    both go away again when no mode keeps standby.
  - "Returns the node's kubeconfig (that token, the cluster's CA from ConfigMap C(kube-root-ca.crt), the API
    server URL the node reaches), which is a credential. The module refuses to return it from a task that
    does not set C(no_log: true) (set O(return_kubeconfig=false) to get everything else)."
  - Also returns the node's modes as the cluster has them, and the recorded active mode.
  - With O(state=absent), deletes those objects; the token stops working at once.
  - The logic is C(plugins/module_utils/gpu_mode/access.py).
author:
  - baremetal.gpu maintainers (@baremetal-gpu)
requirements:
  - kubernetes (Python library)
options:
  node:
    description: Kubernetes name of the GPU node.
    type: str
    required: true
  namespace:
    description: Namespace of the model servers and of the node's ConfigMap.
    type: str
    default: ml
  state:
    description: C(present) creates or updates the access, C(absent) removes it.
    type: str
    choices: [present, absent]
    default: present
  server:
    description:
      - API server URL as the GPU node reaches it (for example C(https://k3s-server.lan:6443)).
      - Default, the server of the credentials this module uses (right when the node reaches the API at the same
        address as the controller does).
    type: str
  server_ca:
    description: PEM of the CA the node must trust for O(server), when it is not the cluster's (a proxy in between).
    type: str
  rotate_token:
    description: Replace the token (the old one stops working at once).
    type: bool
    default: false
  token_timeout:
    description: Seconds the cluster's token controller may take to fill the token Secret.
    type: float
    default: 60
  return_kubeconfig:
    description: "Return the kubeconfig (only from a task with C(no_log: true))."
    type: bool
    default: true
extends_documentation_fragment:
  - baremetal.gpu.kube_auth
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details: Server-side dry run; the kubeconfig is returned only when the token exists already.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
"""

EXAMPLES = r"""
- name: Give node k3s-gpu-worker the access its gpu-mode switcher needs
  baremetal.gpu.gpu_mode_access:
    node: k3s-gpu-worker
    namespace: ml
    server: https://k3s-server.lan:6443
  register: access
  no_log: true

- name: Write the node's kubeconfig (root only)
  ansible.builtin.copy:
    content: "{{ access.kubeconfig }}"
    dest: /etc/baremetal-gpu/gpu-mode.kubeconfig
    mode: "0600"
  no_log: true
"""

RETURN = r"""
objects:
  description: Each access object with what happened to it (created, configured, unchanged, rotated, deleted, absent).
  returned: always
  type: list
  elements: dict
rules:
  description: The rules of the node's Role.
  returned: state=present
  type: list
  elements: dict
kubeconfig:
  description: The node's kubeconfig (a credential); null in check mode before the token exists.
  returned: state=present and return_kubeconfig
  type: str
modes:
  description: The node's mode names, as stored in the cluster.
  returned: state=present
  type: list
  elements: str
default_mode:
  description: The node's default mode (null when only C(off) is defined).
  returned: state=present
  type: str
recorded_mode:
  description: The mode the cluster records as active on the node (null before the first switch).
  returned: state=present
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.baremetal.gpu.plugins.module_utils import kube as k8s


def main():
    spec = dict(
        node=dict(type="str", required=True),
        namespace=dict(type="str", default="ml"),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        server=dict(type="str"),
        server_ca=dict(type="str"),
        rotate_token=dict(type="bool", default=False),
        token_timeout=dict(type="float", default=60),
        return_kubeconfig=dict(type="bool", default=True),
    )
    spec.update(k8s.AUTH_ARG_SPEC)
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    p = module.params
    if p["state"] == "present" and p["return_kubeconfig"] and not module.no_log:
        module.fail_json(msg="this task returns the node's credentials (a kubeconfig with its token): set no_log: true "
                             "on it, or return_kubeconfig: false")
    problem = k8s.requirement_error()
    if problem:
        module.fail_json(msg=problem)
    from ansible_collections.baremetal.gpu.plugins.module_utils.gpu_mode import access

    try:
        kube = k8s.Kube.from_params(p)
    except k8s.KubeError as exc:
        module.fail_json(msg=str(exc))
    try:
        if p["state"] == "absent":
            result = access.remove(kube, p["node"], p["namespace"], check_mode=module.check_mode)
        else:
            server = p["server"] or kube.api.configuration.host
            done = access.ensure(kube, p["node"], p["namespace"], server, ca_pem=p["server_ca"],
                                 rotate=p["rotate_token"], token_timeout=p["token_timeout"],
                                 check_mode=module.check_mode)
            result = {"changed": done["changed"], "objects": done["objects"], "rules": done["rules"],
                      "modes": sorted(done["book"]["modes"]), "default_mode": done["book"].get("default"),
                      "recorded_mode": done["recorded"]["mode"], "server": server}
            if p["return_kubeconfig"]:
                result["kubeconfig"] = done["kubeconfig"]
    except access.AccessError as exc:
        module.fail_json(msg=str(exc))
    except k8s.KubeError as exc:
        module.fail_json(msg="the cluster answered an error: %s" % exc)
    finally:
        kube.close()
    module.exit_json(**result)


if __name__ == "__main__":
    main()
