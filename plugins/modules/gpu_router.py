#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: baremetal.gpu maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: gpu_router
short_description: Run a GPU node's request-triggered router (OpenAI-compatible) in the cluster
version_added: "0.2.0"
description:
  - Runs against the cluster with an administrator's credentials, for one GPU node whose modes the C(vllm) role
    stored in ConfigMap C(gpu-mode-<node>).
  - Applies (server-side apply) ServiceAccount, Role and RoleBinding C(gpu-router-<node>) (the node switcher's
    rules plus watching its ConfigMap), a ConfigMap with the router's settings, a Deployment pinned to the node
    running the router in an image the node has (by default its model server image) from the code and packages
    the C(gpu_router) role put on the node (hostPath), a Service and a PodDisruptionBudget; on a node with
    standby modes also ClusterRole and ClusterRoleBinding C(gpu-router-<node>) reading its own Node.
  - Refuses to take over a Service it did not create (for example the models' C(vllm-api)).
  - With O(state=absent), deletes all of them.
  - The logic is C(plugins/module_utils/gpu_router/install.py) and C(manifests.py).
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
    description: C(present) creates or updates the router, C(absent) removes it.
    type: str
    choices: [present, absent]
    default: present
  image:
    description: Image with python3, aiohttp, pydantic, PyYAML and requests the node already has; default, the
      model server image of the node's recorded (else default) mode.
    type: str
  settings:
    description: The router's settings (see C(docs/gpu-router.md)); node, namespace and port are set by the module.
    type: dict
    default: {}
  replicas:
    description: Router pods (the node's Lease serialises their switches).
    type: int
    default: 2
  port:
    description: Port the router listens on in its pod.
    type: int
    default: 8080
  service:
    description: Name of the router's Service (it refuses one that exists and is not the router's).
    type: str
    default: gpu-router
  service_port:
    description: Port of the router's Service.
    type: int
    default: 8000
  code_dir:
    description: Directory on the node with the collection's module_utils (the C(gpu_mode) role's code).
    type: path
    default: /opt/baremetal-gpu/gpu-mode/lib
  site_dir:
    description: Directory on the node with the Python packages the image lacks (the C(gpu_router) role's).
    type: path
    default: /opt/baremetal-gpu/gpu-router/site
  code_version:
    description: Identifies what is in O(code_dir) and O(site_dir); a new value restarts the router pods.
    type: str
    default: ""
  runtime_class:
    description: RuntimeClass giving the pod the driver's NVML (C("") for none, which refuses every switch).
    type: str
    default: nvidia
  host_pid:
    description: Run in the host's PID namespace (GPU processes mapped to pods).
    type: bool
    default: true
  wait:
    description: Wait until every router pod runs the applied template and is ready.
    type: bool
    default: true
  wait_timeout:
    description: Seconds O(wait) may take.
    type: float
    default: 120
extends_documentation_fragment:
  - baremetal.gpu.kube_auth
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details: Server-side dry run.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
"""

EXAMPLES = r"""
- name: Run the router of node k3s-gpu-worker
  baremetal.gpu.gpu_router:
    node: k3s-gpu-worker
    namespace: ml
    settings:
      hold_timeout: 600
      default_ttl: 1800
"""

RETURN = r"""
objects:
  description: Each object with what happened to it (created, configured, unchanged, deleted, absent).
  returned: always
  type: list
  elements: dict
image:
  description: The image the router runs in.
  returned: state=present
  type: str
standby:
  description: Whether the node has standby modes (then the router may read its Node).
  returned: state=present
  type: bool
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.baremetal.gpu.plugins.module_utils import kube as k8s

OPTIONS = ("replicas", "port", "service", "service_port", "code_dir", "site_dir", "code_version", "runtime_class",
           "host_pid")


def main():
    spec = dict(
        node=dict(type="str", required=True),
        namespace=dict(type="str", default="ml"),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        image=dict(type="str"),
        settings=dict(type="dict", default={}),
        replicas=dict(type="int", default=2),
        port=dict(type="int", default=8080),
        service=dict(type="str", default="gpu-router"),
        service_port=dict(type="int", default=8000),
        code_dir=dict(type="path", default="/opt/baremetal-gpu/gpu-mode/lib"),
        site_dir=dict(type="path", default="/opt/baremetal-gpu/gpu-router/site"),
        code_version=dict(type="str", default=""),
        runtime_class=dict(type="str", default="nvidia"),
        host_pid=dict(type="bool", default=True),
        wait=dict(type="bool", default=True),
        wait_timeout=dict(type="float", default=120),
    )
    spec.update(k8s.AUTH_ARG_SPEC)
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    p = module.params
    problem = k8s.requirement_error()
    if problem:
        module.fail_json(msg=problem)
    from ansible_collections.baremetal.gpu.plugins.module_utils.gpu_router import config, install

    try:
        kube = k8s.Kube.from_params(p)
    except k8s.KubeError as exc:
        module.fail_json(msg=str(exc))
    try:
        if p["state"] == "absent":
            result = install.remove(kube, p["node"], p["namespace"], check_mode=module.check_mode)
        else:
            config.check(dict(config.DEFAULTS, **dict(p["settings"], node=p["node"])))
            done = install.ensure(kube, p["node"], p["namespace"], image=p["image"], settings=p["settings"],
                                  wait=p["wait"], wait_timeout=p["wait_timeout"], check_mode=module.check_mode,
                                  **dict((k, p[k]) for k in OPTIONS))
            result = dict(changed=done["changed"], objects=done["objects"], **done["facts"])
    except (install.InstallError, config.ConfigError) as exc:
        module.fail_json(msg=str(exc))
    except k8s.KubeError as exc:
        module.fail_json(msg="the cluster answered an error: %s" % exc)
    finally:
        kube.close()
    module.exit_json(**result)


if __name__ == "__main__":
    main()
