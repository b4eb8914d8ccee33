# -*- coding: utf-8 -*-
# Copyright: baremetal.gpu maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure logic behind the ``nvidia_driver`` role: packages, repositories, pins, plans, reboots, Secure Boot.

Plain functions over plain data (strings, dicts, lists): no Ansible, no I/O. ``driver_state.py``
reads a node's state for them (module ``baremetal.gpu.nvidia_driver_plan``); the unit tests call them
directly. The supported platforms are ``platforms.py``'s, the container toolkit's logic is
``container_toolkit.py``.

Sources for the package names and repository layouts (checked 2026-11; NVIDIA's servers are not
reachable from the test machines, so names marked "NVIDIA repo" are taken from NVIDIA's documentation
and NVIDIA/ansible-role-nvidia-driver, not from a live index):

- Debian non-free: https://packages.debian.org/source/bookworm/nvidia-graphics-drivers (535 in
  Debian 12, 550 in Debian 13), indexes read from deb.debian.org.
- Ubuntu restricted: nvidia-headless-<branch>-server[-open], nvidia-utils-<branch>-server,
  linux-modules-nvidia-<branch>-server[-open]-<kernel> (Canonical-signed prebuilt modules).
- NVIDIA CUDA repo: https://developer.download.nvidia.com/compute/cuda/repos/<dist>/<arch>/
  with cuda-drivers-<branch> / nvidia-open-<branch> (apt, branches < 590), nvidia-driver-pinning-<branch>
  plus cuda-drivers / nvidia-open (apt, 590 and later, after NVIDIA's package renames), and dnf module
  streams nvidia-driver:<branch>-dkms / nvidia-driver:<branch>-open (RHEL 9).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.baremetal.gpu.plugins.module_utils.versions import branch_of, parse_driver_version

SOURCES = ("distro", "cuda")

CUDA_REPO_BASE = "https://developer.download.nvidia.com/compute/cuda/repos"
#: Signing key files NVIDIA publishes beside each CUDA repository.
CUDA_REPO_KEY_FILE = {"Debian": "3bf863cc.pub", "RedHat": "D42D0685.pub"}


class DriverError(ValueError):
    """A request the roles must refuse, with a message meant for the operator."""


# --------------------------------------------------------------------------------------------------
# Versions and branches
# --------------------------------------------------------------------------------------------------

_BRANCH_RE = re.compile(r"^\d{3}$")


def normalize_branch(branch):
    """Return a branch as a three-digit string ("580"); accept 580, "580", "R580", "580.159.04"."""
    text = str(branch).strip()
    if text[:1] in ("r", "R"):
        text = text[1:]
    if parse_driver_version(text) is not None:
        text = branch_of(text)
    if not _BRANCH_RE.match(text):
        raise DriverError("nvidia_driver_branch must be a driver branch such as \"580\", got %r" % (branch,))
    return text


def upstream_version(package_version):
    """Strip the epoch and the distribution revision of a package version.

    "580.95.05-0ubuntu0.24.04.2" -> "580.95.05"; "3:580.65.06-1.el9" -> "580.65.06"; "535.261.03-1" -> "535.261.03".
    """
    text = str(package_version).strip()
    if ":" in text:
        text = text.split(":", 1)[1]
    return text.split("-", 1)[0].split("+", 1)[0].split("~", 1)[0]


_PROC_VERSION_RE = re.compile(
    r"NVRM version:\s+NVIDIA UNIX\s+(?P<open>Open Kernel Module for\s+)?(?P<arch>\S+)\s+"
    r"(?:Kernel Module\s+)?(?P<version>\d{3}\.\d+(?:\.\d+)?)"
)


def parse_proc_version(text):
    """Parse /proc/driver/nvidia/version; None when no NVIDIA module is loaded (empty or missing text).

    Returns {"version": "580.159.04", "branch": "580", "kernel_module_type": "open"|"proprietary",
    "architecture": "x86_64"}.
    """
    if not text:
        return None
    match = _PROC_VERSION_RE.search(text)
    if not match:
        return None
    version = match.group("version")
    return {
        "version": version,
        "branch": branch_of(version),
        "kernel_module_type": "open" if match.group("open") else "proprietary",
        "architecture": match.group("arch"),
    }


# --------------------------------------------------------------------------------------------------
# Installed packages
# --------------------------------------------------------------------------------------------------

#: Package names whose version is the driver's own version (not nvidia-persistenced, nvidia-modprobe,
#: nvidia-settings or the toolkit, which are versioned on their own in some distributions).
_DRIVER_PACKAGE_RE = re.compile(
    r"^(?:"
    r"nvidia-utils-\d{3}(?:-server)?"
    r"|libnvidia-compute-\d{3}(?:-server)?"
    r"|nvidia-headless(?:-no-dkms)?-\d{3}(?:-server)?(?:-open)?"
    r"|nvidia-driver-\d{3}(?:-server)?(?:-open)?"
    r"|nvidia-dkms-\d{3}(?:-server)?(?:-open)?"
    r"|nvidia-kernel-common-\d{3}(?:-server)?"
    r"|nvidia-compute-utils-\d{3}(?:-server)?"
    r"|nvidia-smi|libnvidia-ml1|libcuda1|nvidia-kernel-dkms|nvidia-open-kernel-dkms|nvidia-driver"
    r"|nvidia-driver-cuda|nvidia-driver-libs|nvidia-driver-cuda-libs|libnvidia-ml"
    r"|kmod-nvidia-open-dkms|kmod-nvidia-latest-dkms|kmod-nvidia(?:-open)?-\S+"
    r"|nvidia-open(?:-\d{3})?|cuda-drivers(?:-\d{3})?"
    r")$"
)


def parse_dpkg_query(text):
    """Parse ``dpkg-query -W -f='${Package}\\t${Version}\\t${db:Status-Abbrev}\\n'`` into installed packages.

    Only packages whose status says installed ("ii", "hi") count; returns {name: version}.
    """
    installed = {}
    for line in (text or "").splitlines():
        parts = line.split("\t")
        if len(parts) < 3:
            continue
        name, version, status = parts[0].split(":")[0], parts[1], parts[2].strip()
        if len(status) >= 2 and status[1] == "i":
            installed[name] = version
    return installed


def parse_rpm_query(text):
    """Parse ``rpm -qa --qf '%{NAME}\\t%{EPOCHNUM}:%{VERSION}-%{RELEASE}\\n'`` into {name: version}."""
    installed = {}
    for line in (text or "").splitlines():
        parts = line.split("\t")
        if len(parts) == 2 and parts[0]:
            installed[parts[0]] = parts[1].strip()
    return installed


def parse_dpkg_holds(text):
    """Names of held packages from ``dpkg --get-selections`` output."""
    held = []
    for line in (text or "").splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1] == "hold":
            held.append(parts[0].split(":")[0])
    return sorted(held)


