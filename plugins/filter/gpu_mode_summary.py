# -*- coding: utf-8 -*-
# Copyright: baremetal.gpu maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: gpu_mode_summary
short_description: One short report of a GPU mode switch per node, as the gpu-mode command prints it
version_added: "0.2.0"
description:
  - For each host that ran the C(baremetal.gpu.gpu_mode) module (registered as C(gpu_mode_switch)), the line
    the node's C(gpu-mode) command prints for the same result (from mode, to mode, outcome, seconds per phase;
    the plan in check mode), and for a failed switch its reason.
  - The text comes from C(plugins/module_utils/gpu_mode/report.py), shared with the command.
author:
  - baremetal.gpu maintainers (@baremetal-gpu)
options:
  _input:
    description: Inventory hostnames (C(ansible_play_hosts)).
    type: list
    elements: str
    required: true
  hostvars:
    description: C(hostvars).
    type: raw
    required: true
"""

EXAMPLES = r"""
- name: Summary of the switch, per node
  ansible.builtin.debug:
    msg: "{{ ansible_play_hosts | baremetal.gpu.gpu_mode_summary(hostvars) }}"
  run_once: true
"""

RETURN = r"""
_value:
  description: Lines of text, the nodes in the order given.
  type: list
  elements: str
"""

from ansible_collections.baremetal.gpu.plugins.module_utils.gpu_mode import report


MAX_ERROR = 240


def _first_line(text):
    line = (str(text or "").strip().splitlines() or [""])[0]
    return line if len(line) <= MAX_ERROR else line[:MAX_ERROR] + "..."


def summary_lines(host, result, target=None, node=None):
    """The lines of one host's result (``None`` when it did not run the switch)."""
    if not isinstance(result, dict) or result.get("skipped") or not result:
        return []
    name = result.get("node") or node or host
    if result.get("node") and result.get("to") and result.get("outcome"):
        lines = report.switch_text(result).splitlines()
    else:  # refused before a switch began (unknown mode, unreachable cluster, no interpreter)
        lines = ["node %s: -> %s %s" % (name, result.get("to") or target or "?", result.get("outcome") or "failed")]
    if result.get("failed"):
        lines.append("  error: %s" % _first_line(result.get("msg")))
    if host != name:
        lines[0] = "%s (host %s)" % (lines[0], host)
    return lines


def gpu_mode_summary(hosts, hostvars):
    """``ansible_play_hosts | baremetal.gpu.gpu_mode_summary(hostvars)``."""
    out = []
    for host in hosts or []:
        host_vars = hostvars[host]
        request = host_vars.get("gpu_mode_request") or {}
        out.extend(summary_lines(host, host_vars.get("gpu_mode_switch"), request.get("mode"), request.get("node")))
    return out


class FilterModule(object):
    def filters(self):
        return {"gpu_mode_summary": gpu_mode_summary}
