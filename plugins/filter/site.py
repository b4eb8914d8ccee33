# -*- coding: utf-8 -*-
# Copyright: baremetal.gpu maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters exposing plugins/module_utils/site.py to site.yml and preflight.yml:

- ``catalog | site_node_workloads(host, groups['gpu_nodes'], hostvars)``: the enabled catalog entries that
  may run on ``host`` (its own mode-bound ones, and those no node's modes name), the ones its preflight checks.
- ``vllm_plan | site_serving_endpoints(active)``: the workloads serving after the run (``active``: node name
  -> active mode), with their Service, port, served names and ingress hosts.
- ``nodes | site_summary(endpoints, clock, finished, simulated='')``: the lines of the summary.
- ``groups['gpu_nodes'] | site_gpu_node_names(hostvars)``: Kubernetes names of the nodes whose GPU stages ran.
- ``groups['gpu_nodes'] | site_active_modes(hostvars)``: node name -> the mode the gpu_mode stage left active.
- ``groups['gpu_nodes'] | map('baremetal.gpu.site_node_report_of', hostvars)``: each node's part of the summary.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError

from ansible_collections.baremetal.gpu.plugins.module_utils import site


def site_node_workloads(catalog, host, hosts, hostvars):
    try:
        return site.node_workloads(catalog, host, hosts, hostvars)
    except site.SiteError as exc:
        raise AnsibleFilterError(str(exc))


def site_serving_endpoints(plan, active):
    return site.serving_endpoints(plan, dict(active or {}))


def site_summary(nodes, endpoints, clock, finished, simulated=""):
    return site.summary_lines(nodes, endpoints, clock, finished, simulated)


def site_gpu_node_names(hosts, hostvars):
    return site.gpu_node_names(hosts, hostvars)


def site_active_modes(hosts, hostvars):
    return site.active_modes(hosts, hostvars)


def site_node_report_of(host, hostvars):
    return site.node_report(host, hostvars[host])


class FilterModule(object):
    def filters(self):
        return {"site_node_workloads": site_node_workloads, "site_serving_endpoints": site_serving_endpoints,
                "site_summary": site_summary, "site_gpu_node_names": site_gpu_node_names,
                "site_active_modes": site_active_modes, "site_node_report_of": site_node_report_of}
