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
    fallbacks that exist, flags given both as keys and in C(args), dtypes vLLM knows, the active GPU mode)
    and expands every entry with the role's knobs - names, labels, container args, probes, replicas of the
    active GPU mode, placement, volumes - into the plan the role's templates render.
  - Fails listing every problem, each naming the entry and the key.
  - The logic is C(plugins/module_utils/catalog.py) (C(plan())).
author:
  - baremetal.gpu maintainers (@baremetal-gpu)
options:
  _input:
    description: The catalog, a list of entries (C(vllm_catalog)).
    type: list
    elements: dict
    required: true
  role_vars:
    description:
      - The role's C(vllm_*) variables, names included (the knobs of C(roles/vllm/defaults/main.yml) as the
        inventory set them); other names are ignored.
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Expand the catalog with the role's knobs
  ansible.builtin.set_fact:
    vllm_plan: "{{ vllm_catalog | baremetal.gpu.vllm_plan(dict(names | zip(query('ansible.builtin.vars', *names)))) }}"
  vars:
    names: "{{ query('ansible.builtin.varnames', '^vllm_') }}"

- name: The model option of baremetal.gpu.vllm_compat for a catalog entry
  ansible.builtin.debug:
    msg: "{{ vllm_catalog[0] | baremetal.gpu.vllm_compat_model }}"

- name: The sleepers this node's GPU modes keep beside that entry (vllm_compat's standby option)
  ansible.builtin.debug:
    msg: "{{ vllm_catalog[0] | baremetal.gpu.vllm_compat_standby(gpu_modes, vllm_catalog, vllm_image) }}"
"""

RETURN = r"""
_value:
  description: The plan - namespace, labels, modes, workloads (one per enabled entry), services and claims.
  type: dict
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.baremetal.gpu.plugins.module_utils import catalog


def vllm_plan(entries, role_vars):
    """``vllm_catalog | baremetal.gpu.vllm_plan(role_vars)``."""
    try:
        return catalog.plan(list(entries or []), catalog.settings_from_vars(dict(role_vars or {})))
    except catalog.CatalogError as exc:
        raise AnsibleFilterError(str(exc))


def vllm_compat_model(entry):
    """``entry | baremetal.gpu.vllm_compat_model``: the ``model`` option of ``baremetal.gpu.vllm_compat``."""
    if not isinstance(entry, dict) or not (entry.get("model_id") or entry.get("model")):
        raise AnsibleFilterError("vllm_compat_model needs a catalog entry with model (or model_id), got %r" % (entry,))
    return catalog.compat_model(entry)


def vllm_compat_standby(entry, gpu_modes, entries, default_image):
    """``entry | baremetal.gpu.vllm_compat_standby(gpu_modes, vllm_catalog, vllm_image)``: the ``standby`` option
    of ``baremetal.gpu.vllm_compat``, the sleepers the node's modes keep beside the entry while it is awake."""
    if not isinstance(entry, dict):
        raise AnsibleFilterError("vllm_compat_standby needs a catalog entry, got %r" % (entry,))
    if not entry.get("name"):
        return []
    return catalog.standby_beside(entry["name"], gpu_modes, list(entries or []), default_image)


class FilterModule(object):
    def filters(self):
        return {"vllm_plan": vllm_plan, "vllm_compat_model": vllm_compat_model,
                "vllm_compat_standby": vllm_compat_standby}
