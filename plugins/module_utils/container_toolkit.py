# -*- coding: utf-8 -*-
# Copyright: baremetal.gpu maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure logic behind the ``nvidia_container_toolkit`` role (exposed to it as filters, plugins/filter/container_toolkit.py).

Sources:

- NVIDIA container toolkit repository: https://nvidia.github.io/libnvidia-container/stable/{deb,rpm}/...
- k3s containerd runtime detection: k3s-io/k3s pkg/agent/containerd/runtimes.go; the default-runtime
  option and built-in RuntimeClasses came with v1.29.0+k3s1, v1.28.5+k3s1, v1.27.9+k3s1 and
  v1.26.12+k3s1 (k3s-io/k3s#8700, #8751).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.baremetal.gpu.plugins.module_utils.versions import version_tuple


class ToolkitError(ValueError):
    """A toolkit setting the role must refuse, with a message meant for the operator."""


TOOLKIT_REPO_BASE = "https://nvidia.github.io/libnvidia-container/stable"
TOOLKIT_PACKAGES = ["nvidia-container-toolkit", "nvidia-container-toolkit-base",
                    "libnvidia-container-tools", "libnvidia-container1"]
ENGINES = ("auto", "k3s", "containerd", "docker", "none")
_DEB_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}
_TOOLKIT_VERSION_RE = re.compile(r"^\d+\.\d+\.\d+(?:~rc\.\d+)?-\d+$")


def toolkit_package_specs(family, version, packages=None):
    """Pinned package specs: apt "name=1.18.0-1", dnf "name-1.18.0-1"."""
    if not _TOOLKIT_VERSION_RE.match(str(version)):
        raise ToolkitError("nvidia_container_toolkit_version must look like 1.18.0-1, got %r" % (version,))
    sep = "=" if family == "Debian" else "-"
    return ["%s%s%s" % (name, sep, version) for name in (packages or TOOLKIT_PACKAGES)]


def toolkit_repo_url(family, architecture, base=TOOLKIT_REPO_BASE):
    """Repository URL: apt ".../stable/deb/amd64", dnf ".../stable/rpm/x86_64"."""
    if architecture not in _DEB_ARCH:
        raise ToolkitError("the NVIDIA container toolkit repository has no %s packages" % architecture)
    if family == "Debian":
        return "%s/deb/%s" % (base.rstrip("/"), _DEB_ARCH[architecture])
    return "%s/rpm/%s" % (base.rstrip("/"), architecture)


def select_engine(requested, k3s=False, containerd=False, docker=False):
    """The container engine to configure: the requested one, or with "auto" the first present of
    k3s, containerd, docker ("none" when there is none)."""
    if requested not in ENGINES:
        raise ToolkitError("nvidia_container_toolkit_engine must be one of %s, got %r"
                           % (", ".join(ENGINES), requested))
    if requested != "auto":
        return requested
    for name, present in (("k3s", k3s), ("containerd", containerd), ("docker", docker)):
        if present:
            return name
    return "none"


_K3S_VERSION_RE = re.compile(r"v?\d+\.\d+\.\d+")
#: First releases of each minor line with `default-runtime` and built-in RuntimeClasses (k3s#8751).
_K3S_DEFAULT_RUNTIME_SINCE = {(1, 26): 12, (1, 27): 9, (1, 28): 5}


def k3s_version(text):
    """(major, minor, patch) from ``k3s --version`` output or a version string; None if absent."""
    match = _K3S_VERSION_RE.search(text or "")
    return version_tuple(match.group(0))[:3] if match else None


def k3s_supports_default_runtime(version):
    """Whether this k3s has the ``default-runtime`` option and the built-in ``nvidia`` RuntimeClass."""
    parsed = k3s_version(version) if not isinstance(version, tuple) else version
    if parsed is None:
        return False
    major, minor, patch = parsed
    if (major, minor) >= (1, 29):
        return True
    since = _K3S_DEFAULT_RUNTIME_SINCE.get((major, minor))
    return since is not None and patch >= since


def containerd_config_has_nvidia(text, runtime="nvidia"):
    """Whether a containerd config.toml (k3s-generated or not) defines the ``runtime`` runtime."""
    pattern = re.compile(r"^\s*\[plugins\.[^\]]*runtimes\.[\"']?%s[\"']?\]\s*$" % re.escape(runtime), re.M)
    return bool(pattern.search(text or ""))


def parse_cdi_list(text):
    """CDI device names from ``nvidia-ctk cdi list`` output (lines like "nvidia.com/gpu=0")."""
    names = []
    for line in (text or "").splitlines():
        line = line.strip()
        if re.match(r"^[a-z0-9.-]+/[a-z0-9.-]+=\S+$", line):
            names.append(line)
    return names


def cdi_missing_gpus(cdi_names, gpus):
    """GPUs (from nvidia-smi: index and uuid) with no CDI device by index or by UUID; [] when all listed."""
    listed = set(name.split("=", 1)[1] for name in cdi_names if name.startswith("nvidia.com/gpu="))
    missing = []
    for gpu in gpus or []:
        if str(gpu.get("index")) not in listed and gpu.get("uuid") not in listed:
            missing.append(gpu)
    return missing
