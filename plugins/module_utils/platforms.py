# -*- coding: utf-8 -*-
# Copyright: baremetal.gpu maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The operating systems baremetal.gpu supports on GPU nodes, and what the roles need to know of each.

One table for every role: ``common`` checks a node against it (filter ``baremetal.gpu.platform_support``),
``nvidia_driver`` reads its repositories from it (module ``baremetal.gpu.nvidia_driver_plan``),
``nvidia_container_toolkit`` checks the node the same way. Plain data and functions, no I/O.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

#: Supported (distribution, release) -> what the roles need to know about it.
#: ``distro_branches``: the driver branches the distribution's own archive serves.
#: ``cuda_repo_arches``: NVIDIA CUDA repository directory per ``ansible_architecture``.
PLATFORMS = {
    ("Ubuntu", "22.04"): {
        "family": "Debian", "codename": "jammy", "cuda_repo_dist": "ubuntu2204",
        "distro_branches": None, "cuda_repo_arches": {"x86_64": "x86_64", "aarch64": "sbsa"},
    },
    ("Ubuntu", "24.04"): {
        "family": "Debian", "codename": "noble", "cuda_repo_dist": "ubuntu2404",
        "distro_branches": None, "cuda_repo_arches": {"x86_64": "x86_64", "aarch64": "sbsa"},
    },
    ("Debian", "12"): {
        "family": "Debian", "codename": "bookworm", "cuda_repo_dist": "debian12",
        "distro_branches": ["535"], "cuda_repo_arches": {"x86_64": "x86_64"},
    },
    ("Debian", "13"): {
        "family": "Debian", "codename": "trixie", "cuda_repo_dist": "debian13",
        "distro_branches": ["550"], "cuda_repo_arches": {"x86_64": "x86_64"},
    },
    ("Rocky", "9"): {
        "family": "RedHat", "codename": None, "cuda_repo_dist": "rhel9",
        "distro_branches": [], "cuda_repo_arches": {"x86_64": "x86_64", "aarch64": "sbsa"},
    },
    ("RedHat", "9"): {
        "family": "RedHat", "codename": None, "cuda_repo_dist": "rhel9",
        "distro_branches": [], "cuda_repo_arches": {"x86_64": "x86_64", "aarch64": "sbsa"},
    },
}

ARCHITECTURES = ("x86_64", "aarch64")


class UnsupportedPlatform(ValueError):
    """The node's OS, release or architecture is not supported; the message names it and the list."""


def release_of(distribution, version, major_version=None):
    """The release as the support table names it: Ubuntu "24.04", the others their major version."""
    if distribution == "Ubuntu":
        return str(version)
    return str(major_version if major_version not in (None, "") else str(version).split(".", maxsplit=1)[0])


def supported_list():
    """Human-readable list of supported platforms, e.g. "Debian 12, Debian 13, ..."."""
    return ", ".join("%s %s" % key for key in sorted(PLATFORMS))


def platform(distribution, version, major_version=None, architecture="x86_64"):
    """The platform entry (with distribution, release, architecture); UnsupportedPlatform naming the
    OS and the supported list when the node is not supported."""
    release = release_of(distribution, version, major_version)
    info = PLATFORMS.get((distribution, release))
    if info is None or architecture not in ARCHITECTURES:
        raise UnsupportedPlatform(
            "%s %s (%s) is not supported by baremetal.gpu. Supported: %s, on %s."
            % (distribution, release, architecture, supported_list(), " or ".join(ARCHITECTURES))
        )
    result = dict(info)
    result.update({"distribution": distribution, "release": release, "architecture": architecture})
    return result


def support(distribution, version, major_version=None, architecture="x86_64"):
    """``platform()`` as data for a role's assert: ``{"supported": bool, "message": str, "platform": {...}}``."""
    try:
        found = platform(distribution, version, major_version, architecture)
    except UnsupportedPlatform as exc:
        return {"supported": False, "message": str(exc), "platform": None}
    return {"supported": True, "message": "%s %s (%s) is supported." % (
        found["distribution"], found["release"], found["architecture"]), "platform": found}
