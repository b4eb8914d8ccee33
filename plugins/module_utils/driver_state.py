# -*- coding: utf-8 -*-
# Copyright: baremetal.gpu maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read a node's NVIDIA driver state, for the plan of ``driver.py`` (module ``baremetal.gpu.nvidia_driver_plan``).

Read-only: the package manager's database and holds, the loaded kernel modules and the GPUs (through
``gpu.py``, the code ``gpu_facts`` runs), Secure Boot and the DKMS signing key, whether the node runs
k3s. Commands go through ``run(argv) -> (rc, stdout, stderr)`` (rc None when the program is missing)
so the module can hand in ``AnsibleModule.run_command``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.baremetal.gpu.plugins.module_utils import driver, gpu
from ansible_collections.baremetal.gpu.plugins.module_utils.versions import branch_of

K3S_BINARIES = ("/usr/local/bin/k3s", "/usr/bin/k3s")
K3S_UNITS = ("/etc/systemd/system/k3s.service", "/etc/systemd/system/k3s-agent.service")
K3S_KUBECONFIG = "/etc/rancher/k3s/k3s.yaml"
DPKG_QUERY = ["dpkg-query", "-W", "-f=${Package}\\t${Version}\\t${db:Status-Abbrev}\\n"]
RPM_QUERY = ["rpm", "-qa", "--qf", "%{NAME}\\t%{EPOCHNUM}:%{VERSION}-%{RELEASE}\\n"]


def _read_bytes(path):
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except (IOError, OSError):
        return None


def installed_packages(run, family):
    """``({name: version}, [held names])`` from dpkg (Debian family) or rpm (RedHat family)."""
    if family == "Debian":
        rc, out, dummy = run(DPKG_QUERY)
        packages = driver.parse_dpkg_query(out) if rc == 0 else {}
        rc, out, dummy = run(["dpkg", "--get-selections"])
        return packages, driver.parse_dpkg_holds(out) if rc == 0 else []
    rc, out, dummy = run(RPM_QUERY)
    return (driver.parse_rpm_query(out) if rc == 0 else {}), []


def loaded_driver(kernel_module):
    """The loaded driver as ``driver.plan`` reads it (``gpu.kernel_module_facts`` output); None when none is."""
    if not kernel_module.get("version"):
        return None
    return {"version": kernel_module["version"], "branch": branch_of(kernel_module["version"]),
            "kernel_module_type": kernel_module["flavor"], "architecture": kernel_module.get("architecture")}


def secure_boot(run, plat, exists=os.path.exists, efivar=None):
    """Secure Boot state and the DKMS signing key: ``{enabled, mok_key, mok_key_enrolled}``."""
    rc, out, err = run(["mokutil", "--sb-state"])
    state = driver.parse_secure_boot(
        mokutil_output=(out or "") + (err or "") if rc is not None else None,
        efivar_bytes=efivar if efivar is not None else _read_bytes(driver.SECURE_BOOT_EFIVAR))
    key = driver.MOK_KEYS.get(driver_key_family(plat), driver.MOK_KEYS["Debian"])
    enrolled = None
    if state and exists(key):
        rc, out, err = run(["mokutil", "--test-key", key])
        enrolled = "already enrolled" in ((out or "") + (err or "")).lower()
    return {"enabled": state, "mok_key": key if exists(key) else None, "mok_key_enrolled": enrolled}


def driver_key_family(plat):
    """Where DKMS keeps its key: Ubuntu has its own place, the others follow their OS family."""
    return plat["distribution"] if plat["distribution"] == "Ubuntu" else plat["family"]


def k3s_presence(exists=os.path.exists):
    """``(runs k3s, has the server's kubeconfig)``."""
    return any(exists(path) for path in K3S_BINARIES + K3S_UNITS), exists(K3S_KUBECONFIG)


def gather(run, plat, nvidia_smi=None, proc_root="/proc"):
    """Everything the plan needs from the node::

        {packages: {name: version}, held: [...], installed: driver.installed_driver(...),
         kernel_module: gpu.kernel_module_facts(...), loaded: {...} or None,
         gpus: [...], gpu_reason: str or None, secure_boot: {...}, k3s: (is_k3s, has_kubeconfig)}

    GPUs are read (NVML, else ``nvidia-smi``) only when a driver is loaded: without one there is none to see.
    """
    packages, held = installed_packages(run, plat["family"])
    kernel_module = gpu.kernel_module_facts(proc_root)
    loaded = loaded_driver(kernel_module)
    gpus, gpu_reason = [], "no NVIDIA driver loaded"
    if loaded:
        facts = gpu.gather("auto", run=run, nvidia_smi=nvidia_smi, proc_root=proc_root)
        gpus, gpu_reason = facts["gpus"], facts["reason"]
    return {
        "packages": packages,
        "held": held,
        "installed": driver.installed_driver(packages),
        "kernel_module": kernel_module,
        "loaded": loaded,
        "gpus": gpus,
        "gpu_reason": gpu_reason,
        "secure_boot": secure_boot(run, plat),
        "k3s": k3s_presence(),
    }
