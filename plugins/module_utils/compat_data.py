# -*- coding: utf-8 -*-
# Copyright: baremetal.gpu maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Versioned facts behind the vLLM compatibility preflight, each with its source beside it.

The data lives in a Python module (not a YAML file) so it travels with the ``vllm_compat`` module
through AnsiballZ to whatever host the module runs on; the rules in ``compat.py`` read it and
nothing else. Plain literals only: no logic here.

Confidence, wherever a fact carries one:

* ``confirmed``: read from the primary source named (NVIDIA release notes, an image's own config,
  the package registry's metadata for that exact release);
* ``reported``: stated for that exact version by a public issue or report named in ``sources``;
* ``inferred``: not confirmed for that exact version; interpolated between confirmed neighbours
  (the ``sources`` say which). Treat as a best guess and prefer a registry lookup
  (``offline: false``), which reads the image's own ``CUDA_VERSION``.

Every figure was looked up on 2026-11-25 (stored copies of the pages named; no live web).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DATA_VERSION = "2026-11-25"

SOURCES = {
    "cuda_release_notes": (
        "NVIDIA CUDA Toolkit release notes, Table 3 'CUDA Toolkit and Corresponding Driver Versions' "
        "and Table 2 (minor version compatibility), "
        "https://docs.nvidia.com/cuda/cuda-toolkit-release-notes/index.html (13.2 Update 2 edition)"
    ),
    "cuda_compat_guide": (
        "NVIDIA CUDA Compatibility guide, 'Forward Compatibility': applicable only to NVIDIA Data Center "
        "GPUs, select NGC Server Ready SKUs of RTX cards and Jetson boards, "
        "https://docs.nvidia.com/deploy/cuda-compatibility/forward-compatibility.html"
    ),
    "datacenter_driver_matrix": (
        "NVIDIA data center drivers, 'Supported Drivers and CUDA Toolkit Versions' (R535 LTSB to June "
        "2026, R570 PB, R580 LTSB to August 2028), "
        "https://docs.nvidia.com/datacenter/tesla/drivers/supported-drivers-and-cuda-toolkit-versions.html"
    ),
    "nvidia_cuda_image_12_9": (
        "NVIDIA_REQUIRE_CUDA of the nvidia/cuda 12.9.1 base as carried by vllm/vllm-openai:v0.29.0-cu129 "
        "(cuda>=12.9 or, on brands unknown/grid/tesla/nvidia/quadro/quadrortx/nvidiartx/vapps/vpc/vcs/"
        "vws/cloudgaming, driver branches 535, 550, 560, 565, 570; no geforce), image config Env as "
        "recorded in a public deployment note"
    ),
    "nvidia_cuda_image_13_0": (
        "NVIDIA_REQUIRE_CUDA of nvidia/cuda:13.0.2-base-ubuntu22.04 (cuda>=13.0 or, on the same "
        "datacenter/workstation brands, branches 535, 550, 565, 570, 575), printed by `env` in a "
        "public Kubernetes walkthrough"
    ),
    "nvidia_cuda_image_12_8": (
        "vllm image layer history showing ENV NVIDIA_REQUIRE_CUDA=cuda>=12.8 brand=unknown,driver>=470,"
        "driver<471 ... and ENV CUDA_VERSION=12.8.1 (the listing is truncated after the 470 branch)"
    ),
    "nvidia_cuda_dockerfiles": (
        "NVIDIA_REQUIRE_CUDA of gitlab.com/nvidia/container-images/cuda dist/12.4.1/ubuntu2204/base/Dockerfile "
        "(branches 470, 525, 535; brands include geforce and titan), dist/12.8.1 (470, 535, 550, 560, 565) and "
        "dist/12.9.1 (535, 550, 560, 565, 570; no geforce), as reproduced character for character in "
        "tests/harness/oci_registry.py"
    ),
    "vllm_5510": (
        "vllm-project/vllm#5510, #5283, #4940: images v0.4.3 and v0.5.0 (CUDA 12.4) fail on driver 535 "
        "with 'Error 804: forward compatibility was attempted on non supported HW' on GeForce cards"
    ),
    "vllm_5635": (
        "vllm-project/vllm#5635: v0.4.3/v0.5.0 images refuse to start on driver 530: "
        "'nvidia-container-cli: requirement error: unsatisfied condition: cuda>=12.4'"
    ),
    "vllm_dockerfile_12_4": (
        "vllm-project/vllm Dockerfile (2024, flashinfer 0.0.9 era): ARG CUDA_VERSION=12.4.1 and "
        "RUN ldconfig /usr/local/cuda-$(...)/compat/"
    ),
    "vllm_16515": (
        "vllm-project/vllm#16515 (2025-05): a fork of the v0.8.x docker/Dockerfile 'still uses "
        "CUDA_VERSION=12.4.1'; #17901 (2025-05-09): the latest image (v0.8.5.post1) does not use CUDA 12.8"
    ),
    "vllm_16859": (
        "vllm-project/vllm#16859 'Update PyTorch to 2.7.0': PyTorch 2.7 dropped CUDA 12.4, so builds "
        "and docker/Dockerfile move to CUDA 12.8 (ARG CUDA_VERSION=12.8.1)"
    ),
    "vllm_18813": (
        "vllm-project/vllm#18813 (2025-05-28): the v0.9.0 container refuses drivers below CUDA 12.8: "
        "'unsatisfied condition: cuda>=12.8'"
    ),
    "vllm_0_11_1_notes": (
        "vLLM v0.11.1 release notes, quoted on discuss.vllm.ai/t/2213: 'Updated the default CUDA build "
        "to torch==2.9.0+cu129'"
    ),
    "home_lab": (
        "docs/reference-deployments.md, 'Home lab': v0.15.1 is CUDA 12.9 and fails on a GeForce RTX 3060 with "
        "driver 570.195.03 (CUDA 12.8) with 'forward compatibility was attempted on non supported HW'; "
        "v0.12.0 fails with 'Engine core initialization failed'; v0.8.5.post1 works there"
    ),
    "gpustack_4678": (
        "gpustack/gpustack#4678: 'Starting from vLLM v0.15.0, the image configures ld.so.conf' "
        "(a persistent cuda-compat.conf, vllm-project/vllm#30784 and #33116)"
    ),
    "vllm_33992": (
        "vllm-project/vllm#33992 (merged 2026-02) and #34821: the CUDA compat libraries are no longer "
        "loaded unconditionally; images set VLLM_ENABLE_CUDA_COMPATIBILITY=0 and load them only when "
        "it is 1"
    ),
    "vllm_cu130_default": (
        "ai-dynamo/nixl#2140 (2026-08): 'Starting with vLLM v0.20.0, CUDA 13 became the default and "
        "current CUDA 13 images are published under the unsuffixed tag' (CUDA 12.9 stays as -cu129 "
        "tags); vllm-project/vllm#42738: 'After v0.20.0, default wheel/docker nightly version is cu130'"
    ),
    "vllm_image_13_0_2": (
        "vllm/vllm-openai:latest image config as recorded in a public test fixture: CUDA_VERSION=13.0.2, "
        "NVIDIA_REQUIRE_CUDA=cuda>=13.0 ..."
    ),
    "pypi_vllm_metadata": (
        "PyPI core metadata (Requires-Dist torch==X) of each vllm release named, read with "
        "`pip install --dry-run --no-deps --report` on 2026-11-25; release list from `pip index versions vllm`"
    ),
    "vllm_quant_hardware": (
        "vLLM docs, Quantization 'Supported Hardware' table (v0.9.2, v0.11.2, v0.15.1): AWQ Turing+, "
        "GPTQ Volta+, Marlin (GPTQ/AWQ/FP8) Ampere+, INT8 W8A8 Turing+, FP8 W8A8 Ada/Hopper, "
        "bitsandbytes and GGUF Volta+, https://docs.vllm.ai/en/v0.15.1/features/quantization/"
    ),
    "vllm_min_cc": (
        "vLLM installation docs: 'GPU: compute capability 7.0 or higher (e.g., V100, T4, RTX20xx, A100, "
        "L4, H100, etc.)', https://docs.vllm.ai/en/v0.6.3/getting_started/installation.html; "
        "vllm-project/vllm#1284 (below 7.0 unsupported)"
    ),
    "cuda13_arch_drop": (
        "CUDA 13.0 release notes, 'Deprecated Architectures': offline compilation and library support "
        "for Maxwell, Pascal and Volta removed in CUDA Toolkit 13.0"
    ),
    "vllm_bf16": (
        "vllm-project/vllm#1157 (T4), #946 (V100): 'Bfloat16 is only supported on GPUs with compute "
        "capability of at least 8.0 ... You can use float16 instead by explicitly setting the `dtype` "
        "flag in CLI, for example: --dtype=half.'"
    ),
    "vllm_fp8": (
        "vllm-project/vllm#6979, #6815: FP8 compute needs 8.9+ (Ada, Hopper); Ampere (8.0-8.6) runs FP8 "
        "checkpoints weight-only through FP8 Marlin; below 8.0 FP8 does not run"
    ),
    "flash_attn_2": (
        "Dao-AILab/flash-attention README: FlashAttention-2 supports Ampere, Ada and Hopper GPUs "
        "(compute capability 8.0+); Turing support only in FlashAttention 1.x"
    ),
    "vllm_kv_error": (
        "vllm-project/vllm#10517: 'The model's max seq len (131072) is larger than the maximum number of "
        "tokens that can be stored in KV cache'; Llama-3.1-8B bf16 on a 24 GB RTX 3090 at 0.9 fits "
        "about 23-31k tokens"
    ),
    "cuda_gpus": "NVIDIA, 'CUDA GPUs - Compute Capability', https://developer.nvidia.com/cuda-gpus",
    "gpu_specs": "NVIDIA product specification pages (memory size per SKU), nvidia.com",
    "vllm_17327": (
        "vllm-project/vllm#17327 '[Usage] Qwen3 Usage Guide' (2025-04-28, by a vLLM maintainer): 'vLLM v0.8.4 "
        "and higher natively supports all Qwen3 and Qwen3MoE models'; fp8 dense Qwen3 checkpoints fail to "
        "load on v0.8.4 ('IndexError: start out of range') and need v0.8.5"
    ),
    "vllm_0_8_5_notes": (
        "vLLM v0.8.5 release notes, 'Model Support': 'Day 0 support for Qwen3 and Qwen3MoE. This release fixes "
        "fp8 weight loading (#17318) and adds tuned MoE configs (#17328)'"
    ),
    "qwen3_asr_readme": (
        "QwenLM/Qwen3-ASR README, 'Deployment with vLLM': at the model's release (2026-01-29) vLLM's day-0 "
        "support needed the nightly wheel or image, so no vLLM release of that date served it"
    ),
    "vllm_docs_0_16_qwen3_asr": (
        "vLLM v0.16.0 API documentation, vllm.model_executor.models.qwen3_asr "
        "(Qwen3ASRForConditionalGeneration), https://docs.vllm.ai/en/v0.16.0/api/vllm/model_executor/models/qwen3_asr/"
    ),
    "vllm_metax_205": (
        "MetaX-MACA/vLLM-metax#205 (2026-02-06): upstream vLLM supports Qwen3-ASR from tag v0.15.2rc0, cut "
        "after the v0.15 release branch; QwenLM/Qwen3-ASR#73 and #75 move qwen-asr to vllm>=0.15.2rc1"
    ),
    "qwen_asr_pyproject": (
        "QwenLM/Qwen3-ASR pyproject.toml: the qwen-asr package's vllm extra pins vllm==0.14.0 and its "
        "qwen-asr-serve command registers Qwen3ASRForConditionalGeneration in that vLLM as a plugin"
    ),
    "vllm_omni_895": (
        "vllm-project/vllm-omni#895 '[Model] Support Qwen3-TTS model series' (2026-01): Qwen3-TTS "
        "(model type qwen3_tts) is served by the vLLM-Omni package, which vllm/vllm-openai does not contain"
    ),
    "vllm_src_dev_routes": (
        "vLLM's source as published in the vllm wheel of each release (pip download vllm==X --no-deps): "
        "vllm/entrypoints/openai/api_server.py at 0.8.5.post1 and 0.10.2 declares /sleep, /wake_up, "
        "/is_sleeping, /reset_prefix_cache and /server_info inside `if envs.VLLM_SERVER_DEV_MODE:`; at 0.13.0, "
        "0.14.0 and 0.16.0 vllm/entrypoints/serve/sleep/api_router.py attach_router() returns unless "
        "VLLM_SERVER_DEV_MODE; POST /sleep reads `level` from the query string (default '1', int()), POST "
        "/wake_up the repeated query parameter `tags` (none: every tag), GET /is_sleeping answers "
        "{'is_sleeping': bool}; vllm/envs.py: VLLM_SERVER_DEV_MODE = bool(int(os.getenv(..., '0')))"
    ),
    "vllm_src_collective_rpc": (
        "POST /collective_rpc {method, args, kwargs, timeout} (dev mode): absent from "
        "vllm/entrypoints/openai/api_server.py at 0.8.5.post1 and 0.10.1.1, present at 0.10.2 (api_server.py) and "
        "at 0.14.0 and 0.16.0 (vllm/entrypoints/serve/rpc/api_router.py); Worker.reload_weights() in "
        "vllm/v1/worker/gpu_worker.py at 0.10.2, 0.14.0 and 0.16.0"
    ),
    "vllm_src_sleep_levels": (
        "vllm/v1/worker/gpu_worker.py sleep() at 0.8.5.post1: CuMemAllocator.sleep(offload_tags=('weights',) if "
        "level == 1 else ()); vllm/device_allocator/cumem.py: an offloaded allocation is copied into "
        "torch.empty(..., device='cpu', pin_memory=is_pin_memory_available()) (pinned host RAM, counted in the "
        "container's memory) and every allocation of the pool is unmapped; the KV cache is allocated in the pool "
        "under tag 'kv_cache' (0.8.5.post1, 0.14.0, 0.16.0)"
    ),
    "vllm_src_weights_outside_pool": (
        "vllm/v1/worker/gpu_worker.py load_model() at 0.14.0 and 0.16.0: `with "
        "self._maybe_get_memory_pool_context(tag='weights') and set_current_vllm_config(...)` enters only the "
        "second context manager, so the weights are allocated outside the sleep-mode pool and stay on the GPU "
        "while asleep (at any level); 0.10.2 and 0.13.0 `with self._maybe_get_memory_pool_context(tag='weights'):`; "
        "0.17.0 enters both (a parenthesised tuple); fixed by vllm-project/vllm#32947"
    ),
    "vllm_32714": (
        "vllm-project/vllm#32714 'Sleep is broken since 0.14.0' (2026-01): a level-1 sleep of a Qwen3 30B model "
        "over 4 RTX 3090s leaves 1.14 GB per GPU in use on 0.13.0 and 16 GB per GPU on 0.14.0 (about 6 GB freed), "
        "the same on 0.15.0; NovaSky-AI/SkyRL#1365: on 0.16.0 about 14 GiB of weights stay after a sleep, fixed "
        "upstream in vllm-project/vllm#32947 (0.17.0)"
    ),
    "vllm_11743": (
        "vllm-project/vllm#11743 (sleep mode's introduction, an A100 80 GB): 79.22 GiB usable, 78.29 GiB free "
        "after a sleep, about 0.93 GiB kept: 'cudagraph memory pool is not released, and there are some other cost "
        "such as cuda context'"
    ),
    "nemo_rl_223": (
        "NVIDIA-NeMo/RL#223 (2025-04, a vLLM 0.8 release): 774 MiB per GPU held asleep with tensor parallel size "
        "1; 2,440 to 7,392 MiB with tensor parallel size 2"
    ),
    "vllm_src_sleep_scheduler": (
        "vllm/v1/engine/core.py at 0.16.0: sleep(level) calls model_executor.sleep(level) while the scheduler "
        "keeps running (a request scheduled while the memory is unmapped runs a forward pass on it); at 0.17.0 "
        "sleep(level, mode='abort') pauses scheduling first and aborts running requests; /health "
        "(api_server.py at 0.8.5.post1: check_health() only) answers 200 while asleep"
    ),
    "vllm_src_kv_budget": (
        "vllm/v1/worker/gpu_worker.py determine_available_memory() at 0.8.5.post1 and 0.9.0: KV cache = total x "
        "gpu_memory_utilization - peak, where peak includes the device's used memory not allocated by this "
        "process's torch (other processes' too); at 0.9.1 (gpu_worker.py) and 0.14.0, 0.16.0 "
        "(vllm/v1/worker/utils.py request_memory()) the server refuses to start unless free memory >= total x "
        "gpu_memory_utilization, and sizes the KV cache inside that share"
    ),
    "h100_capture": (
        "tests/fixtures/gpu/h100-80gb-driver-580.159.04 (real capture): 81559 MiB total, 480 MiB "
        "reserved, a CUDA context keeps ~526 MiB"
    ),
}

# --- CUDA toolkit -> minimum Linux x86_64 driver ---------------------------------------------------
# Table 3 of the CUDA release notes (source: cuda_release_notes, confidence: confirmed). "cuda" is
# the toolkit release: X.Y for the GA, X.Y.Z for an update. The image's CUDA_VERSION (e.g. 12.9.1)
# picks its exact row; a bare X.Y picks the GA.
CUDA_MIN_DRIVER = [
    {"cuda": "13.2.2", "min_driver": "595.71.05"},
    {"cuda": "13.2.1", "min_driver": "595.58.03"},
    {"cuda": "13.2", "min_driver": "595.45.04"},
    {"cuda": "13.1.1", "min_driver": "590.48.01"},
    {"cuda": "13.1", "min_driver": "590.44.01"},
    {"cuda": "13.0.2", "min_driver": "580.95.05"},
    {"cuda": "13.0.1", "min_driver": "580.82.07"},
    {"cuda": "13.0", "min_driver": "580.65.06"},
    {"cuda": "12.9.1", "min_driver": "575.57.08"},
    {"cuda": "12.9", "min_driver": "575.51.03"},
    {"cuda": "12.8.1", "min_driver": "570.124.06"},
    {"cuda": "12.8", "min_driver": "570.26"},
    {"cuda": "12.6.3", "min_driver": "560.35.05"},
    {"cuda": "12.6.2", "min_driver": "560.35.03"},
    {"cuda": "12.6.1", "min_driver": "560.35.03"},
    {"cuda": "12.6", "min_driver": "560.28.03"},
    {"cuda": "12.5.1", "min_driver": "555.42.06"},
    {"cuda": "12.5", "min_driver": "555.42.02"},
    {"cuda": "12.4.1", "min_driver": "550.54.15"},
    {"cuda": "12.4", "min_driver": "550.54.14"},
    {"cuda": "12.3.1", "min_driver": "545.23.08"},
    {"cuda": "12.3", "min_driver": "545.23.06"},
    {"cuda": "12.2.2", "min_driver": "535.104.05"},
    {"cuda": "12.2.1", "min_driver": "535.86.09"},
    {"cuda": "12.2", "min_driver": "535.54.03"},
    {"cuda": "12.1.1", "min_driver": "530.30.02"},
    {"cuda": "12.1", "min_driver": "530.30.02"},
    {"cuda": "12.0.1", "min_driver": "525.85.12"},
    {"cuda": "12.0", "min_driver": "525.60.13"},
    {"cuda": "11.8", "min_driver": "520.61.05"},
    {"cuda": "11.7.1", "min_driver": "515.48.07"},
    {"cuda": "11.7", "min_driver": "515.43.04"},
    {"cuda": "11.6.2", "min_driver": "510.47.03"},
    {"cuda": "11.6.1", "min_driver": "510.47.03"},
    {"cuda": "11.6", "min_driver": "510.39.01"},
    {"cuda": "11.5", "min_driver": "495.29.05"},
    {"cuda": "11.4", "min_driver": "470.42.01"},
    {"cuda": "11.3", "min_driver": "465.19.01"},
    {"cuda": "11.2", "min_driver": "460.27.03"},
    {"cuda": "11.1", "min_driver": "455.23"},
    {"cuda": "11.0", "min_driver": "450.36.06"},
]

# Driver branches an image's cuda-compat package accepts below its CUDA version, as NVIDIA lists them
# in NVIDIA_REQUIRE_CUDA of the nvidia/cuda base images (on datacenter and workstation brands only;
# geforce and titan are never listed). A registry lookup reads the image's own list and wins.
FORWARD_COMPAT_BRANCHES = {
    "13.0": {"branches": [535, 550, 565, 570, 575], "confidence": "confirmed",
             "source": "nvidia_cuda_image_13_0"},
    "12.9": {"branches": [535, 550, 560, 565, 570], "confidence": "confirmed",
             "source": "nvidia_cuda_image_12_9"},
    "12.8": {"branches": [470, 535, 550, 560, 565], "confidence": "confirmed",
             "source": "nvidia_cuda_dockerfiles"},
    # 12.4 also lists geforce/titan brands: the container starts on a GeForce card with a 535 driver,
    # then dies with error 804 (vllm_5510).
    "12.4": {"branches": [470, 525, 535], "confidence": "confirmed", "source": "nvidia_cuda_dockerfiles"},
}

# Brands as libnvidia-container names them in NVIDIA_REQUIRE_CUDA (lower case NVML brand names),
# the product class each stands for, and whether CUDA forward compatibility can work there
# (source: cuda_compat_guide: datacenter cards only, plus select NGC-ready RTX SKUs, which this
# table cannot tell apart: workstation brands count as not supported).
BRANDS = {
    "geforce": {"display": "GeForce", "class": "consumer"},
    "geforcertx": {"display": "GeForce RTX", "class": "consumer"},
    "titan": {"display": "Titan", "class": "consumer"},
    "titanrtx": {"display": "Titan RTX", "class": "consumer"},
    "tesla": {"display": "Tesla", "class": "datacenter"},
    "nvidia": {"display": "NVIDIA", "class": "datacenter"},
    "grid": {"display": "GRID", "class": "datacenter"},
    "vcs": {"display": "NVIDIA Virtual Compute Server", "class": "datacenter"},
    "vapps": {"display": "NVIDIA Virtual Applications", "class": "datacenter"},
    "vpc": {"display": "NVIDIA Virtual PC", "class": "datacenter"},
    "vws": {"display": "NVIDIA RTX Virtual Workstation", "class": "datacenter"},
    "cloudgaming": {"display": "NVIDIA Cloud Gaming", "class": "datacenter"},
    "quadro": {"display": "Quadro", "class": "workstation"},
    "quadrortx": {"display": "Quadro RTX", "class": "workstation"},
    "nvidiartx": {"display": "NVIDIA RTX", "class": "workstation"},
    "nvs": {"display": "NVS", "class": "workstation"},
    "unknown": {"display": "Unknown", "class": "unknown"},
}
FORWARD_COMPAT_CLASSES = ["datacenter"]

# NVML brand enum (nvmlBrandType_t, pynvml NVML_BRAND_*) -> libnvidia-container brand name.
NVML_BRAND_NAMES = {
    0: "unknown", 1: "quadro", 2: "tesla", 3: "nvs", 4: "grid", 5: "geforce", 6: "titan",
    7: "vapps", 8: "vpc", 9: "vcs", 10: "vws", 11: "cloudgaming", 12: "quadrortx", 13: "nvidiartx",
    14: "nvidia", 15: "geforcertx", 16: "titanrtx",
}

# NVML architecture enum (nvmlDeviceArchitecture_t) -> the name nvidia-smi prints as
# product_architecture.
NVML_ARCHITECTURE_NAMES = {
    2: "Kepler", 3: "Maxwell", 4: "Pascal", 5: "Volta", 6: "Turing", 7: "Ampere",
    8: "Ada Lovelace", 9: "Hopper", 10: "Blackwell", 13: "Rubin",
}

# --- GPUs: compute capability, memory, class ------------------------------------------------------
# Matched against the GPU name lower-cased with "nvidia", "geforce", "tesla" and punctuation
# removed (e.g. "NVIDIA GeForce RTX 3060" -> "rtx 3060"); the first pattern that matches wins, so
# specific SKUs come before families. memory_mib approximates the total nvidia-smi reports (the H100
# figure is from the capture; others are the product's memory size, in MiB as nvidia-smi prints it
# where that figure is commonly reported). Hand-written node facts may override it with
# memory_total_mib. Sources: cuda_gpus (compute capability), gpu_specs (memory), h100_capture.
GPUS = [
    {"match": r"^h100\b.*\b(80gb|hbm3|sxm|pcie|nvl)", "name": "H100 80GB", "compute_capability": "9.0",
     "memory_mib": 81559, "class": "datacenter", "architecture": "Hopper"},
    {"match": r"^h100\b.*94gb", "name": "H100 NVL", "compute_capability": "9.0", "memory_mib": 95830,
     "class": "datacenter", "architecture": "Hopper"},
    {"match": r"^h200\b", "name": "H200", "compute_capability": "9.0", "memory_mib": 143771,
     "class": "datacenter", "architecture": "Hopper"},
    {"match": r"^gh200\b", "name": "GH200", "compute_capability": "9.0", "memory_mib": 97871,
     "class": "datacenter", "architecture": "Hopper"},
    {"match": r"^b200\b", "name": "B200", "compute_capability": "10.0", "memory_mib": 183359,
     "class": "datacenter", "architecture": "Blackwell"},
    {"match": r"^a100\b.*80gb", "name": "A100 80GB", "compute_capability": "8.0", "memory_mib": 81920,
     "class": "datacenter", "architecture": "Ampere"},
    {"match": r"^a100\b", "name": "A100 40GB", "compute_capability": "8.0", "memory_mib": 40960,
     "class": "datacenter", "architecture": "Ampere"},
    {"match": r"^a30\b", "name": "A30", "compute_capability": "8.0", "memory_mib": 24576,
     "class": "datacenter", "architecture": "Ampere"},
    {"match": r"^a10g\b", "name": "A10G", "compute_capability": "8.6", "memory_mib": 23028,
     "class": "datacenter", "architecture": "Ampere"},
    {"match": r"^a10\b", "name": "A10", "compute_capability": "8.6", "memory_mib": 23028,
     "class": "datacenter", "architecture": "Ampere"},
    {"match": r"^a40\b", "name": "A40", "compute_capability": "8.6", "memory_mib": 46068,
     "class": "datacenter", "architecture": "Ampere"},
    {"match": r"^a16\b", "name": "A16", "compute_capability": "8.6", "memory_mib": 16384,
     "class": "datacenter", "architecture": "Ampere"},
    {"match": r"^a2\b", "name": "A2", "compute_capability": "8.6", "memory_mib": 16384,
     "class": "datacenter", "architecture": "Ampere"},
    {"match": r"^l40s\b", "name": "L40S", "compute_capability": "8.9", "memory_mib": 46068,
     "class": "datacenter", "architecture": "Ada Lovelace"},
    {"match": r"^l40\b", "name": "L40", "compute_capability": "8.9", "memory_mib": 46068,
     "class": "datacenter", "architecture": "Ada Lovelace"},
    {"match": r"^l4\b", "name": "L4", "compute_capability": "8.9", "memory_mib": 23034,
     "class": "datacenter", "architecture": "Ada Lovelace"},
    {"match": r"^t4\b", "name": "T4", "compute_capability": "7.5", "memory_mib": 15360,
     "class": "datacenter", "architecture": "Turing"},
    {"match": r"^v100\b.*32gb", "name": "V100 32GB", "compute_capability": "7.0", "memory_mib": 32768,
     "class": "datacenter", "architecture": "Volta"},
    {"match": r"^v100\b", "name": "V100 16GB", "compute_capability": "7.0", "memory_mib": 16384,
     "class": "datacenter", "architecture": "Volta"},
    {"match": r"^p100\b", "name": "P100", "compute_capability": "6.0", "memory_mib": 16384,
     "class": "datacenter", "architecture": "Pascal"},
    {"match": r"^p40\b", "name": "P40", "compute_capability": "6.1", "memory_mib": 24576,
     "class": "datacenter", "architecture": "Pascal"},
    {"match": r"^rtx pro 6000\b", "name": "RTX PRO 6000 Blackwell", "compute_capability": "12.0",
     "memory_mib": 97887, "class": "workstation", "architecture": "Blackwell"},
    {"match": r"^rtx 6000 ada\b", "name": "RTX 6000 Ada", "compute_capability": "8.9", "memory_mib": 49140,
     "class": "workstation", "architecture": "Ada Lovelace"},
    {"match": r"^rtx a6000\b", "name": "RTX A6000", "compute_capability": "8.6", "memory_mib": 49140,
     "class": "workstation", "architecture": "Ampere"},
    {"match": r"^rtx a5000\b", "name": "RTX A5000", "compute_capability": "8.6", "memory_mib": 24564,
     "class": "workstation", "architecture": "Ampere"},
    {"match": r"^rtx a4000\b", "name": "RTX A4000", "compute_capability": "8.6", "memory_mib": 16376,
     "class": "workstation", "architecture": "Ampere"},
    {"match": r"^rtx 5090\b", "name": "RTX 5090", "compute_capability": "12.0", "memory_mib": 32607,
     "class": "consumer", "architecture": "Blackwell"},
    {"match": r"^rtx 5080\b", "name": "RTX 5080", "compute_capability": "12.0", "memory_mib": 16303,
     "class": "consumer", "architecture": "Blackwell"},
    {"match": r"^rtx 4090\b", "name": "RTX 4090", "compute_capability": "8.9", "memory_mib": 24564,
     "class": "consumer", "architecture": "Ada Lovelace"},
    {"match": r"^rtx 4080\b", "name": "RTX 4080", "compute_capability": "8.9", "memory_mib": 16376,
     "class": "consumer", "architecture": "Ada Lovelace"},
    {"match": r"^rtx 4070 ti super\b", "name": "RTX 4070 Ti SUPER", "compute_capability": "8.9",
     "memory_mib": 16376, "class": "consumer", "architecture": "Ada Lovelace"},
    {"match": r"^rtx 4070\b", "name": "RTX 4070", "compute_capability": "8.9", "memory_mib": 12282,
     "class": "consumer", "architecture": "Ada Lovelace"},
    {"match": r"^rtx 4060 ti\b.*16gb", "name": "RTX 4060 Ti 16GB", "compute_capability": "8.9",
     "memory_mib": 16380, "class": "consumer", "architecture": "Ada Lovelace"},
    {"match": r"^rtx 3090\b", "name": "RTX 3090", "compute_capability": "8.6", "memory_mib": 24576,
     "class": "consumer", "architecture": "Ampere"},
    {"match": r"^rtx 3080 ti\b", "name": "RTX 3080 Ti", "compute_capability": "8.6", "memory_mib": 12288,
     "class": "consumer", "architecture": "Ampere"},
    {"match": r"^rtx 3080\b", "name": "RTX 3080", "compute_capability": "8.6", "memory_mib": 10240,
     "class": "consumer", "architecture": "Ampere"},
    {"match": r"^rtx 3060 ti\b", "name": "RTX 3060 Ti", "compute_capability": "8.6", "memory_mib": 8192,
     "class": "consumer", "architecture": "Ampere"},
    {"match": r"^rtx 3060\b", "name": "RTX 3060 12GB", "compute_capability": "8.6", "memory_mib": 12288,
     "class": "consumer", "architecture": "Ampere"},
    {"match": r"^rtx 2080 ti\b", "name": "RTX 2080 Ti", "compute_capability": "7.5", "memory_mib": 11264,
     "class": "consumer", "architecture": "Turing"},
    {"match": r"^titan rtx\b", "name": "TITAN RTX", "compute_capability": "7.5", "memory_mib": 24576,
     "class": "consumer", "architecture": "Turing"},
    {"match": r"^gtx 1080 ti\b", "name": "GTX 1080 Ti", "compute_capability": "6.1", "memory_mib": 11264,
     "class": "consumer", "architecture": "Pascal"},
]

# --- vLLM's own floor, attention kernels, dtypes, quantization -----------------------------------
# Minimum compute capability per image CUDA major (sources: vllm_min_cc, cuda13_arch_drop).
VLLM_MIN_COMPUTE_CAPABILITY = {"12": "7.0", "13": "7.5", "default": "7.0"}
FLASH_ATTENTION_2_MIN_CC = "8.0"  # source: flash_attn_2
BF16_MIN_CC = "8.0"  # source: vllm_bf16

DTYPE_BYTES = {"float16": 2, "bfloat16": 2, "float32": 4}
DTYPE_ALIASES = {"half": "float16", "fp16": "float16", "bf16": "bfloat16", "float": "float32",
                 "fp32": "float32"}

# Per quantization method: the minimum compute capability, an optional (lower, reduced) floor that
# still runs with a warning, the weight bytes per parameter used when a model's weights size is
# unknown (4-bit packs to 0.5 byte; +12 % for group scales/zeros and unquantized embeddings and
# norms), and the checkpoint formats it can load. Source: vllm_quant_hardware, vllm_fp8.
QUANTIZATION = {
    "awq": {"min_cc": "7.5", "bytes_per_param": 0.56, "checkpoint": ["awq"]},
    "awq_marlin": {"min_cc": "8.0", "bytes_per_param": 0.56, "checkpoint": ["awq"], "fallback": "awq"},
    "gptq": {"min_cc": "7.0", "bytes_per_param": 0.56, "checkpoint": ["gptq"]},
    "gptq_marlin": {"min_cc": "8.0", "bytes_per_param": 0.56, "checkpoint": ["gptq"], "fallback": "gptq"},
    "marlin": {"min_cc": "8.0", "bytes_per_param": 0.56, "checkpoint": ["gptq", "marlin"]},
    "fp8": {"min_cc": "8.9", "reduced_cc": "8.0",
            "reduced_note": "weight-only FP8 through FP8 Marlin on Ampere (slower, no FP8 compute)",
            "bytes_per_param": 1.03, "checkpoint": ["fp8", None]},
    "compressed-tensors": {"min_cc": "7.5", "bytes_per_param": None, "checkpoint": ["compressed-tensors"]},
    "bitsandbytes": {"min_cc": "7.0", "bytes_per_param": 0.56, "checkpoint": ["bitsandbytes", None]},
    "gguf": {"min_cc": "7.0", "bytes_per_param": 0.6, "checkpoint": ["gguf"]},
    "modelopt_fp4": {"min_cc": "10.0", "bytes_per_param": 0.56, "checkpoint": ["modelopt_fp4"]},
}

# --- Memory model ---------------------------------------------------------------------------------
# vLLM puts weights, activations (profiled), CUDA graphs and the KV cache inside
# gpu_memory_utilization x total memory; outside it the CUDA context. Figures calibrated against the
# home lab's deployment (Qwen3-8B-AWQ on a 12 GiB RTX 3060 at 0.90 used 10,820 MiB and held 8192 tokens) and
# vllm_kv_error (Llama-3.1-8B bf16 on a 24 GB RTX 3090 at 0.9: about 23-31k tokens of KV cache).
MEMORY_MODEL = {
    "cuda_context_mib": 526,  # source: h100_capture (a CUDA context keeps ~526 MiB per GPU)
    "activation_mib_min": 512,
    "activation_mib_per_billion_params": 240,  # divided by tensor parallel size
    "cuda_graphs_mib": 512,  # 0 with enforce_eager
    "kv_block_tokens": 16,  # vLLM's default block size: capacity is counted in whole blocks
}

# --- vLLM images ----------------------------------------------------------------------------------
# Releases from v0.5.5 to the newest on PyPI (source: pypi_vllm_metadata); vllm/vllm-openai
# publishes one image tag per release, "v" + version.
VLLM_RELEASES = [
    "0.5.5",
    "0.6.0", "0.6.1", "0.6.1.post1", "0.6.1.post2", "0.6.2", "0.6.3", "0.6.3.post1", "0.6.4",
    "0.6.4.post1", "0.6.5", "0.6.6", "0.6.6.post1",
    "0.7.0", "0.7.1", "0.7.2", "0.7.3",
    "0.8.0", "0.8.1", "0.8.2", "0.8.3", "0.8.4", "0.8.5", "0.8.5.post1",
    "0.9.0", "0.9.0.1", "0.9.1", "0.9.2",
    "0.10.0", "0.10.1", "0.10.1.1", "0.10.2",
    "0.11.0", "0.11.1", "0.11.2",
    "0.12.0", "0.13.0", "0.14.0", "0.14.1", "0.15.0", "0.15.1",
    "0.16.0", "0.17.0", "0.17.1", "0.18.0", "0.18.1", "0.19.0", "0.19.1",
    "0.20.0", "0.20.1", "0.20.2", "0.21.0", "0.22.0", "0.22.1", "0.23.0", "0.24.0", "0.25.0",
    "0.25.1", "0.26.0", "0.27.0", "0.27.1", "0.28.0", "0.29.0", "0.30.0", "0.31.0", "0.32.0",
    "0.33.0",
]

# The default (unsuffixed) image of each release series. compat_libs: "always" when the image
# loads its cuda-compat libraries whatever the GPU (ldconfig of /usr/local/cuda-X.Y/compat at build
# time, later a persistent /etc/ld.so.conf.d entry): on a GeForce card with an older driver it dies
# with error 804; "opt_in" when VLLM_ENABLE_CUDA_COMPATIBILITY=1 is needed for them.
VLLM_IMAGE_SERIES = [
    {"first": "0.5.5", "last": "0.8.5.post1", "cuda": "12.4.1", "compat_libs": "always",
     "confidence": "reported", "sources": ["vllm_dockerfile_12_4", "vllm_5510", "vllm_5635", "vllm_16515"],
     "confirmed_for": ["0.5.0 (vllm_5635)", "0.8.x (vllm_16515)"]},
    {"first": "0.9.0", "last": "0.11.0", "cuda": "12.8.1", "compat_libs": "always",
     "confidence": "reported", "sources": ["vllm_16859", "vllm_18813", "nvidia_cuda_image_12_8"],
     "confirmed_for": ["0.9.0 (vllm_18813)"]},
    {"first": "0.11.1", "last": "0.15.1", "cuda": "12.9.1", "compat_libs": "always",
     "confidence": "reported", "sources": ["vllm_0_11_1_notes", "home_lab", "gpustack_4678"],
     "confirmed_for": ["0.15.1 (home_lab)"]},
    {"first": "0.16.0", "last": "0.19.1", "cuda": "12.9.1", "compat_libs": "opt_in",
     "confidence": "inferred", "sources": ["vllm_33992", "vllm_cu130_default"]},
    {"first": "0.20.0", "last": "0.33.0", "cuda": "13.0.2", "compat_libs": "opt_in",
     "confidence": "reported", "sources": ["vllm_cu130_default", "vllm_image_13_0_2"]},
]

# Tag suffixes of the CUDA variant images (e.g. v0.21.0-cu129, v0.29.0-cu129-ubuntu2404); they
# override the series' CUDA (source: vllm_cu130_default).
VLLM_TAG_CUDA_SUFFIXES = {"cu126": "12.6.3", "cu128": "12.8.1", "cu129": "12.9.1", "cu130": "13.0.2"}

# PyTorch pinned by each release (Requires-Dist torch==X; source: pypi_vllm_metadata, confirmed for
# the releases listed; other releases are left out rather than guessed).
VLLM_TORCH = {
    "0.5.5": "2.4.0", "0.6.3.post1": "2.4.0", "0.6.6.post1": "2.5.1", "0.7.3": "2.5.1",
    "0.8.5.post1": "2.6.0", "0.9.2": "2.7.0", "0.10.2": "2.8.0", "0.11.0": "2.8.0",
    "0.11.2": "2.9.0", "0.12.0": "2.9.0", "0.14.0": "2.9.1", "0.15.1": "2.9.1", "0.20.0": "2.11.0",
    "0.27.1": "2.13.0", "0.33.0": "2.14.0",
}

# Known failures of a specific image that no rule derives (source: home_lab).
VLLM_IMAGE_NOTES = {
    "0.12.0": "on a GeForce RTX 3060 with driver 570 it failed with 'RuntimeError: Engine core "
              "initialization failed' (its CUDA 12.9 compat libraries inside the V1 engine core process)",
}

# Model architectures (config.json "architectures") and the oldest vLLM release that serves each one
# natively. "confidence" follows the scale at the top of this file: a preflight fails an older image only
# when the minimum is confirmed, and warns when it is reported. "requires" names a package that
# vllm/vllm-openai does not ship. Architectures not listed are served by every release in VLLM_RELEASES.
VLLM_ARCHITECTURES = {
    "Qwen3ForCausalLM": {"min_vllm": "0.8.4", "confidence": "confirmed",
                         "sources": ["vllm_17327", "vllm_0_8_5_notes"]},
    "Qwen3MoeForCausalLM": {"min_vllm": "0.8.4", "confidence": "confirmed",
                            "sources": ["vllm_17327", "vllm_0_8_5_notes"]},
    # The first tag with it is v0.15.2rc0, after the v0.15 branch; v0.16.0 is the first release whose
    # documentation has the model. Older images start only with qwen-asr's plugin (qwen_asr_pyproject).
    "Qwen3ASRForConditionalGeneration": {"min_vllm": "0.16.0", "confidence": "reported",
                                         "sources": ["qwen3_asr_readme", "vllm_metax_205",
                                                     "vllm_docs_0_16_qwen3_asr"]},
    "Qwen3TTSForConditionalGeneration": {"min_vllm": None, "requires": "vllm-omni", "confidence": "confirmed",
                                         "sources": ["vllm_omni_895"]},
}

# Repositories whose tags follow vllm/vllm-openai's (the same release series).
VLLM_REPOSITORIES = ["vllm/vllm-openai"]

# --- Sleep mode (hot standby) ---------------------------------------------------------------------
# --enable-sleep-mode with VLLM_SERVER_DEV_MODE=1: POST /sleep?level=1|2, POST /wake_up[?tags=...], GET
# /is_sleeping (source: vllm_src_dev_routes, read at 0.8.5.post1, 0.10.2, 0.13.0, 0.14.0, 0.16.0). Older
# releases were not read: the collection does not put them to sleep.
VLLM_SLEEP_MIN = "0.8.5.post1"
# Level 2 discards the weights too: waking needs POST /collective_rpc {"method": "reload_weights"} between
# wake_up?tags=weights and wake_up?tags=kv_cache (source: vllm_src_collective_rpc, confirmed).
VLLM_SLEEP_LEVEL2_MIN = "0.10.2"
# Before this release a request that reaches a sleeping engine runs on unmapped memory (source:
# vllm_src_sleep_scheduler): a sleeper must never be behind a client Service.
VLLM_SLEEP_PAUSES_SCHEDULER = "0.17.0"

# What a sleeping server keeps on each of its GPUs, per release range ("first" .. the next row): the
# CUDA context, the CUDA graph pool and allocator leftovers (residue_mib), plus the weights where the
# release leaves them outside the sleep-mode pool (keeps_weights). residue_mib is the largest per-GPU
# figure reported (1.14 GB on 0.13.0) rounded up to 1.2 GiB: it varies with the GPU, the model, CUDA
# graphs and tensor parallelism (NVIDIA-NeMo/RL#223 reports more with TP 2), so a catalog entry may set
# its own (sleep_residue_mib). The 0.17.0 row is inferred: the weights fix was read, no residue report.
VLLM_SLEEP_RESIDUE = [
    {"first": "0.8.5.post1", "residue_mib": 1229, "keeps_weights": False, "confidence": "reported",
     "sources": ["vllm_11743", "nemo_rl_223", "vllm_32714"]},
    {"first": "0.14.0", "residue_mib": 1229, "keeps_weights": True, "confidence": "confirmed",
     "sources": ["vllm_src_weights_outside_pool", "vllm_32714"]},
    {"first": "0.17.0", "residue_mib": 1229, "keeps_weights": False, "confidence": "inferred",
     "sources": ["vllm_src_weights_outside_pool"]},
]

# Before this release the share is of the whole device: what other processes hold (a sleeper's residue
# included) comes out of the KV cache of a server that starts next to them (source: vllm_src_kv_budget).
VLLM_OWN_SHARE_FROM = "0.9.1"

# Host memory a vLLM server process needs beside a level-1 sleeper's weights copy (Python, CUDA and
# tokenizer state, pinned staging buffers). Not sourced: an estimate, a parameter of the catalog
# (vllm_sleep_host_overhead_gib) and of vllm_compat (model.host_overhead_mib).
SLEEP_HOST_OVERHEAD_MIB = 4096
