#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: baremetal.gpu maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: nvidia_driver_plan
short_description: Read a node's NVIDIA driver state and decide what the nvidia_driver role does
version_added: "0.1.0"
description:
  - Reads, without changing anything, what decides a driver install on a GPU node - the driver
    packages the package manager has installed (and which of them are held), the module the kernel has
    loaded (C(/proc/driver/nvidia/version)), the GPUs C(nvidia-smi) sees, whether C(nouveau) is loaded,
    the Secure Boot state and DKMS signing key, and whether the node runs k3s.
  - Returns the plan the C(baremetal.gpu.nvidia_driver) role follows - nothing to do, install, load,
    adopt a driver installed outside the package manager, change branch, or refuse - with the
    packages, repository and pin that implement it, the reboot decision and the Secure Boot verdict.
  - The decisions are plain functions in C(plugins/module_utils/driver.py), the state is read by
    C(plugins/module_utils/driver_state.py) (the kernel module and the GPUs through the code of
    M(baremetal.gpu.gpu_facts)); this module only joins them.
  - Fails, naming the OS and the supported list, on an unsupported distribution, release or
    architecture. A branch/source combination that cannot be installed is reported in
    RV(packages_error), so that a driver can still be verified.
author:
  - baremetal.gpu maintainers (@baremetal-gpu)
options:
  branch:
    description: Driver branch wanted, for example C("580").
    type: str
    required: true
  source:
    description:
      - C(distro) installs the distribution's own packages (Ubuntu restricted, Debian non-free).
      - C(cuda) installs from NVIDIA's CUDA repository (apt, or dnf module streams on RHEL).
    type: str
    choices: [distro, cuda]
    default: distro
  open_kernel_module:
    description: Install NVIDIA's open kernel module (true) or the proprietary one (false).
    type: bool
    default: true
  kernel_module:
    description:
      - Whether the role builds and loads the kernel module. Off in containers, which cannot load
        kernel modules; then only userspace packages are planned and no reboot is ever required.
    type: bool
    default: true
  precompiled:
    description: On Ubuntu with O(source=distro), use Canonical's signed prebuilt modules instead of DKMS.
    type: bool
    default: false
  allow_branch_change:
    description: Plan a change when another branch (or kernel module flavour) is installed or loaded.
    type: bool
    default: false
  reboot_allowed:
    description: Whether the role may reboot the node; only changes C(reboot.reboot) in the result.
    type: bool
    default: false
  distribution:
    description: C(ansible_distribution) of the node.
    type: str
    required: true
  distribution_version:
    description: C(ansible_distribution_version) of the node.
    type: str
    required: true
  distribution_major_version:
    description: C(ansible_distribution_major_version) of the node.
    type: str
  architecture:
    description: C(ansible_architecture) of the node.
    type: str
    default: x86_64
  kernel:
    description: Running kernel release (C(ansible_kernel)), for headers and Ubuntu's prebuilt modules.
    type: str
    required: true
  cuda_repo_base:
    description: Base URL of NVIDIA's CUDA repositories, or of a mirror with the same layout.
    type: str
    default: https://developer.download.nvidia.com/compute/cuda/repos
  node_name:
    description: Kubernetes node name of this host, for draining before a branch change.
    type: str
  drain_delegate:
    description: Inventory host that drains this node when it is a k3s agent without a kubeconfig.
    type: str
  drain_timeout:
    description: Seconds C(kubectl drain) may take.
    type: int
    default: 300
  proc_root:
    description:
      - Where C(/proc) is (C(modules), C(driver/nvidia/version)). Only tests and chroots change it.
    type: path
    default: /proc
notes:
  - Read-only; supports check mode fully and never reports a change.
seealso:
  - module: baremetal.gpu.gpu_facts
extends_documentation_fragment:
  - baremetal.gpu.read_only
