# -*- coding: utf-8 -*-
# Copyright: baremetal.gpu maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
name: k3s_worker_plan
short_description: Validate the k3s_gpu_worker role's variables and decide what to install on a node
version_added: "0.1.0"
description:
  - Checks the pinned k3s release string, the sha256 of the binary (and of the air-gap images), the
    node's architecture, the server URL and token of an agent, node labels (Kubernetes syntax, labels a
    node may not set on itself), taints, kubelet arguments and C(default-runtime) against the pinned
    release, and fails listing every problem before the role changes anything.
  - Derives the node's GPU labels from C(baremetal.gpu.gpu_facts) facts (product, count, memory,
    C(memorysize=12GB), compute capability, driver and CUDA versions) and returns the content of
    C(/etc/rancher/k3s/config.yaml), the binary URL, the service name and unit type.
  - The logic is C(plugins/module_utils/k3s.py) (C(plan())); the unit tests call it directly.
author:
  - baremetal.gpu maintainers (@baremetal-gpu)
options:
  _input:
    description: The role's variables without the C(k3s_gpu_worker_) prefix (C(k3s_gpu_worker_settings)).
    type: dict
    required: true
  facts:
    description: GPU facts of the node (C(ansible_facts.nvidia_gpu) of C(baremetal.gpu.gpu_facts)).
    type: dict
"""

EXAMPLES = r"""
- name: Decide what to install
  ansible.builtin.set_fact:
    k3s_gpu_worker_plan: "{{ k3s_gpu_worker_settings | baremetal.gpu.k3s_worker_plan(ansible_facts.nvidia_gpu) }}"
"""

RETURN = r"""
_value:
  description: The plan - service, unit type, binary URL and sha256, labels, taints, config.yaml content.
  type: dict
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.baremetal.gpu.plugins.module_utils import k3s


def k3s_worker_plan(settings, facts=None):
    """``k3s_gpu_worker_settings | baremetal.gpu.k3s_worker_plan(facts)``."""
    try:
        return k3s.plan(dict(settings or {}), dict(facts or {}))
    except k3s.K3sError as exc:
        raise AnsibleFilterError(str(exc))


class FilterModule(object):
    def filters(self):
        return {"k3s_worker_plan": k3s_worker_plan}
