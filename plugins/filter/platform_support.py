# -*- coding: utf-8 -*-
# Copyright: baremetal.gpu maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
name: platform_support
short_description: Whether a node's OS, release and architecture are supported by baremetal.gpu
version_added: "0.1.0"
description:
  - Looks the node up in the collection's one support table (C(plugins/module_utils/platforms.py)),
    the same table the C(baremetal.gpu.nvidia_driver_plan) module reads its repositories from.
  - Returns whether the node is supported, a message naming its OS and the supported list when it is
    not, and the platform entry (family, release, codename, CUDA repository layout) when it is.
author:
  - baremetal.gpu maintainers (@baremetal-gpu)
options:
  _input:
    description: C(ansible_distribution), for example C(Debian) or C(Ubuntu).
    type: str
    required: true
  version:
    description: C(ansible_distribution_version) (Ubuntu releases are told apart by it, for example C(24.04)).
    type: str
    required: true
  major_version:
    description: C(ansible_distribution_major_version).
    type: str
  architecture:
    description: C(ansible_architecture).
    type: str
    default: x86_64
"""

EXAMPLES = r"""
- name: Fail unless the node is supported
  ansible.builtin.assert:
    that: support.supported
    fail_msg: "{{ support.message }}"
  vars:
    support: >-
      {{ ansible_distribution | baremetal.gpu.platform_support(ansible_distribution_version,
           ansible_distribution_major_version, ansible_architecture) }}
"""

RETURN = r"""
_value:
  description: C(supported) (bool), C(message) (str) and C(platform) (the table entry with distribution, release and architecture, or null).
  type: dict
"""

from ansible_collections.baremetal.gpu.plugins.module_utils import platforms


def platform_support(distribution, version, major_version=None, architecture="x86_64"):
    """``ansible_distribution | baremetal.gpu.platform_support(version, major_version, architecture)``."""
    return platforms.support(distribution, version, major_version, architecture)


class FilterModule(object):
    def filters(self):
        return {"platform_support": platform_support}
