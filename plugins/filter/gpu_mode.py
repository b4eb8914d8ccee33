# -*- coding: utf-8 -*-
# Copyright: baremetal.gpu maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: gpu_nodes
short_description: The GPU nodes that have GPU modes, with their Kubernetes name and placement
version_added: "0.2.0"
description:
  - For each inventory host of a group (C(gpu_nodes)) that defines C(gpu_modes), its Kubernetes node name
    (C(gpu_node_name), else the inventory hostname), its modes, and the node labels that pick it for its
    mode-bound workloads (C(gpu_node_selector), else C(kubernetes.io/hostname) = its name).
  - The C(vllm) role's default for C(vllm_gpu_nodes); the modes are checked by C(baremetal.gpu.vllm_plan).
author:
  - baremetal.gpu maintainers (@baremetal-gpu)
options:
  _input:
    description: Inventory hostnames (C(groups['gpu_nodes'])).
    type: list
    elements: str
    required: true
  hostvars:
    description: C(hostvars).
    type: raw
    required: true
"""

EXAMPLES = r"""
- name: Modes of every GPU node
  ansible.builtin.debug:
    msg: "{{ groups['gpu_nodes'] | baremetal.gpu.gpu_nodes(hostvars) }}"
"""

RETURN = r"""
_value:
  description: One C({name, modes, selector}) per host with modes.
  type: list
  elements: dict
"""

from ansible.errors import AnsibleFilterError


def gpu_nodes(hosts, hostvars):
    """``groups['gpu_nodes'] | baremetal.gpu.gpu_nodes(hostvars)``."""
    out = []
    names = set()
    for host in hosts or []:
        host_vars = hostvars[host]
        modes = host_vars.get("gpu_modes")
        if modes is None:
            continue
        name = str(host_vars.get("gpu_node_name") or host)
        if name in names:
            raise AnsibleFilterError("two inventory hosts have the Kubernetes node name %s (gpu_node_name)" % name)
        names.add(name)
        out.append({"name": name, "modes": modes, "selector": host_vars.get("gpu_node_selector") or None})
    return out


class FilterModule(object):
    def filters(self):
        return {"gpu_nodes": gpu_nodes}