def installed_driver(packages):
    """What the package manager says about the driver: {packages, versions, branches, version, branch}.

    ``packages`` is {name: version}. ``version``/``branch`` are None when no driver package is installed
    and the highest when several are (``branches`` then has more than one entry: a mixed install).
    """
    found = {}
    for name, version in sorted((packages or {}).items()):
        if not _DRIVER_PACKAGE_RE.match(name):
            continue
        upstream = upstream_version(version)
        if parse_driver_version(upstream) is None:
            continue
        found[name] = upstream
    versions = sorted(set(found.values()), key=parse_driver_version)
    branches = sorted(set(branch_of(v) for v in versions))
    return {
        "packages": found,
        "versions": versions,
        "branches": branches,
        "version": versions[-1] if versions else None,
        "branch": branch_of(versions[-1]) if versions else None,
    }


# --------------------------------------------------------------------------------------------------
# What to install
# --------------------------------------------------------------------------------------------------


def kernel_flavour(kernel_release):
    """Flavour of an Ubuntu kernel release ("6.8.0-45-generic" -> "generic"); None if it has none."""
    match = re.match(r"^\d+\.\d+\.\d+-\d+-(?P<flavour>[a-z][a-z0-9-]*)$", str(kernel_release or ""))
    return match.group("flavour") if match else None


