# -*- coding: utf-8 -*-
# Copyright: baremetal.gpu maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
name: vllm_plan
short_description: Expand the vllm role's model catalog into a deployment plan
version_added: "0.1.0"
description:
  - Validates the catalog (unique DNS names, Services shared only by entries that never run together,
    fallbacks that exist, flags given both as keys and in C(args), the active GPU mode) and expands every
    entry with the role's settings - names, labels, container args, probe budgets, replicas of the active
    GPU mode, volumes - into the plan the role's templates render.
  - Fails listing every problem, each naming the entry and the key.
  - The logic is C(plugins/module_utils/catalog.py) (C(plan())); the benchmark and tests call it directly.
author:
  - baremetal.gpu maintainers (@baremetal-gpu)
options:
  _input:
    description: The catalog, a list of entries (C(vllm_catalog)).
    type: list
    elements: dict
    required: true
  settings:
    description: The role's C(vllm_*) knobs without the prefix (C(vllm_settings) of the role).
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Expand the catalog
  ansible.builtin.set_fact:
    vllm_plan: "{{ vllm_catalog | baremetal.gpu.vllm_plan(vllm_settings) }}"
"""

RETURN = r"""
_value:
  description: The plan - namespace, labels, modes, workloads (one per enabled entry), services and claims.
  type: dict
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.baremetal.gpu.plugins.module_utils import catalog


def vllm_plan(entries, settings):
    """``vllm_catalog | baremetal.gpu.vllm_plan(vllm_settings)``."""
    try:
        return catalog.plan(list(entries or []), dict(settings or {}))
    except catalog.CatalogError as exc:
        raise AnsibleFilterError(str(exc))


class FilterModule(object):
    def filters(self):
        return {"vllm_plan": vllm_plan}