"""

EXAMPLES = r"""
- name: Plan the driver install
  baremetal.gpu.nvidia_driver_plan:
    branch: "580"
    source: distro
    distribution: "{{ ansible_distribution }}"
    distribution_version: "{{ ansible_distribution_version }}"
    distribution_major_version: "{{ ansible_distribution_major_version }}"
    architecture: "{{ ansible_architecture }}"
    kernel: "{{ ansible_kernel }}"
  register: driver_plan

- name: Refuse to change the branch under running workloads
  ansible.builtin.assert:
    that: driver_plan.plan.action != 'refuse'
    fail_msg: "{{ driver_plan.plan.reason }}"
"""

RETURN = r"""
platform:
  description: The supported platform the node runs.
  returned: always
  type: dict
  sample: {distribution: Ubuntu, release: "24.04", family: Debian, codename: noble, architecture: x86_64}
installed:
  description: Driver packages installed, with their driver versions and branches.
  returned: always
  type: dict
  sample: {packages: {nvidia-utils-580-server: "580.95.05"}, versions: ["580.95.05"], branches: ["580"],
           version: "580.95.05", branch: "580"}
held:
  description: Names of packages the package manager holds (apt only).
  returned: always
  type: list
  elements: str
loaded:
  description: The loaded driver, from /proc/driver/nvidia/version; null when none is loaded.
  returned: always
  type: dict
  sample: {version: "580.159.04", branch: "580", kernel_module_type: open, architecture: x86_64}
gpus:
  description:
    - GPUs the loaded driver sees, as M(baremetal.gpu.gpu_facts) reports them (NVML, else C(nvidia-smi));
      empty when no driver is loaded or none is seen.
  returned: always
  type: list
  elements: dict
  sample: [{index: 0, uuid: GPU-5e0c..., name: NVIDIA H100 80GB HBM3, memory_total_mib: 81559}]
gpu_reason:
  description: Why RV(gpus) is empty (no driver loaded, no device found, the error nvidia-smi gave); null when GPUs were seen.
  returned: always
  type: str
nouveau_loaded:
  description: Whether the nouveau module is loaded.
  returned: always
  type: bool
plan:
  description: What the role does; see C(plan()) in module_utils/driver.py for each action.
  returned: always
  type: dict
  sample: {action: none, current_branch: "580", wanted_branch: "580", branch_change_requested: false,
           flavour_change_requested: false, managed_by_packages: true,
           reason: "Branch 580 is installed and loaded; nothing to change."}
packages:
  description: Packages (or dnf module specs) that install the wanted branch (empty with RV(packages_error)).
  returned: always
  type: list
  elements: str