def driver_packages(plat, source, branch, open_kernel_module=True, kernel_module=True,
                    precompiled=False, kernel_release=None):
    """Package names (or dnf module specs) that install ``branch`` on ``plat`` from ``source``.

    ``kernel_module=False`` leaves out everything that builds or ships the kernel module (containers).
    ``precompiled`` (Ubuntu, distro source) uses Canonical's signed prebuilt modules instead of DKMS.
    Raises DriverError for combinations that cannot work, naming the fix.
    """
    branch = normalize_branch(branch)
    if source not in SOURCES:
        raise DriverError("nvidia_driver_source must be one of %s, got %r" % (", ".join(SOURCES), source))
    distribution = plat["distribution"]
    family = plat["family"]
    name = "%s %s" % (distribution, plat["release"])

    if source == "distro":
        if family == "RedHat":
            raise DriverError(
                "%s does not ship NVIDIA drivers in its own repositories; set nvidia_driver_source: cuda "
                "(NVIDIA's CUDA repository, dnf module streams)." % name)
        if distribution == "Ubuntu":
            suffix = "-server-open" if open_kernel_module else "-server"
            packages = ["nvidia-utils-%s-server" % branch]
            if not kernel_module:
                packages.append("libnvidia-compute-%s-server" % branch)
            elif precompiled:
                flavour = kernel_flavour(kernel_release)
                if not flavour:
                    raise DriverError(
                        "Canonical's prebuilt NVIDIA modules need an Ubuntu kernel release such as "
                        "6.8.0-45-generic, got %r" % (kernel_release,))
                packages += [
                    "nvidia-headless-no-dkms-%s%s" % (branch, suffix),
                    "linux-modules-nvidia-%s%s-%s" % (branch, suffix, flavour),
                    "linux-modules-nvidia-%s%s-%s" % (branch, suffix, kernel_release),
                ]
            else:
                packages.insert(0, "nvidia-headless-%s%s" % (branch, suffix))
            return packages
        # Debian: one branch per release, from non-free (kernel modules from contrib/non-free).
        if branch not in (plat["distro_branches"] or []):
            raise DriverError(
                "%s's own archive serves driver branch %s only, not %s; choose that branch or set "
                "nvidia_driver_source: cuda." % (name, "/".join(plat["distro_branches"] or []), branch))
        packages = ["nvidia-smi", "libnvidia-ml1", "libcuda1", "nvidia-persistenced"]
        if kernel_module:
            packages += ["nvidia-open-kernel-dkms" if open_kernel_module else "nvidia-kernel-dkms",
                         "firmware-nvidia-gsp"]
        return packages

    # NVIDIA's CUDA repository.
    if plat["architecture"] not in plat["cuda_repo_arches"]:
        raise DriverError(
            "NVIDIA's CUDA repository has no %s packages for %s; use nvidia_driver_source: distro."
            % (plat["architecture"], name))
    if family == "RedHat":
        stream = "%s-open" % branch if open_kernel_module else "%s-dkms" % branch
        return ["@nvidia-driver:%s" % stream]
    if not kernel_module:
        # Userspace only (no DKMS build): the compute libraries and nvidia-smi.
        if distribution == "Ubuntu":
            return ["nvidia-utils-%s" % branch, "libnvidia-compute-%s" % branch]
        return ["nvidia-smi", "libcuda1", "libnvidia-ml1"]
    meta = "nvidia-open" if open_kernel_module else "cuda-drivers"
    if int(branch) >= 590:
        return ["nvidia-driver-pinning-%s" % branch, meta]
    return ["%s-%s" % (meta, branch)]


def kernel_build_packages(plat, kernel_release, precompiled=False):
    """Packages needed to build the module for the running kernel with DKMS (none when precompiled)."""
    if precompiled:
        return []
    if plat["family"] == "RedHat":
        return ["kernel-devel-%s" % kernel_release, "kernel-headers", "dkms"]
    return ["linux-headers-%s" % kernel_release, "dkms"]


