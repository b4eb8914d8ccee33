# -*- coding: utf-8 -*-
# Copyright: baremetal.gpu maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""NVIDIA GPU facts of a node, from NVML (nvidia-ml-py) or from ``nvidia-smi -q -x``.

Both paths return the same plain dict (``gather`` documents it). NVML is used when ``pynvml``
imports and ``libnvidia-ml.so.1`` loads; otherwise ``nvidia-smi -q -x`` is parsed, with the compute
capability from ``nvidia-smi --query-gpu=index,compute_cap`` (the XML report does not carry it) or,
on drivers too old for that field, from the GPU table in ``compat_data``.

A node without a GPU or without a driver gives ``driver_installed: false`` (or ``gpu_count: 0``)
and a ``reason``; nothing here raises for that. Standard library only, plus pynvml when present.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET

from ansible_collections.baremetal.gpu.plugins.module_utils import compat_data as data
from ansible_collections.baremetal.gpu.plugins.module_utils.driver import parse_proc_version

try:
    import pynvml
    HAS_PYNVML = True
    PYNVML_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - depends on the host
    pynvml = None
    HAS_PYNVML = False
    PYNVML_IMPORT_ERROR = str(exc)

MIB = 1024 * 1024
BACKENDS = ("auto", "nvml", "nvidia_smi")
NVIDIA_SMI_TIMEOUT = 30

# Fields that must agree exactly between the two backends, and those that move while a GPU works.
STABLE_NODE_FIELDS = ("driver_installed", "driver_version", "cuda_driver_version", "gpu_count",
                      "persistence_mode")
STABLE_GPU_FIELDS = ("index", "name", "uuid", "pci_bus_id", "compute_capability", "mig_mode", "persistence_mode",
                     "product_brand", "brand", "product_class", "architecture", "forward_compat_capable")
# Memory the two backends round differently: NVML reports bytes (floored to MiB here), nvidia-smi prints
# MiB it rounded itself (an H200's 644,939,776 reserved bytes: 615 MiB by NVML, 616 by nvidia-smi -q -x).
ROUNDED_GPU_FIELDS = ("memory_total_mib", "memory_reserved_mib")
ROUNDING_TOLERANCE_MIB = 1
VOLATILE_GPU_FIELDS = ("memory_used_mib", "memory_free_mib")


# --- names, brands, classes ------------------------------------------------------------------------

def normalize_gpu_name(name):
    """``"NVIDIA GeForce RTX 3060"`` -> ``"rtx 3060"``: lower case, vendor words and punctuation gone."""
    text = str(name or "").lower()
    text = re.sub(r"[^a-z0-9]+", " ", text)
    words = [w for w in text.split() if w not in ("nvidia", "geforce", "tesla", "quadro")]
    return " ".join(words)


def lookup_gpu(name):
    """The ``compat_data.GPUS`` entry for a GPU name, or None."""
    key = normalize_gpu_name(name)
    if not key:
        return None
    for entry in data.GPUS:
        if re.search(entry["match"], key):
            return entry
    return None


def brand_key(product_brand):
    """nvidia-smi's ``product_brand`` (``"GeForce"``, ``"NVIDIA RTX"``) -> libnvidia-container's
    brand name (``"geforce"``, ``"nvidiartx"``); None when empty."""
    if product_brand is None:
        return None
    text = str(product_brand).strip()
    if not text or text.upper() == "N/A":
        return None
    for key, entry in data.BRANDS.items():
        if entry["display"].lower() == text.lower():
            return key
    return re.sub(r"[^a-z0-9]", "", text.lower()) or None


def product_class(brand, name):
    """``consumer``, ``datacenter``, ``workstation`` or ``unknown``: from the brand, else the GPU table."""
    if brand and brand in data.BRANDS and data.BRANDS[brand]["class"] != "unknown":
        return data.BRANDS[brand]["class"]
    entry = lookup_gpu(name)
    if entry:
        return entry["class"]
    return "unknown"


def _finish_gpu(gpu):
    """Derive brand, class, forward compatibility and a missing compute capability."""
    gpu["brand"] = brand_key(gpu.get("product_brand"))
    gpu["product_class"] = product_class(gpu["brand"], gpu.get("name"))
    gpu["forward_compat_capable"] = gpu["product_class"] in data.FORWARD_COMPAT_CLASSES
    if not gpu.get("compute_capability"):
        entry = lookup_gpu(gpu.get("name"))
        gpu["compute_capability"] = entry["compute_capability"] if entry else None
    return gpu