packages_error:
  description:
    - Why the wanted branch cannot be installed from the chosen source on this platform (for example
      Debian's archive serving another branch); null when it can. The role fails with it unless it
      only verifies.
  returned: always
  type: str
build_packages:
  description: Packages needed to build the module with DKMS for the running kernel.
  returned: always
  type: list
  elements: str
pin:
  description: The apt preferences text and the glob patterns that keep the driver on its branch.
  returned: always
  type: dict
cuda_repo:
  description: NVIDIA CUDA repository URL and signing key URL for this platform (null when it has none).
  returned: always
  type: dict
reboot:
  description: Reboot decision for the current state (required, reboot, reason).
  returned: always
  type: dict
secure_boot:
  description: Secure Boot state, DKMS signing key and the verdict (ok, reason, fix steps).
  returned: always
  type: dict
k3s:
  description: Whether the node runs k3s and how it can be drained.
  returned: always
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.baremetal.gpu.plugins.module_utils import driver, driver_state, platforms


def runner(module):
    """``run(argv) -> (rc, stdout, stderr)`` for read-only commands; rc None when the program is missing."""
    def run(argv):
        path = module.get_bin_path(argv[0], opt_dirs=["/usr/local/nvidia/bin"])
        if path is None:
            return None, "", "%s not found" % argv[0]
        return module.run_command([path] + list(argv[1:]), environ_update={"LC_ALL": "C"})
    return run


def main():
    module = AnsibleModule(
        argument_spec=dict(
            branch=dict(type="str", required=True),
            source=dict(type="str", default="distro", choices=list(driver.SOURCES)),
            open_kernel_module=dict(type="bool", default=True),
            kernel_module=dict(type="bool", default=True),
            precompiled=dict(type="bool", default=False),
            allow_branch_change=dict(type="bool", default=False),
            reboot_allowed=dict(type="bool", default=False),
            distribution=dict(type="str", required=True),
            distribution_version=dict(type="str", required=True),
            distribution_major_version=dict(type="str"),
            architecture=dict(type="str", default="x86_64"),
            kernel=dict(type="str", required=True),
            cuda_repo_base=dict(type="str", default=driver.CUDA_REPO_BASE),
            node_name=dict(type="str"),
            drain_delegate=dict(type="str"),
            drain_timeout=dict(type="int", default=300),
            proc_root=dict(type="path", default="/proc"),
        ),
        supports_check_mode=True,
    )
    p = module.params
    try:
        plat = platforms.platform(p["distribution"], p["distribution_version"], p["distribution_major_version"],
                                  p["architecture"])
        branch = driver.normalize_branch(p["branch"])
    except (platforms.UnsupportedPlatform, driver.DriverError) as exc:
        module.fail_json(msg=str(exc))
    precompiled = bool(p["precompiled"]) and plat["distribution"] == "Ubuntu" and p["source"] == "distro"
    packages_error = None
    try:
        packages = driver.driver_packages(plat, p["source"], branch, p["open_kernel_module"], p["kernel_module"],
                                          precompiled, p["kernel"])
    except driver.DriverError as exc:
        # Only fatal when something is to be installed: a verify-only run, or a driver installed
        # outside the package manager, does not need an installable package set.
        packages, packages_error = [], str(exc)

    state = driver_state.gather(runner(module), plat, nvidia_smi=module.get_bin_path("nvidia-smi"),
                                proc_root=p["proc_root"])
    installed, loaded = state["installed"], state["loaded"]
    nouveau_loaded = state["kernel_module"]["nouveau_loaded"]
    the_plan = driver.plan(branch, installed, loaded, p["open_kernel_module"], p["allow_branch_change"],
                           p["kernel_module"])
    reboot = driver.reboot_decision(installed["version"], loaded["version"] if loaded else None, nouveau_loaded,
                                    p["kernel_module"], p["reboot_allowed"])
    sb = dict(state["secure_boot"])
    sb.update(driver.secure_boot_verdict(
        sb["enabled"], module_loaded=bool(loaded), precompiled_signed=precompiled,
        mok_key_enrolled=sb["mok_key_enrolled"], distribution=driver_state.driver_key_family(plat),
        kernel_module=p["kernel_module"]))
    is_k3s, has_kubeconfig = state["k3s"]
    try:
        drain = driver.drain_plan(is_k3s, has_kubeconfig, p["drain_delegate"], p["node_name"] or None,
                                  p["drain_timeout"])
    except driver.DriverError as exc:
        module.fail_json(msg=str(exc))
    drain["is_k3s_node"] = is_k3s

    patterns = driver.hold_patterns(plat)
    cuda_repo = None
    if p["architecture"] in plat["cuda_repo_arches"]:
        cuda_repo = {"url": driver.cuda_repo_url(plat, p["cuda_repo_base"]),
                     "key_url": driver.cuda_repo_key_url(plat, p["cuda_repo_base"])}

    module.exit_json(
        changed=False,
        platform=plat,
        installed=installed,
        held=state["held"],
        loaded=loaded,
        gpus=state["gpus"],
        gpu_reason=state["gpu_reason"],
        nouveau_loaded=nouveau_loaded,
        plan=the_plan,
        packages=packages,
        packages_error=packages_error,
        build_packages=driver.kernel_build_packages(plat, p["kernel"], precompiled) if p["kernel_module"] else [],
        pin={"patterns": patterns, "apt_preferences": driver.apt_pin(branch, patterns)},
        cuda_repo=cuda_repo,
        reboot=reboot,
        secure_boot=sb,
        k3s=drain,
    )


if __name__ == "__main__":
    main()
