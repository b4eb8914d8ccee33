#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: baremetal.gpu maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: vllm_compat
short_description: Check before deploying that a vLLM image and model fit a GPU node
version_added: "0.1.0"
description:
  - Says whether O(image) can serve O(model) on O(node) next to O(colocated) workloads, and why not,
    offline and in well under a second, before anything is deployed.
  - "Checks: the image's CUDA against the driver (CUDA forward compatibility works only on datacenter
    GPUs, and only from some driver branches); vLLM's minimum compute capability; bf16 and
    FlashAttention-2 (8.0+); the quantization kernels (AWQ 7.5+, Marlin 8.0+, FP8 8.9+, FP8 weight-only
    on 8.0+); the GPU count for O(model.tensor_parallel_size); weights plus runtime overhead within
    O(model.gpu_memory_utilization) of each GPU; the KV cache for O(model.max_model_len) tokens; the
    sum of utilizations of workloads sharing a GPU; whether the image's vLLM knows the model."
  - "With O(model.sleep_mode) or O(standby) (hot standby, vLLM's sleep mode): whether the release can be
    put to sleep at that level (level 2 needs C(/collective_rpc), from 0.10.2), what each sleeper keeps on
    the GPU while asleep (per release: about 1.2 GiB, plus the weights on 0.14.0 .. 0.16.x), that the awake
    share plus the sleepers' residue plus what is in use fits the GPU, and that a level-1 sleeper's weights
    fit its pod's memory and the node's (C(host_memory_mib) of O(node))."
  - Each rule reads versioned data with its sources (C(plugins/module_utils/compat_data.py)) and the
    model catalog (C(plugins/module_utils/models.py)); the rules live in C(plugins/module_utils/compat.py).
  - Fails the task on verdict C(fail) unless O(fail_on=never). Never changes anything.
author:
  - baremetal.gpu maintainers (@baremetal-gpu)
