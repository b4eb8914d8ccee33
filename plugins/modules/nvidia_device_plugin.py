#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: baremetal.gpu maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: nvidia_device_plugin
short_description: Deploy the NVIDIA device plugin and wait until every GPU node advertises its GPUs
version_added: "0.1.0"
description:
  - Makes sure the RuntimeClass O(runtime_class) exists (creates it only when missing; k3s creates one
    itself), unless O(default_runtime_nvidia) says the nodes' default runtime is already NVIDIA's.
  - Server-side applies, as NVIDIA's Helm chart renders them with an embedded configuration, a
    ConfigMap of device plugin configurations (one file per key in the plugin's own format, version v1,
    time-slicing with C(replicas), C(renameByDefault), C(failRequestsGreaterThanOne)), a
    ServiceAccount with a ClusterRole reading nodes, and the DaemonSet (C(runtimeClassName),
    C(system-node-critical), tolerations, node selector, the C(config-manager) init container and sidecar
    that pick each node's configuration from its C(nvidia.com/device-plugin.config) label).
  - Reports a change only when the server's objects changed.
  - With O(wait), waits for the DaemonSet's rollout, then until every GPU node is Ready and its allocatable
    C(nvidia.com/gpu) (C(nvidia.com/gpu.shared) with C(rename_by_default)) equals its GPUs (label
    C(nvidia.com/gpu.count), or O(node_gpus)) times its configuration's replicas, watching Nodes under
    one deadline. On timeout the error names each node, its plugin pod's phase, container states, events
    and last log lines.
  - Refuses bad input (replicas below 1, names that are not ConfigMap keys, a node that selects a
    configuration the ConfigMap lacks) before changing anything.
  - The logic lives in C(plugins/module_utils/device_plugin.py) and C(plugins/module_utils/kube.py).
author:
  - baremetal.gpu maintainers (@baremetal-gpu)
requirements:
  - kubernetes (Python library)
options:
  version:
    description: Device plugin release (image tag and C(app.kubernetes.io/version) label).
    type: str
    default: v0.19.3
  image:
    description: Full image reference, for a local mirror; default C(nvcr.io/nvidia/k8s-device-plugin:<version>).
    type: str
  image_pull_policy:
    description: Image pull policy of the containers.
    type: str
    choices: [Always, IfNotPresent, Never]
    default: IfNotPresent
  image_pull_secrets:
    description: Names of Secrets in O(namespace) to pull the image with.
    type: list
    elements: str
    default: []
  namespace:
    description: Namespace of the plugin's objects.
    type: str
    default: kube-system
  name:
    description: Name of the DaemonSet (and prefix of the ServiceAccount and ClusterRole).
    type: str
    default: nvidia-device-plugin
  config_map:
    description: Name of the ConfigMap of configurations.
    type: str
    default: nvidia-device-plugin-configs
  configs:
    description:
      - Named configurations, each C({replicas, rename_by_default, fail_requests_greater_than_one}).
        C(replicas) 1 means no sharing; 2 or more time-slices each GPU into that many C(nvidia.com/gpu).
      - A node picks one with the label C(nvidia.com/device-plugin.config=<name>); without the label it
        gets O(default_config), added with 1 replica when not listed.
    type: dict
    default: {}
  default_config:
    description: Configuration of nodes without the label.
    type: str
    default: default
  fail_on_init_error:
    description: The plugin fails (and restarts) rather than idling when it cannot start NVML.
    type: bool
    default: true
  runtime_class:
    description: RuntimeClass the plugin's pods run with (created when missing).
    type: str
    default: nvidia
  runtime_handler:
    description: Handler of that RuntimeClass (the containerd runtime name k3s configures).
    type: str
    default: nvidia
  default_runtime_nvidia:
    description: The nodes' default runtime is NVIDIA's (k3s C(default-runtime), or nvidia-ctk C(--set-as-default)); no RuntimeClass is set or created.
    type: bool
    default: false
  node_selector:
    description: Node selector of the DaemonSet.
    type: dict
    default: {nvidia.com/gpu.present: "true"}
  tolerations:
    description: Tolerations of the DaemonSet's pods; default C(CriticalAddonsOnly) and C(nvidia.com/gpu:NoSchedule), as the chart.
    type: list
    elements: dict
  priority_class:
    description: Priority class of the plugin's pods.
    type: str
    default: system-node-critical
  resources:
    description: Resources of the plugin container.
    type: dict
  wait:
    description: Wait for the rollout and for the GPU nodes (not in check mode).
    type: bool
    default: true
  wait_timeout:
    description: Seconds the whole wait may take.
    type: float
    default: 300
  nodes:
    description:
      - Names of the GPU nodes that must advertise their GPUs (e.g. the inventory's k3s GPU workers), whether
        or not they carry the node selector's labels. Empty - every node matching O(node_selector), at least one.
    type: list
    elements: str
    default: []
  node_gpus:
    description: Physical GPUs per node name, for nodes without the C(nvidia.com/gpu.count) label.
    type: dict
    default: {}
  log_lines:
    description: Log lines of each container to include in a timeout message.
    type: int
    default: 20
notes:
  - Check mode applies with C(dryRun=All) and creates no RuntimeClass; it does not wait.
attributes:
  check_mode:
    description: Applies with C(dryRun=All) and reports what would change; does not wait.
    support: full
  diff_mode:
    description: Returns, per changed object, its live and applied versions.
    support: full
extends_documentation_fragment:
  - baremetal.gpu.kube_auth
seealso:
  - module: baremetal.gpu.vllm_deploy
"""

EXAMPLES = r"""
- name: Deploy the plugin; the T4 node shares its GPU between two pods
  baremetal.gpu.nvidia_device_plugin:
    configs:
      t4-ts2: {replicas: 2}
    nodes: [t4-node]
    kubeconfig: /etc/rancher/k3s/k3s.yaml

- name: From a local registry mirror, nodes whose default runtime is NVIDIA's
  baremetal.gpu.nvidia_device_plugin:
    image: registry.lan:5000/nvidia/k8s-device-plugin:v0.19.3
    default_runtime_nvidia: true
"""

RETURN = r"""
results:
  description: One entry per object (RuntimeClass first), as C(baremetal.gpu.vllm_deploy) reports them.
  returned: always
  type: list
  elements: dict
  sample:
    - {apiVersion: node.k8s.io/v1, kind: RuntimeClass, name: nvidia, action: unchanged, changed: false, created_by: k3s}
    - {apiVersion: apps/v1, kind: DaemonSet, namespace: kube-system, name: nvidia-device-plugin, action: created, changed: true}
configs:
  description: The configurations applied, with the resource each advertises.
  returned: always
  type: dict
  sample: {default: {replicas: 1, resource: nvidia.com/gpu}, t4-ts2: {replicas: 2, resource: nvidia.com/gpu}}
nodes:
  description: Per GPU node what it advertises against what was expected, and when it got there.
  returned: when waited
  type: list
  elements: dict
  sample:
    - {name: t4-node, config: t4-ts2, gpus: 1, replicas: 2, resource: nvidia.com/gpu, expected: 2,
       allocatable: {nvidia.com/gpu: "2"}, ready: true, done: true, seconds: 4.2}
rollout:
  description: Seconds the DaemonSet took to roll out.
  returned: when waited
  type: dict
timings:
  description: Seconds spent applying, waiting, in total; API requests made.
  returned: always
  type: dict
diagnostics:
  description: On a timeout, per node (and pod) what it showed.
  returned: failure
  type: list
  elements: dict
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.baremetal.gpu.plugins.module_utils import device_plugin
from ansible_collections.baremetal.gpu.plugins.module_utils import kube as k8s


def main():
    argument_spec = dict(
        version=dict(type="str", default=device_plugin.DEFAULT_VERSION),
        image=dict(type="str"),
        image_pull_policy=dict(type="str", default="IfNotPresent", choices=["Always", "IfNotPresent", "Never"]),
        image_pull_secrets=dict(type="list", elements="str", default=[], no_log=False),  # names, not secrets
        namespace=dict(type="str", default="kube-system"),
        name=dict(type="str", default="nvidia-device-plugin"),
        config_map=dict(type="str", default="nvidia-device-plugin-configs"),
        configs=dict(type="dict", default={}),
        default_config=dict(type="str", default="default"),
        fail_on_init_error=dict(type="bool", default=True),
        runtime_class=dict(type="str", default="nvidia"),
        runtime_handler=dict(type="str", default="nvidia"),
        default_runtime_nvidia=dict(type="bool", default=False),
        node_selector=dict(type="dict", default={device_plugin.GPU_PRESENT_LABEL: "true"}),
        tolerations=dict(type="list", elements="dict"),
        priority_class=dict(type="str", default="system-node-critical"),
        resources=dict(type="dict"),
        wait=dict(type="bool", default=True),
        wait_timeout=dict(type="float", default=300),
        nodes=dict(type="list", elements="str", default=[]),
        node_gpus=dict(type="dict", default={}),
        log_lines=dict(type="int", default=20),
    )
    argument_spec.update(k8s.AUTH_ARG_SPEC)
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    if not k8s.HAS_KUBERNETES:
        module.fail_json(msg=missing_required_lib("kubernetes"), exception=str(k8s.KUBERNETES_IMPORT_ERROR))
    options = dict((k, v) for k, v in module.params.items() if k not in k8s.AUTH_ARG_SPEC)
    kube = None
    out = {"results": [], "timings": {}}
    failure = None
    try:
        device_plugin.validate_options(options)  # before connecting: bad input never reaches the cluster
        kube = k8s.Kube.from_params(module.params)
        device_plugin.deploy(kube, options, check_mode=module.check_mode, want_diff=module._diff, out=out)
    except device_plugin.NodesNotReady as exc:
        failure = dict(msg=str(exc), diagnostics=exc.report)
    except (device_plugin.DevicePluginError, k8s.KubeError) as exc:
        failure = dict(msg=str(exc), status=getattr(exc, "status", None))
    finally:
        if kube is not None:
            out["timings"]["requests"] = kube.requests
            kube.close()
    diffs = [r.pop("diff") for r in out["results"] if "diff" in r]
    if diffs:
        out["diff"] = diffs
    out["changed"] = any(r.get("changed") for r in out["results"])
    if failure:
        out.update(failure)
        module.fail_json(**out)
    module.exit_json(**out)


if __name__ == "__main__":
    main()