def _node(backend, driver_version, cuda_driver_version, gpus, reason=None, installed=True):
    modes = [g.get("persistence_mode") for g in gpus]
    if not modes or any(m is None for m in modes):
        persistence = None
    else:
        persistence = all(modes)
    return {
        "driver_installed": bool(installed),
        "reason": reason,
        "backend": backend,
        "driver_version": driver_version,
        "cuda_driver_version": cuda_driver_version,
        "persistence_mode": persistence,
        "gpu_count": len(gpus),
        "gpus": gpus,
    }


def empty_facts(reason, backend=None, installed=False, driver_version=None, cuda_driver_version=None):
    """Facts of a node without usable GPUs: ``gpu_count: 0`` and why."""
    return _node(backend, driver_version, cuda_driver_version, [], reason=reason, installed=installed)


# --- nvidia-smi -q -x -------------------------------------------------------------------------------

def _text(elem, path):
    if elem is None:
        return None
    found = elem.find(path)
    if found is None or found.text is None:
        return None
    value = found.text.strip()
    if not value or value in ("N/A", "[N/A]", "Not Supported", "[Not Supported]", "Unknown Error"):
        return None
    return value


def _mib(value):
    """``"81559 MiB"`` -> 81559; None for N/A."""
    if value is None:
        return None
    match = re.match(r"^\s*(\d+)\s*MiB\s*$", value)
    return int(match.group(1)) if match else None


def _enabled(value):
    if value is None:
        return None
    return value.strip().lower() == "enabled"


def _mig(value):
    if value is None:
        return None
    return value.strip().lower()


def cuda_version_from_int(value):
    """NVML's ``13000`` -> ``"13.0"``, ``12080`` -> ``"12.8"``."""
    if value is None:
        return None
    value = int(value)
    return "%d.%d" % (value // 1000, (value % 1000) // 10)


def parse_compute_cap_csv(text):
    """``nvidia-smi --query-gpu=index,compute_cap --format=csv,noheader`` -> ``{0: "8.6"}``."""
    caps = {}
    for line in (text or "").splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) >= 2 and parts[0].isdigit() and re.match(r"^\d+\.\d+$", parts[1]):
            caps[int(parts[0])] = parts[1]
    return caps


def parse_nvidia_smi_xml(text, compute_caps=None):
    """Parse ``nvidia-smi -q -x`` output into the facts dict (backend ``nvidia_smi``).

    ``compute_caps`` maps GPU index to ``"X.Y"`` (see ``parse_compute_cap_csv``). Raises ValueError
    when the text is not an nvidia-smi XML report.
    """
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise ValueError("nvidia-smi -q -x output is not XML: %s" % exc)
    if root.tag != "nvidia_smi_log":
        raise ValueError("nvidia-smi -q -x output has root <%s>, expected <nvidia_smi_log>" % root.tag)
    compute_caps = compute_caps or {}
    gpus = []
    for index, elem in enumerate(root.findall("gpu")):
        minor = _text(elem, "minor_number")
        processes = []
        for proc in elem.findall("processes/process_info"):
            pid = _text(proc, "pid")
            processes.append({
                "pid": int(pid) if pid and pid.isdigit() else None,
                "type": _text(proc, "type"),
                "name": _text(proc, "process_name"),
                "used_memory_mib": _mib(_text(proc, "used_memory")),
            })
        gpu = {
            "index": index,
            "minor_number": int(minor) if minor and minor.isdigit() else None,
            "name": _text(elem, "product_name"),
            "uuid": _text(elem, "uuid"),
            "pci_bus_id": (_text(elem, "pci/pci_bus_id") or elem.get("id") or "").upper() or None,
            "compute_capability": compute_caps.get(index),
            "memory_total_mib": _mib(_text(elem, "fb_memory_usage/total")),
            "memory_reserved_mib": _mib(_text(elem, "fb_memory_usage/reserved")),
            "memory_used_mib": _mib(_text(elem, "fb_memory_usage/used")),
            "memory_free_mib": _mib(_text(elem, "fb_memory_usage/free")),
            "mig_mode": _mig(_text(elem, "mig_mode/current_mig")),
            "persistence_mode": _enabled(_text(elem, "persistence_mode")),
            "product_brand": _text(elem, "product_brand"),
            "architecture": _text(elem, "product_architecture"),
            "processes": processes,
        }
        gpus.append(_finish_gpu(gpu))
    return _node("nvidia_smi", _text(root, "driver_version"), _text(root, "cuda_version"), gpus)