def hold_patterns(plat):
    """Glob patterns for the apt preferences pin that keeps every driver package on its branch."""
    if plat["family"] == "RedHat":
        return ["*nvidia*", "cuda-drivers*"]
    return ["nvidia-*", "libnvidia-*", "libcuda1", "firmware-nvidia-gsp", "cuda-drivers*",
            "xserver-xorg-video-nvidia*", "libxnvctrl*"]


def apt_pin(branch, patterns, priority=1001):
    """Text of /etc/apt/preferences.d/<file> pinning ``patterns`` to ``branch``.*.

    Priority above 1000 keeps the branch even when a newer branch is a candidate (and allows going back
    to it); packages with no version on the branch (nvidia-modprobe, nvidia-container-toolkit...) are
    not affected by the pin.
    """
    branch = normalize_branch(branch)
    return (
        "Explanation: Managed by baremetal.gpu (role nvidia_driver): keep the NVIDIA driver on branch %s,\n"
        "Explanation: so that apt upgrade cannot move it under running workloads.\n"
        "Package: %s\n"
        "Pin: version %s.*\n"
        "Pin-Priority: %d\n" % (branch, " ".join(patterns), branch, int(priority))
    )


def cuda_repo_url(plat, base=CUDA_REPO_BASE):
    """URL of NVIDIA's CUDA repository for ``plat`` (``base`` may be a mirror)."""
    arch = plat["cuda_repo_arches"].get(plat["architecture"])
    if arch is None:
        raise DriverError("NVIDIA's CUDA repository has no %s packages for %s %s"
                          % (plat["architecture"], plat["distribution"], plat["release"]))
    return "%s/%s/%s/" % (base.rstrip("/"), plat["cuda_repo_dist"], arch)


def cuda_repo_key_url(plat, base=CUDA_REPO_BASE):
    """URL of the CUDA repository's signing key for ``plat``."""
    return cuda_repo_url(plat, base) + CUDA_REPO_KEY_FILE[plat["family"]]


# --------------------------------------------------------------------------------------------------
# The plan: what the role does on this node
# --------------------------------------------------------------------------------------------------

def plan(wanted_branch, installed, loaded, open_kernel_module=True, allow_branch_change=False,
         kernel_module=True):
    """Decide what the role does, from the wanted branch and the node's state.

    ``installed``: installed_driver(...) result; ``loaded``: parse_proc_version(...) result or None.
    Returns {"action", "current_branch", "branch_change_requested", "flavour_change_requested",
    "managed_by_packages", "reason"}:

    - "none": the wanted branch is installed and loaded (or installed, when kernel_module is off);
      nothing changes.
    - "adopt": the wanted branch is loaded but no driver package is installed (runfile or other
      install); the role must not install packages over it, it only reports and verifies.
    - "install": no NVIDIA driver installed or loaded; install the wanted branch.
    - "load": the wanted branch is installed but not loaded (fresh install, nouveau, or an upgrade
      within the branch waiting for a reboot): load the module or reboot.
    - "change_branch": another branch (or kernel module flavour) is installed or loaded and
      allow_branch_change is on.
    - "refuse": another branch is installed or loaded and allow_branch_change is off; nothing may
      change.
    """
    wanted = normalize_branch(wanted_branch)
    installed = installed or {"branches": [], "branch": None, "version": None}
    loaded_branch = loaded["branch"] if loaded else None
    installed_branches = list(installed.get("branches") or [])
    current = loaded_branch or installed.get("branch")
    others = sorted(set(b for b in installed_branches + ([loaded_branch] if loaded_branch else []) if b != wanted))
    wanted_type = "open" if open_kernel_module else "proprietary"
    flavour_change = bool(loaded and loaded_branch == wanted and loaded["kernel_module_type"] != wanted_type)
    result = {
        "current_branch": current,
        "wanted_branch": wanted,
        "branch_change_requested": bool(others),
        "flavour_change_requested": flavour_change,
        "managed_by_packages": bool(installed_branches),
    }

    if others or flavour_change:
        if others:
            state = "loaded" if loaded_branch in others else "installed"
            what = "Driver branch %s is %s" % ("/".join(others), state)
        else:
            what = "The %s kernel module is loaded" % loaded["kernel_module_type"]
        if not allow_branch_change:
            result.update(action="refuse", reason=(
                "%s but branch %s (%s kernel module) was asked for; refusing to change the driver under "
                "running workloads. Set nvidia_driver_allow_branch_change: true to change it (GPU pods "
                "are drained first on k3s nodes, and a reboot follows)." % (what, wanted, wanted_type)))
        else:
            result.update(action="change_branch", reason="%s; changing to branch %s (%s kernel module) as "
                                                         "allowed." % (what, wanted, wanted_type))
        return result

    if loaded_branch == wanted and not installed_branches:
        result.update(action="adopt", reason=(
            "Driver %s (%s) is loaded but was not installed by the package manager (runfile or other "
            "install); leaving it as it is and only verifying." % (loaded["version"], loaded["kernel_module_type"])))
        return result
    if loaded_branch == wanted or (wanted in installed_branches and not kernel_module):
        result.update(action="none", reason="Branch %s is installed%s; nothing to change." % (
            wanted, " and loaded" if loaded_branch == wanted else ""))
        return result
    if wanted in installed_branches:
        result.update(action="load", reason="Branch %s is installed but not loaded." % wanted)
        return result
    result.update(action="install", reason="No NVIDIA driver is installed; installing branch %s." % wanted)
    return result


