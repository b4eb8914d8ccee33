# -*- coding: utf-8 -*-
# Copyright: baremetal.gpu maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters exposing plugins/module_utils/container_toolkit.py to the nvidia_container_toolkit role.

The nvidia_driver role gets its decisions from the baremetal.gpu.nvidia_driver_plan module (it has to
read the node's state); the nvidia_container_toolkit role only needs these small decisions, so they are
filters:

- ``os_family | nvidia_toolkit_package_specs(version, packages=None)``: pinned specs, apt "name=1.18.0-1",
  dnf "name-1.18.0-1"; refuses versions that do not look like 1.18.0-1.
- ``os_family | nvidia_toolkit_repo_url(architecture, base)``: NVIDIA's (or a mirror's) repository URL.
- ``requested | nvidia_toolkit_engine(k3s=, containerd=, docker=)``: the engine to configure.
- ``k3s_version_text | k3s_supports_default_runtime``: whether k3s has ``default-runtime``.
- ``config_toml | containerd_has_runtime(name)``: whether a containerd config defines the runtime.
- ``cdi_list_output | cdi_device_names``: device names from ``nvidia-ctk cdi list``.
- ``cdi_names | cdi_missing_gpus(gpus)``: GPUs (index, uuid) no CDI device names.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.errors import AnsibleFilterError

from ansible_collections.baremetal.gpu.plugins.module_utils import container_toolkit as toolkit


def _wrap(function):
    def wrapped(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except toolkit.ToolkitError as exc:
            raise AnsibleFilterError(str(exc))
    wrapped.__doc__ = function.__doc__
    return wrapped


def nvidia_toolkit_engine(requested, k3s=False, containerd=False, docker=False):
    return toolkit.select_engine(requested, k3s=k3s, containerd=containerd, docker=docker)


class FilterModule(object):
    def filters(self):
        return {
            "nvidia_toolkit_package_specs": _wrap(toolkit.toolkit_package_specs),
            "nvidia_toolkit_repo_url": _wrap(toolkit.toolkit_repo_url),
            "nvidia_toolkit_engine": _wrap(nvidia_toolkit_engine),
            "k3s_supports_default_runtime": toolkit.k3s_supports_default_runtime,
            "containerd_has_runtime": toolkit.containerd_config_has_nvidia,
            "cdi_device_names": toolkit.parse_cdi_list,
            "cdi_missing_gpus": toolkit.cdi_missing_gpus,
        }