# --- /proc: kernel modules ---------------------------------------------------------------------------

def parse_proc_modules(text):
    """Names of the loaded kernel modules in ``/proc/modules``."""
    return set(line.split()[0] for line in (text or "").splitlines() if line.strip())


def _read(path):
    try:
        with open(path) as handle:
            return handle.read()
    except (IOError, OSError):
        return None


def kernel_module_facts(proc_root="/proc"):
    """Whether the nvidia kernel module (and nouveau) is loaded, its version, flavour and architecture.

    ``proc_root`` is ``/proc`` on a node; tests and chroots point it at a directory laid out the same way.
    """
    modules = parse_proc_modules(_read(os.path.join(proc_root, "modules")) or "")
    version_text = _read(os.path.join(proc_root, "driver", "nvidia", "version"))
    info = parse_proc_version(version_text) or {}
    return {
        "loaded": "nvidia" in modules or bool(info),
        "version": info.get("version"),
        "flavor": info.get("kernel_module_type"),
        "architecture": info.get("architecture"),
        "nouveau_loaded": "nouveau" in modules,
        "modules": sorted(m for m in modules if m.startswith("nvidia") or m == "nouveau"),
    }


# --- runners ---------------------------------------------------------------------------------------

def subprocess_runner(argv):
    """Run a command, return ``(rc, stdout, stderr)``; rc 127 when the program is missing.

    The module passes AnsibleModule.run_command instead; this runner serves callers outside Ansible
    (tests/device/run_gpu_checks.sh, benchmarks), which import these functions directly.
    """
    try:
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,  # pylint: disable=ansible-bad-function
                              timeout=NVIDIA_SMI_TIMEOUT, check=False)
    except (OSError, ValueError) as exc:
        return 127, "", str(exc)
    except subprocess.TimeoutExpired:
        return 124, "", "%s timed out after %d s" % (argv[0], NVIDIA_SMI_TIMEOUT)
    return (proc.returncode, proc.stdout.decode("utf-8", "replace"),
            proc.stderr.decode("utf-8", "replace"))


def gather_nvidia_smi(run=None, nvidia_smi=None):
    """Facts from ``nvidia-smi -q -x``; ``run(argv) -> (rc, out, err)``."""
    run = run or subprocess_runner
    binary = nvidia_smi or shutil.which("nvidia-smi")
    if not binary:
        return empty_facts("nvidia-smi not found on PATH: no NVIDIA driver installed", backend="nvidia_smi")
    rc, out, err = run([binary, "-q", "-x"])
    message = (err or "").strip() or (out or "").strip()
    if rc != 0:
        if "No devices were found" in message:
            return empty_facts("nvidia-smi: No devices were found", backend="nvidia_smi", installed=True)
        return empty_facts("nvidia-smi failed (rc %s): %s" % (rc, message.splitlines()[0] if message else ""),
                           backend="nvidia_smi")
    rc_cap, out_cap, _err_cap = run([binary, "--query-gpu=index,compute_cap", "--format=csv,noheader"])
    caps = parse_compute_cap_csv(out_cap) if rc_cap == 0 else {}
    facts = parse_nvidia_smi_xml(out, caps)
    if not facts["gpus"]:
        facts["reason"] = "nvidia-smi reports no GPU"
    return facts


# --- NVML ------------------------------------------------------------------------------------------

def _str(value):
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def _nvml_try(call, *args):
    try:
        return call(*args)
    except Exception as exc:  # pylint: disable=broad-except  # NVMLError_* for unsupported queries
        if pynvml is not None and isinstance(exc, pynvml.NVMLError):
            return None
        raise