def reboot_decision(installed_version, loaded_version, nouveau_loaded=False, kernel_module=True,
                    reboot_allowed=False, load_error=None):
    """Whether the node needs a reboot for the installed driver to be the one running.

    Returns {"required": bool, "reboot": bool (required and allowed), "reason": str}.
    """
    def result(required, reason):
        return {"required": required, "reboot": bool(required and reboot_allowed), "reason": reason}

    if not kernel_module:
        return result(False, "The kernel module step is off (nvidia_driver_kernel_module: false).")
    if installed_version is None:
        if loaded_version:
            return result(False, "Driver %s is loaded (not managed by packages)." % loaded_version)
        return result(False, "No NVIDIA driver is installed.")
    if loaded_version == installed_version:
        return result(False, "Driver %s is installed and loaded." % installed_version)
    if loaded_version:
        return result(True, "Driver %s is loaded but %s is installed; a reboot loads the new one."
                      % (loaded_version, installed_version))
    if nouveau_loaded:
        return result(True, "nouveau is loaded and holds the GPU; a reboot (with nouveau blacklisted) "
                            "loads driver %s." % installed_version)
    return result(True, "Driver %s is installed but its module did not load%s; a reboot may load it."
                  % (installed_version, ": %s" % load_error if load_error else ""))


# --------------------------------------------------------------------------------------------------
# Secure Boot
# --------------------------------------------------------------------------------------------------

SECURE_BOOT_EFIVAR = "/sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c"
MOK_KEYS = {
    "Ubuntu": "/var/lib/shim-signed/mok/MOK.der",
    "Debian": "/var/lib/dkms/mok.pub",
    "RedHat": "/var/lib/dkms/mok.pub",
}


def parse_secure_boot(mokutil_output=None, efivar_bytes=None):
    """Secure Boot state from ``mokutil --sb-state`` output or the SecureBoot EFI variable's bytes.

    Returns True (enabled), False (disabled or no UEFI) or None (unknown).
    """
    text = (mokutil_output or "").lower()
    if "secureboot enabled" in text:
        return True
    if "secureboot disabled" in text or "doesn't support secure boot" in text or "not supported" in text:
        return False
    if efivar_bytes:
        # 4 bytes of attributes, then the value: 1 = enabled.
        data = bytearray(efivar_bytes)
        if len(data) >= 5:
            return data[4] == 1
    return None