options:
  image:
    description: Image reference, by tag or digest, for example C(vllm/vllm-openai:v0.15.1).
    type: str
    required: true
  node:
    description:
      - The node, as RV(baremetal.gpu.gpu_facts#module:ansible_facts.nvidia_gpu) returns it or
        written by hand.
      - Keys read are C(driver_version), C(cuda_driver_version) (derived from the driver version when
        absent), C(driver_installed), and C(gpus), a list of mappings with C(name),
        C(compute_capability) and C(memory_total_mib) (taken from the GPU table for known names),
        and optionally C(memory_used_mib), C(product_brand) or C(brand), C(product_class).
      - C(host_memory_mib), optional, is the node's memory for pods (its allocatable memory), checked
        against what level-1 sleepers copy to host RAM.
    type: dict
    required: true
  model:
    description: The model and how vLLM serves it.
    type: dict
    required: true
    suboptions:
      name:
        description: Hugging Face repository (or served path); metadata missing below is taken from the catalog.
        type: str
        required: true
      dtype:
        description: C(--dtype); C(auto) is the checkpoint's.
        type: str
        choices: [auto, bfloat16, float16, float32, bf16, float, fp16, fp32, half]
        default: auto
      quantization:
        description: C(--quantization), for example C(awq), C(awq_marlin), C(gptq), C(gptq_marlin), C(fp8); null for none.
        type: str
      max_model_len:
        description: C(--max-model-len); the model's maximum context when not set.
        type: int
      tensor_parallel_size:
        description: C(--tensor-parallel-size).
        type: int
        default: 1
      gpu_memory_utilization:
        description: C(--gpu-memory-utilization), in (0, 1].
        type: float
        default: 0.9
      enforce_eager:
        description: C(--enforce-eager) (no CUDA graphs, less memory).
        type: bool
        default: false
      kv_cache_dtype:
        description: C(--kv-cache-dtype).
        type: str
        choices: [auto, fp8, fp8_e4m3, fp8_e5m2]
        default: auto
      params_b:
        description: Parameters in billions.
        type: float
      weights_gib:
        description: Size of the weights on the GPU in GiB (all GPUs together).
        type: float
      num_layers:
        description: Hidden layers.
        type: int
      num_kv_heads:
        description: Key/value heads.
        type: int
      head_dim:
        description: Dimension of one attention head.
        type: int
      torch_dtype:
        description: The checkpoint's dtype, when the model is not in the catalog.
        type: str
      max_position_embeddings:
        description: The model's maximum context, when the model is not in the catalog.
        type: int
      sleep_mode:
        description: C(--enable-sleep-mode), so the server can be put to sleep (hot standby) while another mode owns the GPU.
        type: bool
        default: false
      sleep_level:
        description: C(1) copies the weights to host RAM and drops the KV cache, C(2) drops both (wake-up reloads the weights).
        type: int
        choices: [1, 2]
        default: 1
      sleep_residue_mib:
        description: What the server keeps on each GPU while asleep, in MiB, when known better than the release's figure.
        type: float
      host_memory_mib:
        description: The pod's memory (its limit, else its request) in MiB, which must hold a level-1 sleeper's weights.
        type: float
      host_overhead_mib:
        description: Host memory of the server beside the weights it copies (an estimate; default 4096).
        type: float
  standby:
    description:
      - Sleepers kept resident on the same GPU(s) while O(model) is awake (a GPU mode's C(standby) workloads).
      - Each keeps its residue on the GPU, so the awake share plus every residue plus what is in use must fit.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Name, for messages.
        type: str
        required: true
      image:
        description: Its image (the release decides what it keeps asleep).
        type: str
        required: true
      model:
        description: Its model, with the keys of O(model) (O(model.sleep_level), O(model.host_memory_mib), ...).
        type: dict
        required: true
  colocated:
    description: Other workloads on the same GPU(s), for example time-sliced services.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Name, for messages.
        type: str
      gpu_memory_utilization:
        description: Its vLLM C(gpu_memory_utilization).
        type: float
      memory_mib:
        description: Memory it holds in MiB (for workloads that are not vLLM).
        type: float
  offline:
    description: Use only the collection's data; C(false) reads the image's config from its registry.
    type: bool
    default: true
  fail_on:
    description: C(fail) fails the task on verdict C(fail); C(never) only reports.
    type: str
    choices: [fail, never]
    default: fail
  registry:
    description: Registry lookup settings, used when O(offline=false).
    type: dict
    default: {}
    suboptions:
      timeout:
        description: Seconds per request.
        type: float
        default: 10
      insecure:
        description: Allow plain HTTP and unverified TLS (a local registry).
        type: bool
        default: false
      cache_dir:
        description: Directory of the on-disk cache of image configs; no cache when not set.
        type: path
      cache_ttl:
        description: Seconds a cached tag stays valid (digests never expire).
        type: int
        default: 86400
      platform:
        description: Platform to pick from a multi-platform image.
        type: str
        default: linux/amd64
      username:
        description: Registry user (anonymous token auth when not set).
        type: str
      password:
        description: Registry password or token.
        type: str
      mirrors:
        description: 'Registry host to mirror URL, for example C({"docker.io": "http://127.0.0.1:5000"}).'
        type: dict
notes:
  - Offline, image facts come from C(compat_data.VLLM_IMAGE_SERIES); a tag the data does not know gives
    a C(unknown_image) warning and skips the driver check.
  - The memory model is an estimate calibrated on field reports; it errs towards failing.
seealso:
  - module: baremetal.gpu.gpu_facts
extends_documentation_fragment:
  - baremetal.gpu.read_only
"""

EXAMPLES = r"""
- name: Will v0.15.1 serve Qwen3-8B-AWQ on the home-lab RTX 3060?
  baremetal.gpu.vllm_compat:
    image: vllm/vllm-openai:v0.15.1
    node:
      driver_version: "570.195.03"
      gpus:
        - {name: "NVIDIA GeForce RTX 3060", compute_capability: "8.6", memory_total_mib: 12288}
    model:
      name: Qwen/Qwen3-8B-AWQ
      quantization: awq_marlin
      max_model_len: 8192
      gpu_memory_utilization: 0.9
      enforce_eager: true
    fail_on: never
  register: compat

- name: Check against the facts of the node itself, reading the image config from the registry
  baremetal.gpu.vllm_compat:
    image: vllm/vllm-openai:v0.8.5.post1
    node: "{{ ansible_facts.nvidia_gpu }}"
    model:
      name: Qwen/Qwen3-ASR-1.7B
      dtype: float16
      max_model_len: 4096
      gpu_memory_utilization: 0.45
    colocated:
      - {name: tts, memory_mib: 3994}
    offline: false
    registry:
      cache_dir: /var/cache/baremetal-gpu/registry
"""

RETURN = r"""
compatible:
  description: False when the verdict is C(fail).
  returned: always
  type: bool
verdict:
  description: C(ok), C(warn) or C(fail).
  returned: always
  type: str
  sample: fail
image_cuda:
  description: CUDA version of the image (null when unknown).
  returned: always
  type: str
  sample: "12.9.1"
driver_cuda:
  description: Highest CUDA version the node's driver supports.
  returned: always
  type: str
  sample: "12.8"
reasons:
  description: Why, most important first in rule order; severity C(info) does not change the verdict.
  returned: always
  type: list
  elements: dict
  contains:
    code:
      description: >-
        One of C(driver_too_old), C(forward_compat_unsupported), C(compute_capability_too_low),
        C(dtype_unsupported), C(quantization_unsupported), C(gpu_count_insufficient),
        C(vram_insufficient), C(kv_cache_insufficient), C(gpu_memory_oversubscribed),
        C(unknown_image), C(unknown_model), C(vllm_too_old), C(package_missing), C(sleep_mode_unsupported),
        C(sleep_mode_unverified), C(sleep_keeps_weights), C(host_memory_insufficient).
      type: str
    severity: {description: 'C(info), C(warn) or C(fail).', type: str}
    message: {description: 'What is wrong, with the error vLLM or the runtime would print.', type: str}
    fix: {description: 'Something concrete to change (image tag, driver branch, option value, fallback model).', type: str}
  sample:
    - code: forward_compat_unsupported
      severity: fail
      message: "docker.io/vllm/vllm-openai:v0.15.1 is built on CUDA 12.9.1 but driver 570.195.03 supports CUDA 12.8; ..."
      fix: "use image vllm/vllm-openai:v0.11.0 (CUDA 12.8.1) or install NVIDIA driver >= 575.57.08 (branch R575 or newer)"
image:
  description: What is known of the image (CUDA, torch, vLLM version, forward-compat branches, source, confidence).
  returned: always
  type: dict
model:
  description: The model request merged with the catalog.
  returned: always
  type: dict
memory:
  description: Per-GPU memory arithmetic (budget, weights, overhead, KV cache, token capacity) in MiB; null without GPUs.
  returned: always
  type: dict
standby:
  description: Per sleeper, what it keeps on each GPU while asleep (C(residue_mib)) and needs in host memory (C(host_mib)).
  returned: always
  type: list
  elements: dict
data_version:
  description: Version of the compatibility data used.
  returned: always
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.baremetal.gpu.plugins.module_utils import compat


def registry_options(params):
    """Module's registry suboptions -> keyword arguments of oci.fetch_image_config."""
    params = params or {}
    return {
        "timeout": params.get("timeout", 10),
        "insecure": bool(params.get("insecure")),
        "cache_dir": params.get("cache_dir"),
        "cache_ttl": params.get("cache_ttl", 86400),
        "platform": params.get("platform") or "linux/amd64",
        "username": params.get("username"),
        "password": params.get("password"),
        "registry_mirrors": params.get("mirrors"),
    }


def summary(result):
    failing = [r for r in result["reasons"] if r["severity"] == "fail"]
    if not failing:
        return "verdict %s" % result["verdict"]
    return "verdict fail: " + "; ".join("%s: %s (fix: %s)" % (r["code"], r["message"], r["fix"]) for r in failing)


def main():
    model_spec = dict(
        name=dict(type="str", required=True),
        dtype=dict(type="str", default="auto", choices=compat.DTYPE_CHOICES),
        quantization=dict(type="str"),
        max_model_len=dict(type="int"),
        tensor_parallel_size=dict(type="int", default=1),
        gpu_memory_utilization=dict(type="float", default=0.9),
        enforce_eager=dict(type="bool", default=False),
        kv_cache_dtype=dict(type="str", default="auto", choices=sorted(compat.KV_CACHE_DTYPES)),
        params_b=dict(type="float"),
        weights_gib=dict(type="float"),
        num_layers=dict(type="int"),
        num_kv_heads=dict(type="int"),
        head_dim=dict(type="int"),
        torch_dtype=dict(type="str"),
        max_position_embeddings=dict(type="int"),
        sleep_mode=dict(type="bool", default=False),
        sleep_level=dict(type="int", default=1, choices=[1, 2]),
        sleep_residue_mib=dict(type="float"),
        host_memory_mib=dict(type="float"),
        host_overhead_mib=dict(type="float"),
    )
    registry_spec = dict(
        timeout=dict(type="float", default=10),
        insecure=dict(type="bool", default=False),
        cache_dir=dict(type="path"),
        cache_ttl=dict(type="int", default=86400),
        platform=dict(type="str", default="linux/amd64"),
        username=dict(type="str"),
        password=dict(type="str", no_log=True),
        mirrors=dict(type="dict"),
    )
    module = AnsibleModule(
        argument_spec=dict(
            image=dict(type="str", required=True),
            node=dict(type="dict", required=True),
            model=dict(type="dict", required=True, options=model_spec),
            standby=dict(type="list", elements="dict", default=[], options=dict(
                name=dict(type="str", required=True),
                image=dict(type="str", required=True),
                model=dict(type="dict", required=True),
            )),
            colocated=dict(type="list", elements="dict", default=[], options=dict(
                name=dict(type="str"),
                gpu_memory_utilization=dict(type="float"),
                memory_mib=dict(type="float"),
            )),
            offline=dict(type="bool", default=True),
            fail_on=dict(type="str", choices=["fail", "never"], default="fail"),
            registry=dict(type="dict", default={}, options=registry_spec),
        ),
        supports_check_mode=True,
    )
    params = module.params
    try:
        result = compat.check(
            params["image"], params["node"], params["model"], colocated=params["colocated"],
            offline=params["offline"], registry=registry_options(params["registry"]), standby=params["standby"],
        )
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    result["changed"] = False
    result["msg"] = summary(result)
    if result["verdict"] == "fail" and params["fail_on"] == "fail":
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