def _nvml_processes(nvml, handle):
    procs = {}
    for kind, getter in (("C", "nvmlDeviceGetComputeRunningProcesses"),
                         ("G", "nvmlDeviceGetGraphicsRunningProcesses")):
        for proc in _nvml_try(getattr(nvml, getter), handle) or []:
            entry = procs.get(proc.pid)
            used = getattr(proc, "usedGpuMemory", None)
            if entry is None:
                name = _nvml_try(nvml.nvmlSystemGetProcessName, proc.pid)
                procs[proc.pid] = {
                    "pid": int(proc.pid),
                    "type": kind,
                    "name": _str(name) or None,
                    "used_memory_mib": int(used) // MIB if used is not None else None,
                }
            elif kind not in entry["type"]:
                entry["type"] = entry["type"] + "+" + kind
    return [procs[pid] for pid in sorted(procs)]


def _nvml_memory(nvml, handle):
    version = getattr(nvml, "nvmlMemory_v2", None)
    if version is not None:
        mem = _nvml_try(nvml.nvmlDeviceGetMemoryInfo, handle, version)
        if mem is not None:
            return (int(mem.total) // MIB, int(mem.reserved) // MIB, int(mem.used) // MIB,
                    int(mem.free) // MIB)
    mem = nvml.nvmlDeviceGetMemoryInfo(handle)
    # v1 (older drivers): "used" includes what the driver reserves; reserved is unknown.
    return int(mem.total) // MIB, None, int(mem.used) // MIB, int(mem.free) // MIB


def gather_nvml(nvml=None):
    """Facts through NVML. ``nvml`` is the ``pynvml`` module. Raises ``nvml.NVMLError`` when the
    library cannot be initialised (``gather`` turns that into a reason)."""
    nvml = nvml or pynvml
    nvml.nvmlInit()
    try:
        driver = _str(nvml.nvmlSystemGetDriverVersion())
        cuda = _nvml_try(nvml.nvmlSystemGetCudaDriverVersion_v2)
        count = nvml.nvmlDeviceGetCount()
        gpus = []
        for index in range(count):
            handle = nvml.nvmlDeviceGetHandleByIndex(index)
            total, reserved, used, free = _nvml_memory(nvml, handle)
            cc = _nvml_try(nvml.nvmlDeviceGetCudaComputeCapability, handle)
            pci = _nvml_try(nvml.nvmlDeviceGetPciInfo, handle)
            mig = _nvml_try(nvml.nvmlDeviceGetMigMode, handle)
            persistence = _nvml_try(nvml.nvmlDeviceGetPersistenceMode, handle)
            brand = _nvml_try(nvml.nvmlDeviceGetBrand, handle)
            arch = _nvml_try(nvml.nvmlDeviceGetArchitecture, handle)
            minor = _nvml_try(nvml.nvmlDeviceGetMinorNumber, handle)
            brand_name = data.NVML_BRAND_NAMES.get(brand) if brand is not None else None
            gpu = {
                "index": index,
                "minor_number": minor,
                "name": _str(nvml.nvmlDeviceGetName(handle)),
                "uuid": _str(nvml.nvmlDeviceGetUUID(handle)),
                "pci_bus_id": _str(pci.busId).upper() if pci is not None else None,
                "compute_capability": "%d.%d" % tuple(cc) if cc else None,
                "memory_total_mib": total,
                "memory_reserved_mib": reserved,
                "memory_used_mib": used,
                "memory_free_mib": free,
                "mig_mode": ("enabled" if mig[0] else "disabled") if mig else None,
                "persistence_mode": bool(persistence) if persistence is not None else None,
                "product_brand": data.BRANDS[brand_name]["display"] if brand_name in data.BRANDS else None,
                "architecture": data.NVML_ARCHITECTURE_NAMES.get(arch) if arch is not None else None,
                "processes": _nvml_processes(nvml, handle),
            }
            gpus.append(_finish_gpu(gpu))
    finally:
        try:
            nvml.nvmlShutdown()
        except Exception:  # pylint: disable=broad-except
            pass
    facts = _node("nvml", driver, cuda_version_from_int(cuda), gpus)
    if not gpus:
        facts["reason"] = "NVML reports no GPU"
    return facts


def _nvml_failure(exc):
    """Why NVML could not start, and whether that means 'no driver' (fall back to nvidia-smi)."""
    text = str(exc)
    name = type(exc).__name__
    if "LibraryNotFound" in name or "Library Not Found" in text:
        return "libnvidia-ml.so.1 not found: no NVIDIA driver installed", True
    if "DriverNotLoaded" in name or "Driver Not Loaded" in text:
        return "NVIDIA driver installed but its kernel module is not loaded (NVML: %s)" % text, True
    return "NVML failed: %s" % text, True


# --- entry point -------------------------------------------------------------------------------------

def gather(backend="auto", run=None, nvml=None, nvidia_smi=None, proc_root="/proc"):
    """Gather GPU facts.

    ``backend``: ``auto`` (NVML when pynvml imports and the library loads, else nvidia-smi),
    ``nvml`` or ``nvidia_smi``. Returns::

        {driver_installed, reason, backend, driver_version, cuda_driver_version, persistence_mode,
         gpu_count, gpus: [{index, minor_number, name, uuid, pci_bus_id, compute_capability,
                            memory_total_mib, memory_reserved_mib, memory_used_mib, memory_free_mib,
                            mig_mode, persistence_mode, product_brand, brand, product_class,
                            architecture, forward_compat_capable, processes: [...]}],
         kernel_module: {loaded, version, flavor, nouveau_loaded, modules},
         attempts: [reasons of backends tried before the one that answered]}
    """
    if backend not in BACKENDS:
        raise ValueError("backend must be one of %s, got %r" % (", ".join(BACKENDS), backend))
    attempts = []
    facts = None
    if backend in ("auto", "nvml"):
        module = nvml or pynvml
        if module is None:
            attempts.append("pynvml (nvidia-ml-py) not importable: %s" % PYNVML_IMPORT_ERROR)
        else:
            try:
                facts = gather_nvml(module)
            except Exception as exc:  # pylint: disable=broad-except
                if not isinstance(exc, getattr(module, "NVMLError", ())):
                    raise
                attempts.append(_nvml_failure(exc)[0])
        if facts is None and backend == "nvml":
            facts = empty_facts(attempts[-1], backend="nvml")
    if facts is None:
        facts = gather_nvidia_smi(run=run, nvidia_smi=nvidia_smi)
        if not facts["driver_installed"] and attempts:
            facts["reason"] = "; ".join(attempts + [facts["reason"]])
    facts["kernel_module"] = kernel_module_facts(proc_root)
    facts["attempts"] = attempts
    if facts["driver_installed"] and facts["kernel_module"]["nouveau_loaded"] and not facts["gpus"]:
        facts["reason"] = (facts["reason"] or "") + " (nouveau is loaded: it blocks the NVIDIA driver)"
    return facts


def compare_facts(left, right, volatile_tolerance_mib=None):
    """Differences between two facts dicts (e.g. NVML and nvidia-smi): a list of
    ``{"field": "gpus[0].uuid", "left": ..., "right": ...}``; empty when they agree.

    Volatile memory figures are compared only when ``volatile_tolerance_mib`` is given, within it.
    """
    diffs = []

    def add(field, a, b):
        diffs.append({"field": field, "left": a, "right": b})

    for field in STABLE_NODE_FIELDS:
        if left.get(field) != right.get(field):
            add(field, left.get(field), right.get(field))
    for i, (a, b) in enumerate(zip(left.get("gpus", []), right.get("gpus", []))):
        for field in STABLE_GPU_FIELDS:
            if a.get(field) != b.get(field):
                add("gpus[%d].%s" % (i, field), a.get(field), b.get(field))
        for field in ROUNDED_GPU_FIELDS:
            va, vb = a.get(field), b.get(field)
            if (va is None) != (vb is None) or (va is not None and abs(va - vb) > ROUNDING_TOLERANCE_MIB):
                add("gpus[%d].%s" % (i, field), va, vb)
        if volatile_tolerance_mib is not None:
            for field in VOLATILE_GPU_FIELDS:
                va, vb = a.get(field), b.get(field)
                if va is None or vb is None or abs(va - vb) > volatile_tolerance_mib:
                    add("gpus[%d].%s" % (i, field), va, vb)
            pa = sorted(p["pid"] for p in a.get("processes", []))
            pb = sorted(p["pid"] for p in b.get("processes", []))
            if pa != pb:
                add("gpus[%d].processes" % i, pa, pb)
    return diffs
