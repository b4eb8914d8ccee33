#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: baremetal.gpu maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: gpu_facts
short_description: Gather NVIDIA GPU facts of a node (driver, CUDA, GPUs, memory, processes)
version_added: "0.1.0"
description:
  - Reads the NVIDIA driver version, the highest CUDA version the driver supports, whether the
    C(nvidia) kernel module (and C(nouveau)) is loaded, persistence mode, and per GPU its index, name,
    UUID, PCI bus id, compute capability, memory total/reserved/used/free in MiB, MIG mode, product
    brand and class (consumer, workstation or datacenter, which decides whether CUDA forward
    compatibility can work), architecture and running processes.
  - Uses NVML through C(nvidia-ml-py) when it imports and the driver's C(libnvidia-ml.so.1) loads,
    else parses C(nvidia-smi -q -x); both give the same facts.
  - A node without a GPU or without a driver returns RV(gpu_count=0), RV(driver_installed=false) or
    both, and a RV(reason); the module does not fail for that.
  - Sets RV(ansible_facts.nvidia_gpu). Changes nothing; check mode is fully supported.
  - The logic lives in C(plugins/module_utils/gpu.py).
author:
  - baremetal.gpu maintainers (@baremetal-gpu)
options:
  backend:
    description:
      - C(auto) tries NVML first and falls back to C(nvidia-smi).
      - C(nvml) requires C(nvidia-ml-py) on the node; C(nvidia_smi) never imports it.
    type: str
    choices: [auto, nvml, nvidia_smi]
    default: auto
  nvidia_smi_path:
    description: Path of C(nvidia-smi); found on C(PATH) (and in C(/usr/local/nvidia/bin)) when not set.
    type: path
requirements:
  - nvidia-ml-py (optional; pinned in the collection's requirements) for the NVML backend
notes:
  - The compute capability is not part of C(nvidia-smi -q -x); the C(nvidia_smi) backend asks
    C(nvidia-smi --query-gpu=index,compute_cap) and, on drivers too old for that, looks the GPU name
    up in the collection's GPU table.
seealso:
  - module: baremetal.gpu.vllm_compat
extends_documentation_fragment:
  - baremetal.gpu.read_only
"""

EXAMPLES = r"""
- name: Gather GPU facts
  baremetal.gpu.gpu_facts:

- name: Show the GPUs
  ansible.builtin.debug:
    msg: "{{ ansible_facts.nvidia_gpu.gpus | map(attribute='name') | list }} on driver {{ ansible_facts.nvidia_gpu.driver_version }}"

- name: Force the nvidia-smi parser (no nvidia-ml-py on the node)
  baremetal.gpu.gpu_facts:
    backend: nvidia_smi
  register: gpu

- name: Fail early on a node whose driver is missing
  ansible.builtin.assert:
    that: gpu.driver_installed
    fail_msg: "{{ gpu.reason }}"
"""

RETURN = r"""
ansible_facts:
  description: Facts set for later tasks.
  returned: always
  type: dict
  contains:
    nvidia_gpu:
      description: Everything listed below, under one namespaced key.
      type: dict
driver_installed:
  description: Whether a usable NVIDIA driver answered (NVML or nvidia-smi).
  returned: always
  type: bool
  sample: true
reason:
  description: Why there are no GPU facts (no driver, no GPU, module not loaded); null when there are.
  returned: always
  type: str
  sample: "nvidia-smi not found on PATH: no NVIDIA driver installed"
backend:
  description: Which backend answered, C(nvml) or C(nvidia_smi); null when none did.
  returned: always
  type: str
  sample: nvml
driver_version:
  description: NVIDIA driver version.
  returned: always
  type: str
  sample: "570.195.03"
cuda_driver_version:
  description: Highest CUDA version the driver supports (nvidia-smi's "CUDA Version").
  returned: always
  type: str
  sample: "12.8"
persistence_mode:
  description: True when persistence mode is on for every GPU, false when not, null when unknown.
  returned: always
  type: bool
gpu_count:
  description: Number of GPUs found.
  returned: always
  type: int
  sample: 1
gpus:
  description: One entry per GPU.
  returned: always
  type: list
  elements: dict
  contains:
    index: {description: GPU index as NVML and nvidia-smi number it., type: int}
    name: {description: Product name., type: str, sample: NVIDIA GeForce RTX 3060}
    uuid: {description: GPU UUID., type: str}
    pci_bus_id: {description: PCI bus id (domain:bus:device.function)., type: str, sample: "00000000:01:00.0"}
    compute_capability: {description: CUDA compute capability., type: str, sample: "8.6"}
    memory_total_mib: {description: Total memory in MiB., type: int, sample: 12288}
    memory_reserved_mib: {description: Memory reserved by the driver in MiB (null on drivers without NVML memory v2)., type: int}
    memory_used_mib: {description: Memory allocated by processes in MiB., type: int}
    memory_free_mib: {description: Free memory in MiB., type: int}
    mig_mode: {description: 'C(enabled), C(disabled), or null on GPUs without MIG.', type: str}
    persistence_mode: {description: Persistence mode of this GPU., type: bool}
    product_brand: {description: Brand as nvidia-smi prints it., type: str, sample: GeForce}
    brand: {description: Brand as the NVIDIA container runtime names it (NVIDIA_REQUIRE_CUDA)., type: str, sample: geforce}
    product_class: {description: 'C(consumer), C(workstation), C(datacenter) or C(unknown).', type: str}
    forward_compat_capable: {description: Whether CUDA forward compatibility can work on this GPU (datacenter cards)., type: bool}
    architecture: {description: GPU architecture., type: str, sample: Ampere}
    processes:
      description: Processes using the GPU.
      type: list
      elements: dict
      sample: [{pid: 48213, type: C, name: /usr/bin/python3, used_memory_mib: 10810}]
kernel_module:
  description: The NVIDIA kernel module as C(/proc) shows it.
  returned: always
  type: dict
  contains:
    loaded: {description: Whether the nvidia module is loaded., type: bool}
    version: {description: Its version., type: str}
    flavor: {description: C(open) or C(proprietary)., type: str}
    architecture: {description: CPU architecture the module was built for., type: str, sample: x86_64}
    nouveau_loaded: {description: Whether nouveau is loaded (it blocks the NVIDIA driver)., type: bool}
    modules: {description: Loaded nvidia* and nouveau module names., type: list, elements: str}
attempts:
  description: Why backends tried before the one that answered gave nothing.
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.baremetal.gpu.plugins.module_utils import gpu as gpu_utils


def main():
    module = AnsibleModule(
        argument_spec=dict(
            backend=dict(type="str", choices=list(gpu_utils.BACKENDS), default="auto"),
            nvidia_smi_path=dict(type="path"),
        ),
        supports_check_mode=True,
    )
    backend = module.params["backend"]
    if backend == "nvml" and not gpu_utils.HAS_PYNVML:
        module.fail_json(msg=missing_required_lib("nvidia-ml-py"), exception=gpu_utils.PYNVML_IMPORT_ERROR)
    nvidia_smi = module.params["nvidia_smi_path"] or module.get_bin_path(
        "nvidia-smi", opt_dirs=["/usr/local/nvidia/bin", "/usr/bin"])

    def run(argv):
        return module.run_command(argv)

    facts = gpu_utils.gather(backend=backend, run=run, nvidia_smi=nvidia_smi)
    result = dict(facts)
    result["changed"] = False
    result["ansible_facts"] = {"nvidia_gpu": facts}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
