# -*- coding: utf-8 -*-
# Copyright: baremetal.gpu maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Rules of the vLLM compatibility preflight: will this image serve this model on this node?

``check(image, node, model, colocated)`` returns a verdict (``ok``, ``warn``, ``fail``) and the
reasons, each ``{code, severity, message, fix}``. Every rule reads ``compat_data`` (facts with
sources) and ``models`` (the model catalog); nothing here touches the network except
``resolve_image`` with ``offline=False``, which reads the image's config through
``oci.fetch_image_config`` and falls back to the data with a warning.

Bad input raises ValueError naming the field (``model.gpu_memory_utilization``, ``node.gpus[0]``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import functools
import math
import re

from ansible_collections.baremetal.gpu.plugins.module_utils import compat_data as data
from ansible_collections.baremetal.gpu.plugins.module_utils import models
from ansible_collections.baremetal.gpu.plugins.module_utils.gpu import lookup_gpu, brand_key, product_class
from ansible_collections.baremetal.gpu.plugins.module_utils.versions import (
    branch_of,
    compare as _vcmp,
    cuda_minor,
    parse_driver_version,
    version_tuple,
)
from ansible_collections.baremetal.gpu.plugins.module_utils.oci import (
    RegistryError,
    cuda_version_from_config,
    fetch_image_config,
    nvidia_require_satisfied,
    parse_image_reference,
    parse_nvidia_require_cuda,
)

CODES = (
    "driver_too_old", "forward_compat_unsupported", "compute_capability_too_low", "dtype_unsupported",
    "quantization_unsupported", "gpu_count_insufficient", "vram_insufficient", "kv_cache_insufficient",
    "gpu_memory_oversubscribed", "unknown_image", "unknown_model", "vllm_too_old", "package_missing",
    "sleep_mode_unsupported", "sleep_mode_unverified", "sleep_keeps_weights", "host_memory_insufficient",
)
SEVERITIES = ("info", "warn", "fail")
# What --dtype accepts: "auto" (the checkpoint's) or a dtype whose width the data knows, and vLLM's aliases.
DTYPES = ("auto",) + tuple(sorted(data.DTYPE_BYTES))
DTYPE_CHOICES = list(DTYPES) + sorted(data.DTYPE_ALIASES)
# --kv-cache-dtype values, with the bytes per element of each (None: the model's dtype).
KV_CACHE_DTYPES = {"auto": None, "fp8": 1, "fp8_e4m3": 1, "fp8_e5m2": 1}
ERROR_804 = ("RuntimeError: Unexpected error from cudaGetDeviceCount(). Did you run some cuda functions "
             "before calling NumCudaDevices() that might have already set an error? Error 804: forward "
             "compatibility was attempted on non supported HW")

_TAG_RE = re.compile(r"^v?(\d+\.\d+\.\d+(?:\.post\d+|\.\d+)?)(?:-(.+))?$")


# --- small helpers -------------------------------------------------------------------------------------

def reason(code, severity, message, fix=None):
    if code not in CODES:
        raise ValueError("unknown reason code %r" % code)
    if severity not in SEVERITIES:
        raise ValueError("unknown severity %r" % severity)
    return {"code": code, "severity": severity, "message": message, "fix": fix}


def min_driver_for_cuda(cuda):
    """Minimum Linux driver for an image's CUDA: its exact row (12.9.1 -> 575.57.08), else the GA
    of its minor (12.9 -> 575.51.03); None when the table does not know it."""
    if not cuda:
        return None
    rows = dict((row["cuda"], row["min_driver"]) for row in data.CUDA_MIN_DRIVER)
    if cuda in rows:
        return rows[cuda]
    return rows.get(cuda_minor(cuda))


@functools.lru_cache(maxsize=256)
def driver_cuda_from_version(driver_version):
    """The highest CUDA X.Y a driver supports (its GA row in Table 3): 570.195.03 -> ``"12.8"``."""
    best = None
    for row in data.CUDA_MIN_DRIVER:
        if row["cuda"].count(".") != 1:
            continue
        if _vcmp(driver_version, row["min_driver"]) >= 0:
            if best is None or _vcmp(row["cuda"], best) > 0:
                best = row["cuda"]
    return best


# --- image -------------------------------------------------------------------------------------------

def parse_vllm_tag(tag):
    """``"v0.15.1"`` -> (``"0.15.1"``, None); ``"v0.21.0-cu129-ubuntu2404"`` -> (``"0.21.0"``,
    ``"cu129-ubuntu2404"``); (None, None) when the tag is not a release tag."""
    match = _TAG_RE.match(tag or "")
    if not match:
        return None, None
    return match.group(1), match.group(2)


@functools.lru_cache(maxsize=512)
def _series_for(version):
    for series in data.VLLM_IMAGE_SERIES:
        if _vcmp(version, series["first"]) >= 0 and _vcmp(version, series["last"]) <= 0:
            return series
    return None


def image_info_from_data(image):
    """What the collection's data knows of an image reference (no network)."""
    ref = parse_image_reference(image)
    info = {
        "given": image,
        "reference": str(ref),
        "repository": ref.repository,
        "tag": ref.tag,
        "digest": ref.digest,
        "vllm_version": None,
        "cuda": None,
        "torch": None,
        "compat_libs": None,
        "forward_compat_branches": None,
        "nvidia_require_cuda": None,
        "confidence": None,
        "sources": [],
        "source": "data",
        "known": False,
        "note": None,
    }
    repo = ref.repository[len("library/"):] if ref.repository.startswith("library/") else ref.repository
    if repo not in data.VLLM_REPOSITORIES or not ref.tag:
        return info
    version, suffix = parse_vllm_tag(ref.tag)
    if version is None or version not in data.VLLM_RELEASES:
        return info
    series = _series_for(version)
    if series is None:
        return info
    info.update(
        vllm_version=version,
        cuda=series["cuda"],
        torch=data.VLLM_TORCH.get(version),
        compat_libs=series["compat_libs"],
        confidence=series["confidence"],
        sources=list(series["sources"]),
        known=True,
        note=data.VLLM_IMAGE_NOTES.get(version),
    )
    if suffix:
        variant = suffix.split("-")[0]
        if variant in data.VLLM_TAG_CUDA_SUFFIXES:
            info["cuda"] = data.VLLM_TAG_CUDA_SUFFIXES[variant]
            info["sources"].append("vllm_cu130_default")
        elif not re.match(r"^(ubuntu\d+|x86_64|aarch64)$", variant):
            info["known"] = False
    fc = data.FORWARD_COMPAT_BRANCHES.get(cuda_minor(info["cuda"]))
    if fc:
        info["forward_compat_branches"] = list(fc["branches"])
    return info


def image_info_from_config(info, config):
    """Overlay what the registry says (the image's own env) on the data's view."""
    env = config.get("env") or {}
    cuda = cuda_version_from_config(config)
    info = dict(info, source="registry", digest=config.get("digest") or info.get("digest"))
    if cuda:
        info["cuda"] = cuda
        info["known"] = True
        info["confidence"] = "confirmed"
        info["sources"] = ["registry: %s CUDA_VERSION" % info["reference"]]
    require = env.get("NVIDIA_REQUIRE_CUDA")
    if require:
        info["nvidia_require_cuda"] = require
        try:
            parsed = parse_nvidia_require_cuda(require)
        except ValueError:
            parsed = None
        if parsed:
            branches = set()
            for values in parsed["forward_compat"].values():
                branches.update(values)
            info["forward_compat_branches"] = sorted(branches)
    flag = env.get("VLLM_ENABLE_CUDA_COMPATIBILITY")
    if flag is not None:
        info["compat_libs"] = "always" if flag.strip().lower() in ("1", "true") else "opt_in"
    return info


def resolve_image(image, offline=True, registry=None):
    """Image facts and the reasons the lookup itself produced (unknown image, registry fallback)."""
    try:
        info = image_info_from_data(image)
    except ValueError as exc:
        raise ValueError("image: %s" % exc)
    reasons = []
    if not offline:
        opts = dict(registry or {})
        try:
            config = fetch_image_config(info["reference"], **opts)
            info = image_info_from_config(info, config)
            info["cached"] = bool(config.get("cached"))
        except (RegistryError, OSError) as exc:
            reasons.append(reason(
                "unknown_image", "warn",
                "registry lookup of %s failed (%s); using the collection's data%s"
                % (info["reference"], exc,
                   " (CUDA %s, confidence %s)" % (info["cuda"], info["confidence"]) if info["known"] else ""),
                "check network access to the registry, or run with offline: true"))
    if not info["cuda"]:
        reasons.append(reason(
            "unknown_image", "warn",
            "%s is not in the collection's image data (data version %s)%s: its CUDA version is unknown, "
            "so the driver check is skipped" % (info["reference"], data.DATA_VERSION,
                                                "" if not offline else " and offline is true"),
            "use a vllm/vllm-openai release tag (v%s ... v%s) or run with offline: false to read the "
            "image's CUDA_VERSION from its registry" % (data.VLLM_RELEASES[0], data.VLLM_RELEASES[-1])))
    elif info.get("confidence") == "inferred":
        reasons.append(reason(
            "unknown_image", "info",
            "%s: CUDA %s is inferred from neighbouring releases, not confirmed for this tag"
            % (info["reference"], info["cuda"]),
            "run with offline: false to read the image's own CUDA_VERSION"))
    return info, reasons


@functools.lru_cache(maxsize=1024)
def newest_tag_for(driver_cuda, min_cc=None, min_vllm=None):
    """The newest vllm/vllm-openai tag whose CUDA the driver supports natively, or None."""
    if not driver_cuda:
        return None
    limit = version_tuple(driver_cuda)
    for version in reversed(data.VLLM_RELEASES):
        if min_vllm and _vcmp(version, min_vllm) < 0:
            continue
        series = _series_for(version)
        if series is None:
            continue
        candidates = [("v%s" % version, series["cuda"])]
        if _vcmp(version, "0.20.0") >= 0:
            candidates.append(("v%s-cu129" % version, data.VLLM_TAG_CUDA_SUFFIXES["cu129"]))
        for tag, cuda in candidates:
            if version_tuple(cuda_minor(cuda)) > limit:
                continue
            if min_cc and _vcmp(min_cc, data.VLLM_MIN_COMPUTE_CAPABILITY.get(cuda.split(".")[0], "0")) < 0:
                continue
            return tag, cuda
    return None


# --- input normalisation -------------------------------------------------------------------------------

def _number(value, field, positive=True, integer=False, allow_none=True):
    if value is None or value == "":
        if allow_none:
            return None
        raise ValueError("%s is required" % field)
    if isinstance(value, bool):
        raise ValueError("%s must be a number, got %r" % (field, value))
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError("%s must be a number, got %r" % (field, value))
    if integer:
        if number != int(number):
            raise ValueError("%s must be a whole number, got %r" % (field, value))
        number = int(number)
    if positive and number <= 0:
        raise ValueError("%s must be greater than 0, got %r" % (field, value))
    if not positive and number < 0:
        raise ValueError("%s must not be negative, got %r" % (field, value))
    return number


def _utilization(value, field):
    number = _number(value, field, allow_none=False)
    if not 0 < number <= 1:
        raise ValueError("%s must be in (0, 1], got %r" % (field, value))
    return number


def normalize_node(node):
    """Validate node facts (gpu_facts output or hand-written) and fill what the GPU table knows."""
    if not isinstance(node, dict):
        raise ValueError("node must be a mapping (gpu_facts output or driver_version plus gpus)")
    driver = node.get("driver_version")
    if driver is not None:
        driver = str(driver).strip()
        if parse_driver_version(driver) is None:
            raise ValueError("node.driver_version must look like 570.195.03, got %r" % node.get("driver_version"))
    installed = node.get("driver_installed")
    if installed is None:
        installed = bool(driver)
    cuda = node.get("cuda_driver_version")
    if cuda is not None:
        cuda = str(cuda).strip()
        if not re.match(r"^\d+\.\d+$", cuda):
            raise ValueError("node.cuda_driver_version must look like 12.8, got %r" % node.get("cuda_driver_version"))
    elif driver:
        cuda = driver_cuda_from_version(driver)
    gpus = []
    raw_gpus = node.get("gpus") or []
    if not isinstance(raw_gpus, list):
        raise ValueError("node.gpus must be a list")
    for i, raw in enumerate(raw_gpus):
        field = "node.gpus[%d]" % i
        if not isinstance(raw, dict):
            raise ValueError("%s must be a mapping with name, compute_capability, memory_total_mib" % field)
        name = raw.get("name")
        entry = lookup_gpu(name) if name else None
        cc = raw.get("compute_capability")
        if cc is not None:
            cc = str(cc).strip()
            if not re.match(r"^\d+\.\d+$", cc):
                raise ValueError("%s.compute_capability must look like 8.6, got %r" % (field, raw.get("compute_capability")))
        elif entry:
            cc = entry["compute_capability"]
        else:
            raise ValueError("%s: unknown GPU name %r and no compute_capability given; add compute_capability "
                             "(and memory_total_mib)" % (field, name))
        total = _number(raw.get("memory_total_mib"), field + ".memory_total_mib", integer=False)
        if total is None:
            if not entry:
                raise ValueError("%s: unknown GPU name %r and no memory_total_mib given" % (field, name))
            total = entry["memory_mib"]
        total = int(round(total))
        used = _number(raw.get("memory_used_mib"), field + ".memory_used_mib", positive=False) or 0
        brand = raw.get("brand") or brand_key(raw.get("product_brand"))
        klass = raw.get("product_class") or product_class(brand, name)
        gpus.append({
            "index": raw.get("index", i),
            "name": name or "GPU %d" % i,
            "compute_capability": cc,
            "memory_total_mib": total,
            "memory_used_mib": used,
            "brand": brand or ({"consumer": "geforce", "datacenter": "nvidia"}.get(klass)),
            "product_class": klass,
        })
    count = node.get("gpu_count")
    if count is None:
        count = len(gpus)
    return {"driver_installed": bool(installed), "driver_version": driver, "cuda_driver_version": cuda,
            "gpus": gpus, "gpu_count": int(count), "reason": node.get("reason"),
            "host_memory_mib": _number(node.get("host_memory_mib"), "node.host_memory_mib")}


def estimate_weights_gib(params_b, quantization, dtype_bytes):
    """Weights on the GPU from the parameter count: dtype bytes unquantized, else the method's."""
    per_param = None
    if quantization:
        per_param = (data.QUANTIZATION.get(quantization) or {}).get("bytes_per_param")
    if per_param is None:
        per_param = dtype_bytes
    return params_b * 1e9 * per_param / (1024.0 ** 3)


def normalize_model(model):
    """Validate the model request and merge the catalog entry; returns (model, catalog_entry)."""
    if not isinstance(model, dict):
        raise ValueError("model must be a mapping with at least a name")
    name = model.get("name")
    if not name or not isinstance(name, str):
        raise ValueError("model.name is required (a Hugging Face repository or served path)")
    entry = models.find_model(name)
    out = {"name": name}
    dtype = str(model.get("dtype") or "auto").strip().lower()
    dtype = data.DTYPE_ALIASES.get(dtype, dtype)
    if dtype not in DTYPES:
        raise ValueError("model.dtype must be one of %s, got %r" % (", ".join(DTYPES), model.get("dtype")))
    out["dtype"] = dtype
    quant = model.get("quantization")
    out["quantization"] = str(quant).strip().lower() if quant not in (None, "", "none", "None") else None
    out["max_model_len"] = _number(model.get("max_model_len"), "model.max_model_len", integer=True)
    tp = model.get("tensor_parallel_size")
    out["tensor_parallel_size"] = _number(1 if tp is None else tp, "model.tensor_parallel_size", integer=True)
    out["gpu_memory_utilization"] = _utilization(
        model.get("gpu_memory_utilization", 0.9) if model.get("gpu_memory_utilization") is not None else 0.9,
        "model.gpu_memory_utilization")
    out["enforce_eager"] = bool(model.get("enforce_eager", False))
    kv_dtype = str(model.get("kv_cache_dtype") or "auto").strip().lower()
    if kv_dtype not in KV_CACHE_DTYPES:
        raise ValueError("model.kv_cache_dtype must be one of %s, got %r"
                         % (", ".join(KV_CACHE_DTYPES), model.get("kv_cache_dtype")))
    out["kv_cache_dtype"] = kv_dtype
    for key in ("params_b", "weights_gib"):
        out[key] = _number(model.get(key), "model." + key)
        if out[key] is None and entry:
            out[key] = entry.get(key)
    for key in ("num_layers", "num_kv_heads", "head_dim"):
        out[key] = _number(model.get(key), "model." + key, integer=True)
        if out[key] is None and entry:
            out[key] = entry.get(key)
    out["torch_dtype"] = (model.get("torch_dtype") or (entry or {}).get("torch_dtype") or "bfloat16")
    out["checkpoint_quantization"] = model.get("checkpoint_quantization", (entry or {}).get("quantization"))
    out["max_position_embeddings"] = _number(
        model.get("max_position_embeddings") or (entry or {}).get("max_position_embeddings"),
        "model.max_position_embeddings", integer=True)
    out["architecture"] = model.get("architecture") or (entry or {}).get("architecture")
    out.update(release_floor(out["architecture"], model.get("min_vllm") or (entry or {}).get("min_vllm")))
    out.update(_normalize_sleep(model))
    out["family"] = (entry or {}).get("family")
    out["fallback"] = (entry or {}).get("fallback")
    out["in_catalog"] = entry is not None
    return out, entry


# --- the rules -----------------------------------------------------------------------------------------

def _driver_rules(image, node, gpus, model):
    """Image CUDA vs driver CUDA, per GPU class (consumer cards never get forward compatibility)."""
    out = []
    cuda = image.get("cuda")
    needed = min_driver_for_cuda(cuda)
    if not node["driver_installed"] or not node["driver_version"]:
        wanted = " >= %s (branch R%s or newer)" % (needed, branch_of(needed)) if needed else ""
        out.append(reason(
            "driver_too_old", "fail",
            "no NVIDIA driver on the node%s" % (": %s" % node["reason"] if node.get("reason") else ""),
            "install an NVIDIA driver%s and reboot" % wanted))
        return out
    if not cuda:
        return out
    driver_cuda = node["cuda_driver_version"]
    if driver_cuda and version_tuple(cuda_minor(cuda)) <= version_tuple(driver_cuda):
        return out
    branch = branch_of(node["driver_version"])
    min_cc = min(gpu["compute_capability"] for gpu in gpus) if gpus else None
    suggestion = newest_tag_for(driver_cuda, min_cc=min_cc, min_vllm=model.get("min_vllm"))
    tag_fix = ("use image %s:%s (CUDA %s)" % (image["repository"], suggestion[0], suggestion[1])
               if suggestion else None)
    driver_fix = "install NVIDIA driver >= %s (branch R%s or newer)" % (needed, branch_of(needed)) if needed else None
    fixes = " or ".join(f for f in (tag_fix, driver_fix) if f)
    head = ("%s is built on CUDA %s but driver %s supports CUDA %s"
            % (image["reference"], cuda, node["driver_version"], driver_cuda or "?"))
    classes = sorted(set(gpu["product_class"] for gpu in gpus)) or ["unknown"]
    non_dc = [c for c in classes if c not in data.FORWARD_COMPAT_CLASSES]
    if non_dc:
        names = ", ".join(sorted(set(g["name"] for g in gpus if g["product_class"] in non_dc)))
        require = image.get("nvidia_require_cuda")
        gpu0 = [g for g in gpus if g["product_class"] in non_dc][0]
        runtime_refuses = bool(require) and not nvidia_require_satisfied(
            require, driver_cuda, node["driver_version"], brand=gpu0.get("brand"), arch=gpu0["compute_capability"])
        if image.get("compat_libs") == "opt_in":
            message = ("%s; forward compatibility does not work on %s (%s). The NVIDIA container runtime "
                       "refuses it: 'nvidia-container-cli: requirement error: unsatisfied condition: cuda>=%s, "
                       "please update your driver to a newer version, or use an earlier cuda container'"
                       % (head, names, "/".join(non_dc), cuda_minor(cuda)))
            same_major = driver_cuda and cuda.split(".")[0] == driver_cuda.split(".")[0]
            if same_major:
                message += ("; where that check is off (CDI mode, NVIDIA_DISABLE_REQUIRE=1) it may start through "
                            "CUDA minor version compatibility, without PTX JIT of newer kernels")
            else:
                message += "; a CUDA %s driver cannot run CUDA %s code at all" % (
                    driver_cuda.split(".")[0] if driver_cuda else "?", cuda.split(".")[0])
        else:
            message = ("%s; the image loads its CUDA %s forward-compatibility libraries, which do not work "
                       "on %s (%s): it dies at start with '%s'"
                       % (head, cuda_minor(cuda), names, "/".join(non_dc), ERROR_804))
            if runtime_refuses:
                message += (" (or, where the container runtime checks NVIDIA_REQUIRE_CUDA, refuses to start: "
                            "'unsatisfied condition: cuda>=%s')" % cuda_minor(cuda))
        if image.get("note"):
            message += "; reported: %s" % image["note"]
        out.append(reason("forward_compat_unsupported", "fail", message, fixes))
        return out
    branches = image.get("forward_compat_branches")
    # Branches are strings ("570") everywhere; the data and NVIDIA_REQUIRE_CUDA list them as numbers.
    covered = bool(branches) and int(branch) in branches
    require = image.get("nvidia_require_cuda")
    if require:
        # The image's own NVIDIA_REQUIRE_CUDA decides, per brand, as the NVIDIA container runtime does.
        gpu0 = gpus[0] if gpus else {}
        brand = gpu0.get("brand") or "nvidia"
        try:
            branches = sorted(parse_nvidia_require_cuda(require)["forward_compat"].get(brand, []))
        except ValueError:
            branches = []
        covered = nvidia_require_satisfied(require, driver_cuda, node["driver_version"], brand=brand,
                                           arch=gpu0.get("compute_capability"))
    if covered:
        fix = fixes
        if image.get("compat_libs") == "opt_in":
            fix = "set VLLM_ENABLE_CUDA_COMPATIBILITY=1 in the container's environment, or " + fixes
        out.append(reason(
            "driver_too_old", "warn",
            "%s; on this datacenter GPU the CUDA %s forward-compatibility package covers driver branch R%s "
            "(supported branches: %s), with the limits NVIDIA documents"
            % (head, cuda_minor(cuda), branch, ", ".join("R%d" % b for b in branches)), fix))
    else:
        out.append(reason(
            "driver_too_old", "fail",
            "%s; CUDA %s forward compatibility does not cover driver branch R%s%s"
            % (head, cuda_minor(cuda), branch,
               " (supported: %s)" % ", ".join("R%d" % b for b in branches) if branches else " (no branch list known)"),
            fixes))
    return out


def _capability_rules(image, gpus):
    out = []
    cuda_major = str(image["cuda"]).split(".", maxsplit=1)[0] if image.get("cuda") else "default"
    floor = data.VLLM_MIN_COMPUTE_CAPABILITY.get(cuda_major, data.VLLM_MIN_COMPUTE_CAPABILITY["default"])
    for gpu in gpus:
        cc = gpu["compute_capability"]
        if _vcmp(cc, floor) < 0:
            fix = "use a GPU of compute capability %s or newer" % floor
            if cuda_major == "13" and _vcmp(cc, "7.0") >= 0:
                tag = newest_tag_for("12.9", min_cc=cc)
                fix = "use a CUDA 12 image such as vllm/vllm-openai:%s (CUDA 13 dropped Volta), or %s" % (
                    tag[0], fix) if tag else fix
            out.append(reason(
                "compute_capability_too_low", "fail",
                "%s has compute capability %s; vLLM on CUDA %s needs %s or newer"
                % (gpu["name"], cc, image.get("cuda") or "12", floor), fix))
        elif _vcmp(cc, data.FLASH_ATTENTION_2_MIN_CC) < 0:
            out.append(reason(
                "compute_capability_too_low", "info",
                "%s (compute capability %s) has no FlashAttention-2 (needs %s+): vLLM uses a slower attention "
                "backend" % (gpu["name"], cc, data.FLASH_ATTENTION_2_MIN_CC), None))
            break
    return out


def _resolved_dtype(model):
    """What vLLM runs: explicit dtype, else the checkpoint's; AWQ/GPTQ kernels (non-Marlin) run float16."""
    if model["dtype"] != "auto":
        return model["dtype"]
    quant = model["quantization"] or model["checkpoint_quantization"]
    if quant in ("awq", "gptq") and model["quantization"] in (None, "awq", "gptq"):
        return "float16"
    return data.DTYPE_ALIASES.get(str(model["torch_dtype"]).lower(), str(model["torch_dtype"]).lower())


def _dtype_rules(model, gpus):
    out = []
    low = [g for g in gpus if _vcmp(g["compute_capability"], data.BF16_MIN_CC) < 0]
    if not low:
        return out
    gpu = low[0]
    if model["dtype"] == "bfloat16":
        out.append(reason(
            "dtype_unsupported", "fail",
            "Bfloat16 is only supported on GPUs with compute capability of at least %s. Your %s GPU has compute "
            "capability %s. You can use float16 instead by explicitly setting the `dtype` flag in CLI, for "
            "example: --dtype=half." % (data.BF16_MIN_CC, gpu["name"], gpu["compute_capability"]),
            "dtype: float16"))
    elif model["dtype"] == "auto" and _resolved_dtype(model) == "bfloat16":
        out.append(reason(
            "dtype_unsupported", "warn",
            "dtype auto resolves to the checkpoint's bfloat16, which %s (compute capability %s) cannot run; "
            "vLLM falls back to float16 or refuses, depending on the release" % (gpu["name"], gpu["compute_capability"]),
            "dtype: float16"))
    return out


def _quantization_rules(model, gpus):
    out = []
    requested = model["quantization"]
    checkpoint = model["checkpoint_quantization"]
    method = requested or checkpoint
    if not method:
        return out
    spec = data.QUANTIZATION.get(method)
    if spec is None:
        out.append(reason("quantization_unsupported", "warn",
                          "quantization method %r is not in the collection's data; kernel support not checked" % method,
                          None))
        return out
    if requested and model["in_catalog"] and checkpoint not in spec["checkpoint"]:
        out.append(reason(
            "quantization_unsupported", "fail",
            "Quantization method specified in the model config (%s) does not match the quantization method "
            "specified in the `quantization` argument (%s)" % (checkpoint, requested),
            "quantization: %s" % (checkpoint if checkpoint else "null")))
        return out
    gpu = min(gpus, key=lambda g: version_tuple(g["compute_capability"])) if gpus else None
    if gpu is None:
        return out
    cc = gpu["compute_capability"]
    if _vcmp(cc, spec["min_cc"]) >= 0:
        return out
    if spec.get("reduced_cc") and _vcmp(cc, spec["reduced_cc"]) >= 0:
        out.append(reason("quantization_unsupported", "warn",
                          "%s on %s (compute capability %s): %s" % (method, gpu["name"], cc, spec["reduced_note"]),
                          None))
        return out
    fallback = spec.get("fallback")
    if fallback and _vcmp(cc, data.QUANTIZATION[fallback]["min_cc"]) >= 0:
        fix = "quantization: %s" % fallback
    else:
        fix = "use an unquantized or GPTQ checkpoint, or a GPU of compute capability %s+" % spec["min_cc"]
    out.append(reason(
        "quantization_unsupported", "fail",
        "The quantization method %s is not supported for the current GPU. Minimum capability: %s. Current "
        "capability: %s (%s)" % (method, spec["min_cc"].replace(".", ""), cc.replace(".", ""), gpu["name"]), fix))
    return out


def memory_plan(model, gpu_total_mib, taken_mib=0):
    """Per-GPU memory arithmetic: budget, weights, overhead, KV bytes per token and token capacity.
    ``taken_mib``: memory of other processes that comes out of this server's share (vLLM before 0.9.1)."""
    tp = model["tensor_parallel_size"]
    resolved = _resolved_dtype(model)
    dtype_bytes = data.DTYPE_BYTES.get(resolved, 2)
    quant = model["quantization"] or model["checkpoint_quantization"]
    weights_gib = model.get("weights_gib")
    estimated = False
    if weights_gib is None and model.get("params_b"):
        weights_gib = estimate_weights_gib(model["params_b"], quant, dtype_bytes)
        estimated = True
    mm = data.MEMORY_MODEL
    budget = model["gpu_memory_utilization"] * gpu_total_mib
    plan = {"budget_mib": round(budget), "gpu_total_mib": gpu_total_mib, "weights_mib": None,
            "overhead_mib": None, "kv_cache_mib": None, "kv_bytes_per_token": None, "kv_capacity_tokens": None,
            "weights_estimated": estimated, "dtype": resolved}
    if weights_gib is None:
        return plan
    weights = weights_gib * 1024.0 / tp
    activation = max(mm["activation_mib_min"], mm["activation_mib_per_billion_params"] * (model.get("params_b") or 0) / tp)
    overhead = mm["cuda_context_mib"] + activation + (0 if model["enforce_eager"] else mm["cuda_graphs_mib"])
    kv = budget - weights - overhead - taken_mib
    plan.update(weights_mib=round(weights), overhead_mib=round(overhead), kv_cache_mib=round(kv))
    if taken_mib:
        plan["taken_mib"] = round(taken_mib)
    if all(model.get(k) for k in ("num_layers", "num_kv_heads", "head_dim")):
        kv_dtype_bytes = KV_CACHE_DTYPES.get(model["kv_cache_dtype"]) or dtype_bytes
        heads = max(1, int(math.ceil(model["num_kv_heads"] / float(tp))))
        per_token = model["num_layers"] * heads * model["head_dim"] * 2 * kv_dtype_bytes
        block = mm["kv_block_tokens"]
        capacity = int(max(kv, 0) * 1024 * 1024 // per_token) // block * block
        plan.update(kv_bytes_per_token=per_token, kv_capacity_tokens=capacity)
    return plan


def _round_len(tokens):
    """A max_model_len to suggest: the largest multiple of 1024 (or 256 below 2048) not above tokens."""
    step = 1024 if tokens >= 2048 else 256
    return max(step, int(tokens) // step * step) if tokens >= step else int(tokens)


def _fits(model, total_mib, tokens):
    plan = memory_plan(model, total_mib)
    return plan["weights_mib"] is not None and plan["kv_cache_mib"] > 0 and (
        plan["kv_capacity_tokens"] is None or plan["kv_capacity_tokens"] >= tokens)


def _fallback_model(model, total_mib, tokens):
    """The first catalog fallback (following the chain) that fits this GPU at ``tokens``."""
    seen = set()
    name = model.get("fallback")
    while name and name not in seen:
        seen.add(name)
        entry = models.find_model(name)
        if entry is None:
            return None
        candidate, _entry = normalize_model(dict(
            name=entry["name"], dtype=model["dtype"], max_model_len=None,
            tensor_parallel_size=model["tensor_parallel_size"],
            gpu_memory_utilization=model["gpu_memory_utilization"], enforce_eager=model["enforce_eager"]))
        if _fits(candidate, total_mib, min(tokens, candidate["max_position_embeddings"] or tokens)):
            return entry["name"]
        name = entry.get("fallback")
    return None


def _memory_rules(model, gpus, node_gpu_count, colocated, standby=(), image=None):
    out = []
    tp = model["tensor_parallel_size"]
    if tp > node_gpu_count:
        out.append(reason(
            "gpu_count_insufficient", "fail",
            "tensor_parallel_size %d needs %d GPUs; the node has %d" % (tp, tp, node_gpu_count),
            "tensor_parallel_size: %d, or a node with %d GPUs" % (max(node_gpu_count, 1), tp)))
        return out, None
    used = gpus[:tp] if gpus else []
    if not used:
        return out, None
    gpu = min(used, key=lambda g: g["memory_total_mib"])
    total = gpu["memory_total_mib"]
    util = model["gpu_memory_utilization"]

    # Colocated workloads on the same GPU(s): their budgets plus what is already in use, plus what the
    # sleepers kept resident beside it hold while asleep.
    sleeping_mib = sum(s["residue_mib"] for s in standby)
    others_util = sum(c["gpu_memory_utilization"] or 0 for c in colocated)
    others_mib = sum(c["memory_mib"] or 0 for c in colocated) + max(g["memory_used_mib"] for g in used) + sleeping_mib
    taken = others_util + others_mib / float(total)
    if colocated or others_mib:
        if util + taken > 1.0:
            room = math.floor((1.0 - taken) * 100) / 100.0
            names = ", ".join([c["name"] for c in colocated] +
                              ["%s (asleep, %d MiB)" % (s["name"], s["residue_mib"]) for s in standby]) \
                or "processes already on the GPU"
            out.append(reason(
                "gpu_memory_oversubscribed", "fail",
                "Free memory on device (%.2f/%.2f GiB) on startup is less than desired GPU memory utilization "
                "(%.2f, %.2f GiB): %s take %.0f%% of %s"
                % ((1.0 - taken) * total / 1024.0, total / 1024.0, util, util * total / 1024.0, names,
                   taken * 100, gpu["name"]),
                "gpu_memory_utilization: %.2f (or lower the others' share)" % room if room > 0
                else "move %s to another GPU" % names))

    tokens = model["max_model_len"] or model["max_position_embeddings"]
    version = (image or {}).get("vllm_version")
    # before 0.9.1 a server's share is of the whole device: the sleepers' residue comes out of its KV cache
    own_share = version is None or _vcmp(version, data.VLLM_OWN_SHARE_FROM) >= 0
    plan = memory_plan(model, total, taken_mib=0 if own_share else sleeping_mib)
    if plan["weights_mib"] is None:
        return out, plan
    need = plan["weights_mib"] + plan["overhead_mib"] + plan.get("taken_mib", 0)
    if plan["kv_cache_mib"] <= 0:
        fixes = []
        if tokens and plan["kv_bytes_per_token"]:
            want = need + tokens * plan["kv_bytes_per_token"] / 1048576.0
            needed_util = math.ceil(want / total * 100) / 100.0
            if needed_util <= 0.95:
                fixes.append("gpu_memory_utilization: %.2f" % needed_util)
        if tp * 2 <= node_gpu_count:
            fixes.append("tensor_parallel_size: %d" % (tp * 2))
        fallback_len = model["max_model_len"] or min(tokens or 8192, 8192)
        fallback = _fallback_model(model, total, fallback_len)
        if fallback:
            fixes.append("model: %s with max_model_len: %d" % (fallback, fallback_len))
        out.append(reason(
            "vram_insufficient", "fail",
            "%s needs %d MiB per GPU (weights %d%s + runtime %d%s) but gpu_memory_utilization %.2f x %d MiB = %d MiB "
            "on %s" % (model["name"], int(need), int(plan["weights_mib"]), " estimated" if plan["weights_estimated"] else "",
                       int(plan["overhead_mib"]),
                       " + sleepers' residue %d" % plan["taken_mib"] if plan.get("taken_mib") else "",
                       util, total, int(plan["budget_mib"]), gpu["name"]),
            " or ".join(fixes) or "a GPU with more memory"))
        return out, plan
    capacity = plan["kv_capacity_tokens"]
    if capacity is not None and tokens and capacity < tokens:
        fixes = []
        if capacity >= 256:
            fixes.append("max_model_len: %d" % _round_len(capacity))
        want = need + tokens * plan["kv_bytes_per_token"] / 1048576.0
        needed_util = math.ceil(want / total * 100) / 100.0
        if needed_util <= 0.95 and needed_util + taken <= 1.0:
            fixes.append("gpu_memory_utilization: %.2f" % needed_util)
        fallback = _fallback_model(model, total, tokens)
        if fallback:
            fixes.append("model: %s" % fallback)
        out.append(reason(
            "kv_cache_insufficient", "fail",
            "The model's max seq len (%d) is larger than the maximum number of tokens that can be stored in KV "
            "cache (%d): %d MiB left for KV cache at %d bytes per token on %s%s"
            % (int(tokens), int(capacity), int(plan["kv_cache_mib"]), int(plan["kv_bytes_per_token"]), gpu["name"],
               " (vLLM %s counts the sleepers' %d MiB against this server's share)" % (version, plan["taken_mib"])
               if plan.get("taken_mib") else ""),
            " or ".join(fixes) or "a GPU with more memory"))
    return out, plan


def _model_rules(model):
    out = []
    missing = [k for k in ("params_b", "num_layers", "num_kv_heads", "head_dim")
               if model.get(k) is None] + (["weights_gib or params_b"] if model.get("weights_gib") is None
                                           and model.get("params_b") is None else [])
    if not model["in_catalog"]:
        out.append(reason(
            "unknown_model", "warn" if missing else "info",
            "%s is not in the collection's model catalog%s" % (
                model["name"], "; missing %s, so the VRAM/KV checks are partial" % ", ".join(missing) if missing else
                "; using the metadata given"),
            "give params_b, weights_gib, num_layers, num_kv_heads and head_dim under model" if missing else None))
    return out


def release_floor(architecture, model_min_vllm=None):
    """The oldest vLLM release that serves a model, from its architecture's row of
    ``compat_data.VLLM_ARCHITECTURES`` and the checkpoint's own ``min_vllm`` (whichever is newer).

    Returns ``{min_vllm, min_vllm_confidence, min_vllm_sources, requires}``; ``min_vllm`` None when no
    floor is known. A checkpoint's own floor counts as confirmed (the model data cites it).
    """
    row = data.VLLM_ARCHITECTURES.get(architecture or "") or {}
    floor = {"min_vllm": row.get("min_vllm"), "min_vllm_confidence": row.get("confidence"),
             "min_vllm_sources": list(row.get("sources") or []), "requires": row.get("requires")}
    if model_min_vllm and (not floor["min_vllm"] or _vcmp(model_min_vllm, floor["min_vllm"]) > 0):
        floor.update(min_vllm=model_min_vllm, min_vllm_confidence="confirmed", min_vllm_sources=["models"])
    return floor


def _release_rules(model, image):
    """The image's vLLM release against the oldest one that serves the model's architecture, and a
    package the architecture needs that vllm/vllm-openai images do not contain."""
    out = []
    version = image.get("vllm_version")
    floor = model.get("min_vllm")
    if floor and version and _vcmp(version, floor) < 0:
        confidence = model.get("min_vllm_confidence") or "reported"
        what = model["name"] + (" (architecture %s)" % model["architecture"] if model.get("architecture") else "")
        out.append(reason(
            "vllm_too_old", "fail" if confidence == "confirmed" else "warn",
            "vLLM %s (%s) predates native support for %s, added in vLLM %s (%s: %s)"
            % (version, image["reference"], what, floor, confidence, ", ".join(model.get("min_vllm_sources") or [])),
            "use %s:v%s or newer" % (image["repository"], floor)))
    if model.get("requires") and image.get("repository") in data.VLLM_REPOSITORIES:
        out.append(reason(
            "package_missing", "warn",
            "%s needs %s, which %s does not contain" % (model["name"], model["requires"], image["reference"]),
            "bake %s (pinned, with the transformers it supports) into the image instead of installing it at "
            "start" % model["requires"]))
    return out


def _normalize_sleep(model):
    """The sleep-mode keys of a model request."""
    out = {"sleep_mode": bool(model.get("sleep_mode", False))}
    level = model.get("sleep_level")
    level = 1 if level is None else level
    if isinstance(level, bool) or level not in (1, 2, "1", "2"):
        raise ValueError("model.sleep_level must be 1 (weights to host RAM) or 2 (weights dropped), got %r" % (level,))
    out["sleep_level"] = int(level)
    out["sleep_residue_mib"] = _number(model.get("sleep_residue_mib"), "model.sleep_residue_mib", positive=False)
    out["host_memory_mib"] = _number(model.get("host_memory_mib"), "model.host_memory_mib")
    overhead = model.get("host_overhead_mib")
    out["host_overhead_mib"] = _number(data.SLEEP_HOST_OVERHEAD_MIB if overhead is None else overhead,
                                       "model.host_overhead_mib", positive=False)
    return out


def sleep_facts(version):
    """What the collection knows of sleep mode in vLLM ``version`` (None: a tag that names no release):
    ``{supported, level2, residue_mib, keeps_weights, pauses_scheduler, confidence, sources}``."""
    if not version:
        row = data.VLLM_SLEEP_RESIDUE[-1]
        return {"supported": None, "level2": None, "residue_mib": row["residue_mib"], "keeps_weights": False,
                "pauses_scheduler": None, "confidence": None, "sources": []}
    row = None
    for candidate in data.VLLM_SLEEP_RESIDUE:
        if _vcmp(version, candidate["first"]) >= 0:
            row = candidate
    row = row or data.VLLM_SLEEP_RESIDUE[0]
    return {"supported": _vcmp(version, data.VLLM_SLEEP_MIN) >= 0,
            "level2": _vcmp(version, data.VLLM_SLEEP_LEVEL2_MIN) >= 0,
            "residue_mib": row["residue_mib"], "keeps_weights": row["keeps_weights"],
            "pauses_scheduler": _vcmp(version, data.VLLM_SLEEP_PAUSES_SCHEDULER) >= 0,
            "confidence": row["confidence"], "sources": list(row["sources"])}


def weights_mib(model):
    """The weights of a normalized model in MiB, all GPUs together (None when unknown)."""
    plan = memory_plan(model, 1)
    if plan["weights_mib"] is None:
        return None
    return int(round(plan["weights_mib"] * model["tensor_parallel_size"]))


def sleep_residue_mib(version, model):
    """What a server of normalized ``model`` keeps on each of its GPUs while asleep, with vLLM ``version``:
    the entry's own figure (``sleep_residue_mib``) when it gives one, else the release's residue plus, where
    the release leaves them outside the sleep-mode pool, the weights."""
    if model.get("sleep_residue_mib") is not None:
        return int(model["sleep_residue_mib"])
    facts = sleep_facts(version)
    residue = facts["residue_mib"]
    if facts["keeps_weights"]:
        total = weights_mib(model)
        residue += int(math.ceil((total or 0) / float(model["tensor_parallel_size"])))
    return int(residue)


def host_memory_needed_mib(version, model):
    """Host memory a sleeping server of ``model`` needs: at level 1 its weights (copied to pinned host RAM)
    plus the server's own; at level 2, or when the release keeps the weights on the GPU, the server's own."""
    keeps = sleep_facts(version)["keeps_weights"]
    weights = weights_mib(model) if model["sleep_level"] == 1 and not keeps else 0
    if weights is None:
        return None
    return int(weights + model["host_overhead_mib"])


def normalize_standby(standby):
    """Sleepers kept resident beside the checked workload: ``[{name, image, model, sleep_level,
    sleep_residue_mib, host_memory_mib}]`` -> ``[{name, version, model, residue_mib, host_mib}]``."""
    out = []
    if standby is None:
        return out
    if not isinstance(standby, list):
        raise ValueError("standby must be a list of mappings with name, image and model")
    for i, item in enumerate(standby):
        field = "standby[%d]" % i
        if not isinstance(item, dict) or not item.get("model") or not item.get("image"):
            raise ValueError("%s needs name, image and model (as the model option: name, sleep_level, ...)" % field)
        raw = dict(item["model"], sleep_mode=True)
        for key in ("sleep_level", "sleep_residue_mib", "host_memory_mib"):
            if item.get(key) is not None:
                raw[key] = item[key]
        try:
            model, _entry = normalize_model(raw)
        except ValueError as exc:
            raise ValueError("%s: %s" % (field, exc))
        version = image_info_from_data(item["image"]).get("vllm_version")
        out.append({"name": str(item.get("name") or model["name"]), "image": item["image"], "version": version,
                    "model": model, "residue_mib": sleep_residue_mib(version, model),
                    "host_mib": host_memory_needed_mib(version, model)})
    return out


def _sleep_rules(model, image):
    """A workload that will be put to sleep: does its release support it at its level, what does it keep,
    and does its pod's memory hold what a level-1 sleep copies to the host."""
    out = []
    if not model.get("sleep_mode"):
        return out
    version = image.get("vllm_version")
    facts = sleep_facts(version)
    level = model["sleep_level"]
    if version is None:
        out.append(reason(
            "sleep_mode_unverified", "warn",
            "%s names no vLLM release the collection knows: its sleep endpoints and what it keeps asleep are "
            "unverified (taken as %d MiB per GPU)" % (image.get("reference") or image.get("given"), facts["residue_mib"]),
            "pin a vllm/vllm-openai release tag, or set sleep_residue_mib to what the server keeps asleep"))
    elif not facts["supported"]:
        out.append(reason(
            "sleep_mode_unsupported", "fail",
            "vLLM %s predates the sleep-mode HTTP endpoints the collection drives (read from %s on)"
            % (version, data.VLLM_SLEEP_MIN), "use %s:v%s or newer" % (image["repository"], data.VLLM_SLEEP_MIN)))
        return out
    elif level == 2 and not facts["level2"]:
        out.append(reason(
            "sleep_mode_unsupported", "fail",
            "sleep level 2 drops the weights, and vLLM %s has no /collective_rpc to reload them on wake-up (from "
            "%s): the woken model would answer with garbage" % (version, data.VLLM_SLEEP_LEVEL2_MIN),
            "sleep_level: 1, or %s:v%s or newer" % (image["repository"], data.VLLM_SLEEP_LEVEL2_MIN)))
    if facts["keeps_weights"]:
        out.append(reason(
            "sleep_keeps_weights", "warn",
            "vLLM %s loads the weights outside its sleep-mode memory pool: asleep, %s keeps its weights on the "
            "GPU (%d MiB per GPU kept, weights included)" % (version, model["name"], sleep_residue_mib(version, model)),
            "use v0.13.0, or v0.17.0 or newer, where a sleep frees the weights"))
    needed = host_memory_needed_mib(version, model)
    if level == 1 and needed is not None and model.get("host_memory_mib") is not None and \
            model["host_memory_mib"] < needed:
        gib = int(math.ceil(needed / 1024.0))
        out.append(reason(
            "host_memory_insufficient", "fail",
            "a level-1 sleep copies %s's weights (%d MiB) to pinned host RAM: the pod's memory (%d MiB) must hold "
            "them plus about %d MiB for the server itself"
            % (model["name"], needed - model["host_overhead_mib"], model["host_memory_mib"], model["host_overhead_mib"]),
            "memory and memory_limit: %dGi (or more), or sleep_level: 2" % gib))
    return out


def _standby_rules(standby, node):
    """The sleepers' own needs: a release that can sleep, and host memory for what they copy there."""
    out = []
    for sleeper in standby:
        image = image_info_from_data(sleeper["image"])
        for found in _sleep_rules(sleeper["model"], image):
            found = dict(found, message="standby %s: %s" % (sleeper["name"], found["message"]))
            out.append(found)
    host = node.get("host_memory_mib")
    level1 = [s for s in standby if s["host_mib"] and s["model"]["sleep_level"] == 1]
    needed = sum(s["host_mib"] for s in level1)
    if host is not None and level1 and needed > host:
        out.append(reason(
            "host_memory_insufficient", "fail",
            "the sleepers' weights and servers need %d MiB of host memory (%s) but the node has %d MiB for pods"
            % (needed, ", ".join("%s %d" % (s["name"], s["host_mib"]) for s in level1), host),
            "sleep_level: 2 for some of them, fewer sleepers, or more memory"))
    return out


def normalize_colocated(colocated):
    out = []
    for i, item in enumerate(colocated or []):
        field = "colocated[%d]" % i
        if not isinstance(item, dict):
            raise ValueError("%s must be a mapping with name and gpu_memory_utilization or memory_mib" % field)
        util = item.get("gpu_memory_utilization")
        mib = item.get("memory_mib")
        if util is None and mib is None:
            raise ValueError("%s needs gpu_memory_utilization or memory_mib" % field)
        out.append({
            "name": str(item.get("name") or "workload %d" % i),
            "gpu_memory_utilization": _utilization(util, field + ".gpu_memory_utilization") if util is not None else None,
            "memory_mib": _number(mib, field + ".memory_mib") if mib is not None else None,
        })
    return out


def verdict_of(reasons):
    severities = set(r["severity"] for r in reasons)
    if "fail" in severities:
        return "fail"
    if "warn" in severities:
        return "warn"
    return "ok"


def check(image, node, model, colocated=None, offline=True, registry=None, image_info=None, standby=None):
    """The verdict for serving ``model`` with ``image`` on ``node`` next to ``colocated`` workloads and the
    ``standby`` sleepers kept resident on its GPU(s) (``normalize_standby``'s input).

    Returns ``{compatible, verdict, image_cuda, driver_cuda, reasons, image, model, memory, data_version}``.
    ``image_info`` (from ``resolve_image``) skips the lookup, for callers checking many models.
    """
    node_n = normalize_node(node)
    model_n, _entry = normalize_model(model)
    colocated_n = normalize_colocated(colocated)
    standby_n = normalize_standby(standby)
    if image_info is None:
        image_info, reasons = resolve_image(image, offline=offline, registry=registry)
    else:
        reasons = []
    gpus = node_n["gpus"]
    reasons += _driver_rules(image_info, node_n, gpus, model_n)
    if node_n["driver_installed"] and not gpus:
        reasons.append(reason("gpu_count_insufficient", "fail",
                              "the node reports no NVIDIA GPU%s" % (": %s" % node_n["reason"] if node_n.get("reason") else ""),
                              "check that the GPU is seated and visible (lspci), and that nouveau is not loaded"))
    tp_gpus = gpus[:model_n["tensor_parallel_size"]]
    reasons += _capability_rules(image_info, tp_gpus)
    reasons += _dtype_rules(model_n, tp_gpus)
    reasons += _quantization_rules(model_n, tp_gpus)
    memory_reasons, plan = _memory_rules(model_n, gpus, len(gpus), colocated_n, standby_n, image_info) \
        if gpus else ([], None)
    reasons += memory_reasons
    reasons += _sleep_rules(model_n, image_info)
    reasons += _standby_rules(standby_n, node_n)
    reasons += _model_rules(model_n)
    reasons += _release_rules(model_n, image_info)
    verdict = verdict_of(reasons)
    return {
        "compatible": verdict != "fail",
        "verdict": verdict,
        "image_cuda": image_info.get("cuda"),
        "driver_cuda": node_n["cuda_driver_version"],
        "reasons": reasons,
        "image": image_info,
        "model": model_n,
        "memory": plan,
        "standby": [{"name": x["name"], "residue_mib": x["residue_mib"], "host_mib": x["host_mib"]} for x in standby_n],
        "data_version": data.DATA_VERSION,
    }