def secure_boot_verdict(enabled, module_loaded=False, precompiled_signed=False, mok_key_enrolled=None,
                        distribution="Ubuntu", kernel_module=True):
    """Whether the kernel will accept the module the role is about to install.

    Returns {"ok": bool, "reason": str, "fix": [steps]}: fails (ok False) before anything is installed
    when Secure Boot is on, the module would be built locally by DKMS and no enrolled signing key
    exists.
    """
    if not kernel_module:
        return {"ok": True, "reason": "The kernel module step is off.", "fix": []}
    if enabled is False:
        return {"ok": True, "reason": "Secure Boot is off.", "fix": []}
    if module_loaded:
        return {"ok": True, "reason": "An NVIDIA module is already loaded, so the kernel accepted its signature.",
                "fix": []}
    if enabled is None:
        return {"ok": True, "reason": "Secure Boot state unknown (no mokutil output, no EFI variable); "
                                      "assuming a legacy BIOS boot.", "fix": []}
    if precompiled_signed:
        return {"ok": True, "reason": "Secure Boot is on; the prebuilt modules are signed by the distribution.",
                "fix": []}
    if mok_key_enrolled:
        return {"ok": True, "reason": "Secure Boot is on; DKMS signs the module with an enrolled MOK key.",
                "fix": []}
    key = MOK_KEYS.get(distribution, MOK_KEYS["Debian"])
    fix = [
        "Enrol a Machine Owner Key for DKMS: create it (`dkms generate_mok` on DKMS 3, or install the "
        "driver once so DKMS creates %s), run `mokutil --import %s`, reboot and confirm the key in "
        "MokManager on the console; then run the role again." % (key, key),
    ]
    if distribution == "Ubuntu":
        fix.append("Or use Canonical's signed prebuilt modules: nvidia_driver_source: distro and "
                   "nvidia_driver_ubuntu_precompiled: true (linux-modules-nvidia-<branch>-server[-open]-<kernel>).")
    fix.append("Or turn Secure Boot off in the firmware setup.")
    return {"ok": False,
            "reason": "Secure Boot is on and the NVIDIA module would be built by DKMS without an enrolled "
                      "signing key: the kernel would refuse to load it.",
            "fix": fix}


# --------------------------------------------------------------------------------------------------
# k3s: draining a node before a branch change
# --------------------------------------------------------------------------------------------------


def drain_plan(is_k3s_node, local_kubeconfig=False, delegate=None, node_name=None, timeout=300):
    """How to drain this node before changing the driver branch.

    Returns {"drain": bool, "possible": bool, "run_on": "self"|delegate|None, "argv": [...],
    "uncordon_argv": [...], "reason": str}. On a k3s server the node's own kubeconfig serves; an agent
    needs ``delegate`` (a host with `k3s kubectl` and cluster-admin, e.g. a k3s server).
    """
    if not is_k3s_node:
        return {"drain": False, "possible": True, "run_on": None, "argv": [], "uncordon_argv": [],
                "reason": "Not a k3s node; nothing to drain."}
    if not node_name:
        raise DriverError("drain_plan needs the Kubernetes node name")
    argv = ["k3s", "kubectl", "drain", node_name, "--ignore-daemonsets", "--delete-emptydir-data",
            "--timeout=%ds" % int(timeout)]
    uncordon = ["k3s", "kubectl", "uncordon", node_name]
    if local_kubeconfig:
        return {"drain": True, "possible": True, "run_on": "self", "argv": argv, "uncordon_argv": uncordon,
                "reason": "k3s server node: draining with its own kubeconfig."}
    if delegate:
        return {"drain": True, "possible": True, "run_on": delegate, "argv": argv, "uncordon_argv": uncordon,
                "reason": "k3s agent node: draining from %s." % delegate}
    return {"drain": True, "possible": False, "run_on": None, "argv": argv, "uncordon_argv": uncordon,
            "reason": "This is a k3s agent node with no kubeconfig, so it cannot drain itself. Set "
                      "nvidia_driver_drain_delegate to a k3s server in the inventory, or drain it by hand "
                      "and set nvidia_driver_drain: false."}
