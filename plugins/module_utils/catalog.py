# -*- coding: utf-8 -*-
# Copyright: baremetal.gpu maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The model catalog of the ``vllm`` role: validation and expansion into a deployment plan.

Plain functions over plain data. The role's variables (``vllm_catalog`` plus the ``vllm_*`` knobs of
``roles/vllm/defaults/main.yml``, the one place their defaults live) go in; a *plan* comes out: one
workload per catalog entry with every value the manifests need (names, labels, container args, probe
objects, replicas of the active GPU mode), plus the objects several workloads share (Services, PVCs).
The role's Jinja2 templates (``roles/vllm/templates/``), rendered by Ansible, turn the plan into
manifests; they hold the shape, this file the values.

* ``settings_from_vars(role_vars)``: the ``vllm_*`` variables as settings (prefix dropped).
* ``spec_errors(catalog, entry_spec)``: the argument-spec check Ansible runs on the role's entry
  point, for callers outside Ansible (tests); a typo in a key names the key.
* ``problems(catalog, settings)``: what an argument spec cannot say (unique DNS names, shared
  Services never active together, fallbacks that exist, flags given twice, dtypes vLLM knows, ...).
* ``plan(catalog, settings)``: the expansion; raises ``CatalogError`` listing every problem.
* ``compat_model(entry)``: the ``model`` option of ``baremetal.gpu.vllm_compat`` for an entry.

A GPU *mode* of a GPU node is the set of catalog entries that own its GPUs while it is active. Modes
are defined per node in the inventory (``gpu_modes``; the role passes ``vllm_gpu_nodes``); an entry
named by a node's modes is *mode-bound*: pinned to that node, rendered without ``replicas`` (the
GPU mode switcher owns them, see ``module_utils/gpu_mode``), and described in the node's ConfigMap
``gpu-mode-<node>``. Entries no mode names always run with their ``replicas``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import math
import re

from ansible_collections.baremetal.gpu.plugins.module_utils import compat
from ansible_collections.baremetal.gpu.plugins.module_utils import compat_data
from ansible_collections.baremetal.gpu.plugins.module_utils.gpu_mode import modes as gpu_modes
from ansible_collections.baremetal.gpu.plugins.module_utils.gpu_mode import state as gpu_state

MANAGED_BY = "baremetal-gpu"
LABEL_NAME = "app.kubernetes.io/name"
LABEL_INSTANCE = "app.kubernetes.io/instance"
LABEL_PART_OF = "app.kubernetes.io/part-of"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
LABEL_COMPONENT = "app.kubernetes.io/component"
LABEL_SERVICE = "baremetal.gpu/service"
ANNOTATION_PREFIX = "baremetal.gpu/"
HOSTNAME_TOPOLOGY = "kubernetes.io/hostname"

SERVERS = ("vllm", "custom")
HEALTH_KINDS = ("vllm", "json")
CACHE_TYPES = ("hostPath", "pvc", "none")
ACCESS_MODES = ("ReadWriteOnce", "ReadWriteMany", "ReadWriteOncePod", "ReadOnlyMany")
# --dtype values vLLM accepts: the compatibility check's dtypes and their aliases (one definition, in compat).
DTYPE_CHOICES = compat.DTYPE_CHOICES

# vLLM flags the catalog generates from structured keys: giving them in ``args`` as well is an error
# (the compatibility check and the health wait read the keys, so the keys must be the source).
FLAG_KEYS = {
    "--model": "model",
    "--served-model-name": "served_model_names",
    "--port": "port",
    "--dtype": "dtype",
    "--quantization": "quantization",
    "-q": "quantization",
    "--gpu-memory-utilization": "gpu_memory_utilization",
    "--max-model-len": "max_model_len",
    "--tensor-parallel-size": "tensor_parallel_size",
    "-tp": "tensor_parallel_size",
    "--enforce-eager": "enforce_eager",
    "--trust-remote-code": "trust_remote_code",
    "--max-num-seqs": "max_num_seqs",
    "--kv-cache-dtype": "kv_cache_dtype",
    "--tokenizer": "tokenizer",
    "--override-generation-config": "generation_config",
    "--enable-sleep-mode": "sleep_mode",
}

# A sleep-mode server: vLLM's development endpoints are on, so vLLM listens on its own port (the engine
# port, which no Service targets) and the API gate (files/api_gate.py), a second container, serves the
# client port with the OpenAI-compatible routes only.
GATE_CONTAINER = "api-gate"
GATE_MOUNT = "/opt/baremetal-gpu-gate"
GATE_SCRIPT = "api_gate.py"
ENGINE_PORT_NAME = "engine"
DEV_MODE_ENV = "VLLM_SERVER_DEV_MODE"

# Structured keys that become ``--flag value`` in this order (after --model, names, host and port).
VALUE_FLAGS = (("tokenizer", "--tokenizer"), ("dtype", "--dtype"), ("quantization", "--quantization"),
               ("gpu_memory_utilization", "--gpu-memory-utilization"), ("max_model_len", "--max-model-len"),
               ("tensor_parallel_size", "--tensor-parallel-size"), ("max_num_seqs", "--max-num-seqs"),
               ("kv_cache_dtype", "--kv-cache-dtype"))

# Readiness of a JSON health endpoint, run inside the container by the kubelet's exec probe with the
# image's own Python: GET the URL, walk the dotted field, compare with the JSON value; exit 0 when equal.
# Anything else (connection refused, HTTP error, field missing, other value) exits non-zero.
JSON_PROBE_SCRIPT = (
    "import http.client,json,sys\n"
    "from urllib.parse import urlsplit\n"
    "url,field,want,timeout=sys.argv[1],sys.argv[2],json.loads(sys.argv[3]),float(sys.argv[4])\n"
    "u=urlsplit(url)\n"
    "c=http.client.HTTPConnection(u.hostname,u.port or 80,timeout=timeout)\n"
    "c.request('GET',u.path or '/')\n"
    "doc=json.loads(c.getresponse().read())\n"
    "for key in field.split('.'):\n"
    "    doc=doc[key]\n"
    "sys.exit(0 if doc==want else 1)\n"
)

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
_QUANTITY_BYTES = {"": 1, "m": 0.001, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
                   "Ki": 1024, "Mi": 1024 ** 2, "Gi": 1024 ** 3, "Ti": 1024 ** 4, "Pi": 1024 ** 5, "Ei": 1024 ** 6}


class CatalogError(ValueError):
    """The catalog cannot be deployed; ``problems`` lists every reason, each naming entry and key."""

    def __init__(self, problems_found):
        self.problems = list(problems_found)
        super(CatalogError, self).__init__("invalid vllm_catalog:\n- " + "\n- ".join(self.problems))


class _Settings(dict):
    """The role's knobs; a knob the caller did not pass is named in the error (no silent default)."""

    def __missing__(self, key):
        raise CatalogError(["role variable vllm_%s is not defined (roles/vllm/defaults/main.yml defines every "
                            "knob; pass the role's variables)" % key])


# --- inputs ---------------------------------------------------------------------------------------

def settings_from_vars(role_vars):
    """``vllm_*`` role variables -> settings (prefix dropped); other variables are ignored."""
    return dict((key[5:], value) for key, value in (role_vars or {}).items() if key.startswith("vllm_"))


def spec_errors(catalog, entry_spec):
    """Validate ``catalog`` (a list of entries) against the role's argument spec for one entry.

    ``entry_spec`` is the ``options`` mapping of ``vllm_catalog`` in ``roles/vllm/meta/argument_specs.yml``.
    Returns the error messages Ansible's role argument validation would give (a mistyped key is named).
    """
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

    spec = {"vllm_catalog": {"type": "list", "elements": "dict", "options": entry_spec}}
    result = ArgumentSpecValidator(spec).validate({"vllm_catalog": catalog})
    return [str(err) for err in result.errors.messages] if result.errors else []


def _entry_get(entry, key, settings, setting=None):
    """The entry's value for ``key`` when set (not None), else the setting's."""
    value = entry.get(key)
    if value is None:
        return settings[setting or key]
    return value


def _bindings(catalog, settings):
    """``(bound, books, groups, problems)`` of the GPU nodes' modes (``gpu_mode.modes.bind``)."""
    names = set(e.get("name") for e in catalog if isinstance(e, dict))
    disabled = set(e.get("name") for e in catalog if isinstance(e, dict) and e.get("enabled", True) is False)
    return gpu_modes.bind(names, settings["gpu_nodes"] or [], settings["name_prefix"], settings["namespace"],
                          disabled)


def _together(a, b, bound, groups):
    """Whether entries ``a`` and ``b`` (catalog entries) can run at the same time: an entry no mode names
    runs unless its replicas are 0; mode-bound ones run together when bound to different nodes, or when
    some mode of their node runs both."""
    def idle(entry):
        return entry["name"] not in bound and entry.get("replicas") == 0

    if idle(a) or idle(b):
        return False
    a, b = a["name"], b["name"]
    if bound.get(a) is None or bound.get(b) is None or bound[a]["name"] != bound[b]["name"]:
        return True
    return any(a in group and b in group for group in groups)


def quantity_mib(value):
    """A Kubernetes memory quantity (``16Gi``, ``17179869184``, ``16G``) in MiB; None for none or ``""``."""
    if value in (None, ""):
        return None
    match = _QUANTITY.match(str(value))
    if not match:
        raise ValueError("%r is not a Kubernetes quantity" % (value,))
    number = str(value)[:len(str(value)) - len(match.group(2) or "")]
    return float(number) * _QUANTITY_BYTES[match.group(2) or ""] / 1024.0 ** 2


def _sleeps(entry):
    return bool(entry.get("sleep_mode"))


def _pod_memory_mib(entry, settings):
    """What the pod may use on the host: its memory limit, else its request (MiB)."""
    limit = quantity_mib(_entry_get(entry, "memory_limit", settings))
    request = quantity_mib(_entry_get(entry, "memory", settings))
    return limit if limit is not None else request


def _service_of(entry, settings):
    svc = entry.get("service") or {}
    name = svc.get("name") or (settings["name_prefix"] + entry["name"])
    selector = svc.get("selector")
    return {
        "name": name,
        "port": int(svc.get("port") or _entry_get(entry, "port", settings)),
        "type": svc.get("type") or settings["service_type"],
        "selector": dict((str(k), str(v)) for k, v in selector.items()) if selector else
        {LABEL_NAME: settings["app_name"], LABEL_SERVICE: name},
    }


def _ingress_of(entry, settings):
    ing = entry.get("ingress") or {}
    enabled = ing.get("enabled")
    if enabled is None:
        enabled = bool(settings["ingress_enabled"]) or bool(ing.get("host"))
    if not enabled:
        return None
    annotations = dict(settings["ingress_annotations"] or {})
    annotations.update(ing.get("annotations") or {})
    return {
        "host": ing.get("host") or "",
        "path": ing.get("path") or "/",
        "class": ing.get("class") if ing.get("class") is not None else settings["ingress_class"],
        "annotations": dict((str(k), str(v)) for k, v in annotations.items()),
        "tls_secret": ing.get("tls_secret") or "",
    }


def _cache_of(entry, settings):
    cache = entry.get("cache") or {}
    kind = cache.get("type") or settings["cache_type"]
    out = {"type": kind, "mount_path": cache.get("mount_path") or settings["cache_mount_path"]}
    if kind == "hostPath":
        out["path"] = cache.get("path") or settings["cache_path"]
    elif kind == "pvc":
        out["claim"] = cache.get("claim") or settings["cache_claim"]
        out["access_mode"] = cache.get("access_mode") or settings["cache_access_mode"]
        out["size"] = cache.get("size") or settings["cache_size"]
        storage_class = cache.get("storage_class")
        out["storage_class"] = storage_class if storage_class is not None else settings["cache_storage_class"]
        out["create"] = cache.get("create", True) is not False
    return out


def _health_of(entry, settings):
    health = entry.get("health") or {}
    return {
        "kind": health.get("kind") or settings["health_kind"],
        "path": health.get("path") or settings["health_path"],
        "field": health.get("field") or "",
        "value": health.get("value", True),
        "exec": health.get("exec") or "",
        "models": health.get("models") if health.get("models") is not None else bool(served_model_names(entry)),
    }


# --- what an argument spec cannot say --------------------------------------------------------------

def _entry_problems(entry, where, settings):
    out = []
    server = entry.get("server") or "vllm"
    if server not in SERVERS:
        out.append("%s: server must be one of %s" % (where, ", ".join(SERVERS)))
    if server == "vllm":
        for arg in entry.get("args") or []:
            flag = str(arg).split("=", 1)[0]
            if flag in FLAG_KEYS:
                out.append("%s: args must not contain %s: set the key %s instead (each flag has one source, "
                           "the key, which the compatibility check and the health wait read)"
                           % (where, flag, FLAG_KEYS[flag]))
    dtype = entry.get("dtype")
    if dtype is not None and str(dtype).lower() not in DTYPE_CHOICES:
        out.append("%s: dtype %r is not one vLLM knows (%s)" % (where, dtype, ", ".join(DTYPE_CHOICES)))
    kv_dtype = entry.get("kv_cache_dtype")
    if kv_dtype is not None and str(kv_dtype).lower() not in compat.KV_CACHE_DTYPES:
        out.append("%s: kv_cache_dtype %r is not one vLLM knows (%s)" % (where, kv_dtype, ", ".join(compat.KV_CACHE_DTYPES)))
    gmu = entry.get("gpu_memory_utilization")
    if gmu is not None and not 0 < float(gmu) <= 1:
        out.append("%s: gpu_memory_utilization must be in (0, 1], got %s" % (where, gmu))
    tp = entry.get("tensor_parallel_size")
    gpus = _entry_get(entry, "gpus", settings)
    if tp is not None and int(tp) > int(gpus):
        out.append("%s: tensor_parallel_size %s needs at least that many gpus (gpus is %s)" % (where, tp, gpus))
    for key in ("cpu", "memory", "cpu_limit", "memory_limit", "shm_size"):
        value = entry.get(key)
        if value not in (None, "") and not _QUANTITY.match(str(value)):
            out.append("%s: %s %r is not a Kubernetes quantity (e.g. 2, 500m, 16Gi)" % (where, key, value))
    health = _health_of(entry, settings)
    if health["kind"] not in HEALTH_KINDS:
        out.append("%s: health.kind must be one of %s" % (where, ", ".join(HEALTH_KINDS)))
    if health["kind"] == "json" and not health["field"]:
        out.append("%s: health kind json needs health.field (the JSON field that says ready)" % where)
    if health["exec"] and health["kind"] != "json":
        out.append("%s: health.exec reads a JSON field in the probes: it needs health kind json" % where)
    liveness = entry.get("liveness") or {}
    for key in ("period_seconds", "failure_threshold", "timeout_seconds"):
        if liveness.get(key) is not None and int(liveness[key]) < 1:
            out.append("%s: liveness.%s must be at least 1, got %s" % (where, key, liveness[key]))
    cache = _cache_of(entry, settings)
    if cache["type"] not in CACHE_TYPES:
        out.append("%s: cache.type must be one of %s" % (where, ", ".join(CACHE_TYPES)))
    if cache["type"] == "pvc" and cache["access_mode"] not in ACCESS_MODES:
        out.append("%s: cache.access_mode must be one of %s" % (where, ", ".join(ACCESS_MODES)))
    download = _entry_get(entry, "download", settings)
    if download and cache["type"] == "none":
        out.append("%s: download needs a cache (cache.type hostPath or pvc) to download into" % where)
    model = str(entry.get("model") or "")
    if download and model.startswith("/") and not entry.get("model_id"):
        out.append("%s: download of the local path %s needs model_id (the Hugging Face id to fetch)" % (where, model))
    labels = dict(entry.get("labels") or {})
    labels.update((entry.get("service") or {}).get("selector") or {})
    for index, term in enumerate(entry.get("pod_affinity") or []):
        if not term.get("match_labels"):
            out.append("%s: pod_affinity[%d] needs match_labels (the pods to be placed with)" % (where, index))
        labels.update(term.get("match_labels") or {})
    for key, value in sorted(labels.items()):
        if not _LABEL_VALUE.match(str(value)) or len(str(value)) > 63:
            out.append("%s: label %s value %r is not a valid label value" % (where, key, value))
    container = entry.get("container_name")
    if container is not None and not _DNS_LABEL.match(str(container)):
        out.append("%s: container_name %r must be a DNS label" % (where, container))
    if container == GATE_CONTAINER and _sleeps(entry):
        out.append("%s: container_name %s is the API gate's, which sleep_mode adds" % (where, GATE_CONTAINER))
    out.extend(_sleep_problems(entry, where, settings))
    return out


def _sleep_problems(entry, where, settings):
    """sleep_mode: a vLLM server, a release that can sleep at the level, an engine port of its own, and a pod
    whose memory holds what a level-1 sleep copies to host RAM."""
    if not _sleeps(entry):
        if entry.get("sleep_level") is not None or entry.get("sleep_residue_mib") is not None:
            return ["%s: sleep_level and sleep_residue_mib need sleep_mode: true" % where]
        return []
    out = []
    if (entry.get("server") or "vllm") != "vllm":
        return ["%s: sleep_mode is vLLM's (--enable-sleep-mode): it needs server: vllm" % where]
    if (entry.get("health") or {}).get("kind") not in (None, "vllm"):
        out.append("%s: sleep_mode needs health kind vllm (the switcher checks /health, /v1/models and a completion)"
                   % where)
    if DEV_MODE_ENV in (entry.get("env") or {}):
        out.append("%s: env must not set %s: sleep_mode sets it (to 1, for the sleep endpoints)" % (where, DEV_MODE_ENV))
    port = int(_entry_get(entry, "port", settings))
    engine = int(_entry_get(entry, "engine_port", settings))
    if engine == port:
        out.append("%s: engine_port %d must differ from port (the client port the API gate serves)" % (where, engine))
    level = int(_entry_get(entry, "sleep_level", settings))
    model, _known = compat.normalize_model(dict(compat_model(dict(entry, model=entry.get("model_id") or entry["model"])),
                                                sleep_mode=True, sleep_level=level))
    version = compat.image_info_from_data(entry.get("image") or settings["image"]).get("vllm_version")
    facts = compat.sleep_facts(version)
    if facts["supported"] is False:
        out.append("%s: sleep_mode: vLLM %s predates the sleep endpoints the collection drives (%s or newer)"
                   % (where, version, compat_data.VLLM_SLEEP_MIN))
    elif level == 2 and facts["level2"] is False:
        out.append("%s: sleep_level 2 drops the weights and vLLM %s cannot reload them (no /collective_rpc before %s): "
                   "use sleep_level 1 or a newer image" % (where, version, compat_data.VLLM_SLEEP_LEVEL2_MIN))
    if level == 1 and not facts["keeps_weights"]:
        weights = compat.weights_mib(model)
        if weights is None:
            out.append("%s: sleep_level 1 copies the weights to host RAM: give weights_gib (or params_b) so that the "
                       "pod's memory can be checked against them" % where)
        else:
            need = weights + float(_entry_get(entry, "sleep_host_overhead_gib", settings)) * 1024
            gib = int(math.ceil(need / 1024.0))
            for key in ("memory", "memory_limit"):
                have = quantity_mib(_entry_get(entry, key, settings))
                if have is not None and have < need:
                    out.append("%s: sleep_level 1 copies the weights (%d MiB) to pinned host RAM: %s %s (%d MiB) must hold "
                               "them plus %s GiB for the server, %d MiB: set %s: %dGi, or sleep_level: 2"
                               % (where, weights, key, _entry_get(entry, key, settings), have,
                                  format_number(float(_entry_get(entry, "sleep_host_overhead_gib", settings))),
                                  need, key, gib))
    return out


def problems(catalog, settings):
    """Everything wrong with the catalog that its argument spec cannot express; [] when deployable."""
    out = []
    if not isinstance(catalog, list):
        return ["vllm_catalog must be a list of entries, got %s" % type(catalog).__name__]
    names = []
    for index, entry in enumerate(catalog):
        where = "vllm_catalog[%d]" % index
        if not isinstance(entry, dict):
            out.append("%s must be a mapping" % where)
            continue
        name = entry.get("name")
        if not name or not isinstance(name, str):
            out.append("%s: name is required" % where)
            continue
        where = "vllm_catalog entry %s" % name
        full = settings["name_prefix"] + name
        if not _DNS_LABEL.match(name) or len(full) > 63 - len("-prepull"):
            out.append("%s: name must be a DNS label (lower case letters, digits, '-') and %s%s at most %d "
                       "characters" % (where, settings["name_prefix"], name, 63 - len("-prepull")))
        if name in names:
            out.append("%s: name is used by more than one entry" % where)
        names.append(name)
        if not entry.get("model"):
            out.append("%s: model is required (Hugging Face id or local path)" % where)
        out.extend(_entry_problems(entry, where, settings))
    for entry in catalog:
        if isinstance(entry, dict) and entry.get("fallback"):
            if entry["fallback"] not in names:
                out.append("vllm_catalog entry %s: fallback %s is not a catalog entry (known: %s)"
                           % (entry.get("name"), entry["fallback"], ", ".join(names)))
            elif entry["fallback"] == entry.get("name"):
                out.append("vllm_catalog entry %s: fallback names the entry itself" % entry.get("name"))
    if out:
        return out
    bound, books, groups, mode_problems = _bindings(catalog, settings)
    out.extend(mode_problems)
    standby = set(d for book in books.values() for spec in book["modes"].values() for d in spec.get("standby") or {})
    for entry in catalog:
        if settings["name_prefix"] + entry["name"] in standby and not _sleeps(entry):
            modes_of = sorted("%s of node %s" % (m, n) for n, book in books.items() for m, spec in book["modes"].items()
                              if settings["name_prefix"] + entry["name"] in (spec.get("standby") or {}))
            out.append("vllm_catalog entry %s is kept in standby (mode %s) but cannot sleep: set sleep_mode: true"
                       % (entry["name"], ", ".join(modes_of)))
    out.extend(_shared_problems(catalog, settings, bound, groups))
    return out


def _shared_problems(catalog, settings, bound, groups):
    """Entries that share a Service (the stable name clients use) must agree on it, and those that can run
    at the same time must serve the same model names (replicas of one model on several nodes), else clients
    would get one model or the other at random."""
    out = []
    by_service = {}
    for entry in catalog:
        if entry.get("enabled", True) is False:
            continue
        by_service.setdefault(_service_of(entry, settings)["name"], []).append(entry)
    for service, entries in by_service.items():
        if len(entries) < 2:
            continue
        first = entries[0]
        for other in entries[1:]:
            if _service_of(other, settings) != _service_of(first, settings):
                out.append("Service %s: entries %s and %s disagree on its port, type or selector"
                           % (service, first["name"], other["name"]))
            if _ingress_of(other, settings) != _ingress_of(first, settings):
                out.append("Service %s: entries %s and %s disagree on its ingress"
                           % (service, first["name"], other["name"]))
        for i, first_entry in enumerate(entries):
            for other in entries[i + 1:]:
                if _together(first_entry, other, bound, groups) and \
                        served_model_names(first_entry) != served_model_names(other):
                    out.append("Service %s would route to %s and %s at the same time, which serve different models: "
                               "give them different services, or put them in different GPU modes of one node"
                               % (service, first_entry["name"], other["name"]))
    claims = {}
    for entry in catalog:
        cache = _cache_of(entry, settings)
        if cache["type"] != "pvc" or not cache.get("create"):
            continue
        spec = (cache["access_mode"], cache["size"], cache["storage_class"])
        if cache["claim"] in claims and claims[cache["claim"]][1] != spec:
            out.append("PersistentVolumeClaim %s: entries %s and %s disagree on access mode, size or storage class"
                       % (cache["claim"], claims[cache["claim"]][0], entry["name"]))
        claims.setdefault(cache["claim"], (entry["name"], spec))
    return out


# --- expansion ------------------------------------------------------------------------------------

def format_number(value):
    """0.9 -> '0.9', 8192 -> '8192', 0.85 -> '0.85' (what a person would type on the command line)."""
    if isinstance(value, bool):
        raise TypeError("a flag value, not a boolean, was expected")
    if isinstance(value, int):
        return str(value)
    text = ("%.6f" % float(value)).rstrip("0").rstrip(".")
    return text or "0"


def vllm_args(entry, settings):
    """Container args for ``server: vllm``: flags from the entry's keys, then its extra ``args``."""
    args = []
    model_flag = entry.get("model_flag")
    if model_flag is None:
        model_flag = "--model"
    if model_flag:
        args += [model_flag, str(entry["model"])]
    names = served_model_names(entry)
    if names:
        args += ["--served-model-name"] + names
    port = _entry_get(entry, "engine_port", settings) if _sleeps(entry) else _entry_get(entry, "port", settings)
    args += ["--host", "0.0.0.0", "--port", str(port)]
    for key, flag in VALUE_FLAGS:
        value = entry.get(key)
        if value is not None and value != "":
            args += [flag, format_number(value) if not isinstance(value, str) else value]
    if entry.get("enforce_eager"):
        args.append("--enforce-eager")
    if entry.get("trust_remote_code"):
        args.append("--trust-remote-code")
    if _sleeps(entry):
        args.append("--enable-sleep-mode")
    if entry.get("generation_config"):
        args += ["--override-generation-config", json.dumps(entry["generation_config"], sort_keys=True)]
    return args + [str(a) for a in entry.get("args") or []]


def served_model_names(entry):
    """The names clients use; a vLLM entry without any serves its catalog name as a stable alias."""
    names = entry.get("served_model_names")
    if names is None:
        return [entry["name"]] if (entry.get("server") or "vllm") == "vllm" else []
    return [str(n) for n in names]


def startup_budget(entry, settings):
    """Seconds the startupProbe allows: the entry's own budget, else load time x factor, at least the minimum."""
    if entry.get("startup_budget_seconds"):
        return int(entry["startup_budget_seconds"])
    load = float(_entry_get(entry, "load_seconds", settings))
    return int(max(float(settings["startup_min_seconds"]), math.ceil(load * float(settings["startup_factor"]))))


def _probes(entry, settings, health, port, port_name="http"):
    """startupProbe, readinessProbe and livenessProbe objects of the server container.

    Startup and readiness run every ``probe_period_seconds`` (1 s by default: ``/health`` is cheap, and
    the kubelet marks a pod Ready at most one period after it answers, which is what a GPU mode switch
    waits for); the startup failure budget covers the expected load time. With ``health.exec`` they read
    the JSON field inside the container; liveness only ever checks that the server answers.
    """
    period = int(_entry_get(entry, "probe_period_seconds", settings))
    timeout = max(1, min(period, 5))
    budget = startup_budget(entry, settings)
    http = {"httpGet": {"path": health["path"], "port": port_name}}
    ready = http
    if health["exec"]:
        url = "http://127.0.0.1:%d%s" % (port, health["path"])
        ready = {"exec": {"command": [health["exec"], "-c", JSON_PROBE_SCRIPT, url, health["field"],
                                      json.dumps(health["value"]), str(timeout)]}}
    probes = {
        "budget": budget,
        "startup": dict(ready, periodSeconds=period, timeoutSeconds=timeout,
                        failureThreshold=int(math.ceil(budget / float(period)))),
        "readiness": dict(ready, periodSeconds=period, timeoutSeconds=timeout, failureThreshold=3),
        "liveness": None,
    }
    liveness = entry.get("liveness") or {}
    if liveness.get("enabled", True) is not False:
        probes["liveness"] = dict(
            http,
            periodSeconds=int(liveness.get("period_seconds") or settings["liveness_period_seconds"]),
            timeoutSeconds=int(liveness.get("timeout_seconds") or settings["liveness_timeout_seconds"]),
            failureThreshold=int(liveness.get("failure_threshold") or settings["liveness_failure_threshold"]))
    return probes


def _env(entry, cache, offline, hf_secret):
    env = []
    if _sleeps(entry):
        env.append({"name": DEV_MODE_ENV, "value": "1"})  # /sleep, /wake_up, /is_sleeping, /collective_rpc
    if hf_secret:
        env.append({"name": "HF_TOKEN", "secret": hf_secret, "key": "token"})
    if cache["type"] != "none" and cache["mount_path"].rstrip("/").endswith(".cache/huggingface"):
        env.append({"name": "HF_HOME", "value": cache["mount_path"]})
    if offline:
        env.append({"name": "HF_HUB_OFFLINE", "value": "1"})
    for key, value in sorted((entry.get("env") or {}).items()):
        if any(e["name"] == key for e in env):
            env = [e for e in env if e["name"] != key]
        env.append({"name": str(key), "value": value if isinstance(value, str) else json.dumps(value)})
    return env


def _node_affinity(entry):
    terms = entry.get("node_affinity") or []
    if not terms:
        return None
    return {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": t["key"], "operator": t.get("operator") or "In",
                               "values": [str(v) for v in t.get("values") or []]} for t in terms]}]}}


def _pod_affinity(entry):
    required, preferred = [], []
    for term in entry.get("pod_affinity") or []:
        k8s_term = {"labelSelector": {"matchLabels": dict((str(k), str(v)) for k, v in term["match_labels"].items())},
                    "topologyKey": term.get("topology_key") or HOSTNAME_TOPOLOGY}
        if term.get("namespaces"):
            k8s_term["namespaces"] = [str(n) for n in term["namespaces"]]
        if term.get("required", True) is False:
            preferred.append({"weight": int(term.get("weight") or 100), "podAffinityTerm": k8s_term})
        else:
            required.append(k8s_term)
    out = {}
    if required:
        out["requiredDuringSchedulingIgnoredDuringExecution"] = required
    if preferred:
        out["preferredDuringSchedulingIgnoredDuringExecution"] = preferred
    return out or None


def _affinity(entry):
    out = {}
    node = _node_affinity(entry)
    if node:
        out["nodeAffinity"] = node
    pods = _pod_affinity(entry)
    if pods:
        out["podAffinity"] = pods
    return out or None


def _container(entry, server, settings, model, cache):
    command = [str(c) for c in entry.get("command") or []]
    args = vllm_args(entry, settings) if server == "vllm" else [str(a) for a in entry.get("args") or []]
    name = entry.get("container_name") or ("vllm" if server == "vllm" else "server")
    sleeps = _sleeps(entry)
    return {"name": name, "command": command, "args": args,
            "port_name": ENGINE_PORT_NAME if sleeps else "http",
            "port": int(_entry_get(entry, "engine_port" if sleeps else "port", settings)),
            "download_args": ["--repo", entry.get("model_id") or model, "--cache-dir", cache["mount_path"]] + (
                ["--local-dir", model] if model.startswith("/") else [])}


def workload(entry, settings, node=None):
    """One catalog entry expanded with settings: every value the Deployment, PDB and probes need. ``node``:
    ``{"name", "selector"}`` of the GPU node whose modes name the entry (mode-bound: pinned there by the
    selector, replicas left to the switcher)."""
    name = entry["name"]
    full = settings["name_prefix"] + name
    server = entry.get("server") or "vllm"
    service = _service_of(entry, settings)
    health = _health_of(entry, settings)
    cache = _cache_of(entry, settings)
    download = bool(_entry_get(entry, "download", settings)) and cache["type"] != "none"
    offline = entry.get("hf_offline")
    if offline is None:
        offline = bool(settings["hf_offline"]) or download
    hf_secret = settings["hf_token_secret"] or ""
    common = {
        LABEL_NAME: settings["app_name"],
        LABEL_PART_OF: settings["part_of"],
        LABEL_MANAGED_BY: MANAGED_BY,
    }
    selector = {LABEL_NAME: settings["app_name"], LABEL_INSTANCE: full}
    labels = dict(common)
    labels.update({LABEL_INSTANCE: full, LABEL_COMPONENT: "model-server"})
    labels.update(dict((str(k), str(v)) for k, v in (entry.get("labels") or {}).items()))
    pod_labels = dict(labels)
    pod_labels[LABEL_SERVICE] = service["name"]
    pod_labels.update(service["selector"])
    node_selector = dict(settings["node_selector"] or {})
    node_selector.update(entry.get("node_selector") or {})
    if node:
        node_selector.update(node["selector"])
    tolerations = entry.get("tolerations")
    if tolerations is None:
        tolerations = settings["tolerations"] or []
    resources = {"requests": {"cpu": str(_entry_get(entry, "cpu", settings)),
                              "memory": str(_entry_get(entry, "memory", settings))},
                 "limits": {}}
    gpus = int(_entry_get(entry, "gpus", settings))
    if gpus:
        resources["limits"]["nvidia.com/gpu"] = str(gpus)
    for key, setting in (("cpu", "cpu_limit"), ("memory", "memory_limit")):
        value = _entry_get(entry, setting, settings)
        if value:
            resources["limits"][key] = str(value)
    model = str(entry["model"])
    model_id = entry.get("model_id") or model
    names = served_model_names(entry)
    port = int(_entry_get(entry, "port", settings))
    image = entry.get("image") or settings["image"]
    # what the GPU mode switcher and `gpu-mode` read from the cluster (they read no file on a node)
    annotations = {
        ANNOTATION_PREFIX + "served-model-names": ",".join(names),
        ANNOTATION_PREFIX + "health": "%s %s" % (health["kind"], health["path"]),
        ANNOTATION_PREFIX + "model": model_id,
        ANNOTATION_PREFIX + "service": service["name"],
        ANNOTATION_PREFIX + "service-port": str(service["port"]),
        ANNOTATION_PREFIX + "port": str(port),
        ANNOTATION_PREFIX + "load-seconds": format_number(float(_entry_get(entry, "load_seconds", settings))),
        ANNOTATION_PREFIX + "compat": json.dumps({"image": image, "model": compat_model(dict(entry, model=model_id),
                                                                                        settings)}, sort_keys=True),
    }
    if health["field"]:
        annotations[ANNOTATION_PREFIX + "health-field"] = health["field"]
    if node:
        annotations[ANNOTATION_PREFIX + "node"] = node["name"]
        annotations[ANNOTATION_PREFIX + "replicas-manager"] = gpu_state.FIELD_MANAGER
    if entry.get("fallback"):
        annotations[ANNOTATION_PREFIX + "fallback"] = settings["name_prefix"] + entry["fallback"]
    sleep = _sleep_of(entry, settings, image, model_id) if _sleeps(entry) else None
    if sleep:
        annotations[ANNOTATION_PREFIX + "sleep-level"] = str(sleep["level"])
        annotations[ANNOTATION_PREFIX + "engine-port"] = str(sleep["engine_port"])
        annotations[ANNOTATION_PREFIX + "sleep-residue-mib"] = str(sleep["residue_mib"])
    annotations.update(dict((str(k), str(v)) for k, v in (entry.get("annotations") or {}).items()))
    runtime_class = entry.get("runtime_class")
    out = {
        "name": name,
        "full_name": full,
        "namespace": settings["namespace"],
        "description": entry.get("description") or "",
        "server": server,
        "image": image,
        "image_pull_policy": entry.get("image_pull_policy") or settings["image_pull_policy"],
        "container": _container(entry, server, settings, model, cache),
        "model": model,
        "model_id": model_id,
        "served_model_names": names,
        "port": port,
        "gpus": gpus,
        "resources": resources,
        "shm_size": str(_entry_get(entry, "shm_size", settings)),
        "runtime_class": runtime_class if runtime_class is not None else (settings["runtime_class"] or ""),
        "node_selector": node_selector,
        "affinity": _affinity(entry),
        "tolerations": tolerations,
        "env": _env(entry, cache, offline, hf_secret),
        # the download container needs the token and the cache location, never the server's settings
        "download_env": _env({}, cache, False, hf_secret) + [{"name": "HF_HUB_ENABLE_HF_TRANSFER", "value": "0"}],
        "cache": cache,
        "download": download,
        "download_container": settings["download_container_name"],
        "download_image": entry.get("download_image") or settings["download_image"] or image,
        "prepull": None,
        "probes": _probes(entry, settings, health, port, "http") if not sleep else
        _probes(entry, settings, health, sleep["engine_port"], ENGINE_PORT_NAME),
        "sleep": sleep,
        "gate": _gate_of(entry, settings, image, port) if sleep else None,
        "health": health,
        "load_seconds": float(_entry_get(entry, "load_seconds", settings)),
        "service": service["name"],
        "service_port": service["port"],
        "labels": labels,
        "pod_labels": pod_labels,
        "selector": selector,
        "annotations": annotations,
        "node": node["name"] if node else "",
        # a mode-bound Deployment's replicas belong to the GPU mode switcher: the role leaves them out
        "replicas": None if node else int(entry.get("replicas") if entry.get("replicas") is not None else 1),
        "fallback": entry.get("fallback") or "",
    }
    if _entry_get(entry, "prepull", settings):
        prepull_labels = dict(common)
        prepull_labels.update({LABEL_INSTANCE: full + "-prepull", LABEL_COMPONENT: "image-prepull"})
        images = [out["image"]]
        if download and out["download_image"] not in images:
            images.append(out["download_image"])
        node_affinity = _node_affinity(entry)
        out["prepull"] = {"name": full + "-prepull", "labels": prepull_labels, "images": images,
                          "affinity": {"nodeAffinity": node_affinity} if node_affinity else None,
                          "selector": {LABEL_NAME: settings["app_name"], LABEL_INSTANCE: full + "-prepull"}}
    out["compat"] = compat_model(dict(entry, model=model_id), settings)
    return out


def _sleep_of(entry, settings, image, model_id):
    """A sleep-mode entry's level, engine port and what it keeps on each GPU asleep (for the switcher)."""
    model, _known = compat.normalize_model(compat_model(dict(entry, model=model_id), settings))
    version = compat.image_info_from_data(image).get("vllm_version")
    return {"level": model["sleep_level"], "engine_port": int(_entry_get(entry, "engine_port", settings)),
            "residue_mib": compat.sleep_residue_mib(version, model)}


def _gate_of(entry, settings, image, port):
    """The API gate container of a sleep-mode pod: the client port, the OpenAI routes only."""
    engine = int(_entry_get(entry, "engine_port", settings))
    period = int(_entry_get(entry, "probe_period_seconds", settings))
    return {"name": GATE_CONTAINER, "image": settings["api_gate_image"] or image, "port": port,
            "command": ["python3", GATE_MOUNT + "/" + GATE_SCRIPT, "--listen-port", str(port),
                        "--upstream-port", str(engine)],
            "mount": GATE_MOUNT,
            "readiness": {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": period,
                          "timeoutSeconds": max(1, min(period, 5)), "failureThreshold": 3},
            "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "256Mi"}}}


def compat_model(entry, settings=None):
    """The ``model`` option of ``baremetal.gpu.vllm_compat`` for a catalog entry (or a preflight workload);
    with the role's ``settings``, a sleep-mode entry's level and pod memory too."""
    model = {"name": entry.get("model_id") or entry["model"]}
    for key in ("dtype", "quantization", "max_model_len", "tensor_parallel_size", "gpu_memory_utilization",
                "kv_cache_dtype", "params_b", "weights_gib", "num_layers", "num_kv_heads", "head_dim",
                "sleep_residue_mib"):
        if entry.get(key) is not None and entry.get(key) != "":
            model[key] = entry[key]
    if entry.get("enforce_eager"):
        model["enforce_eager"] = True
    if _sleeps(entry):
        model["sleep_mode"] = True
        model["sleep_level"] = int(entry.get("sleep_level") or (settings or {}).get("sleep_level") or 1)
        if settings is not None:
            memory = _pod_memory_mib(entry, settings)
            if memory is not None:
                model["host_memory_mib"] = int(memory)
            model["host_overhead_mib"] = int(float(_entry_get(entry, "sleep_host_overhead_gib", settings)) * 1024)
    return model


def standby_beside(name, node_modes, entries, default_image):
    """The sleepers a GPU node's modes (``node_modes``: its ``gpu_modes`` as the inventory writes them) keep resident beside
    catalog entry ``name`` while it is awake, over every mode that runs it: the ``standby`` option of
    ``baremetal.gpu.vllm_compat`` (``[{name, image, model}]``). [] when no mode keeps any."""
    entries = [e for e in entries or [] if isinstance(e, dict) and e.get("name")]
    by_name = dict((e["name"], e) for e in entries)
    found, _default, _problems = gpu_modes.normalize_inventory_modes(node_modes or {}, set(by_name)) \
        if isinstance(node_modes, dict) else ({}, None, [])
    out = {}
    for spec in found.values():
        if name not in spec["workloads"]:
            continue
        for sleeper in spec.get("standby") or {}:
            if sleeper in by_name and sleeper != name:
                entry = by_name[sleeper]
                out[sleeper] = {"name": sleeper, "image": entry.get("image") or default_image,
                                "model": compat_model(dict(entry, model=entry.get("model_id") or entry["model"],
                                                           sleep_mode=True))}
    return [out[k] for k in sorted(out)]


def plan(catalog, settings):
    """The catalog expanded for deployment; raises CatalogError listing every problem.

    ``settings`` are the role's knobs without the ``vllm_`` prefix (``settings_from_vars``); every knob the
    expansion reads must be there (the role passes all of them; a missing one is named).
    """
    settings = _Settings(settings or {})
    found = problems(catalog, settings)
    if found:
        raise CatalogError(found)
    entries = [e for e in catalog if e.get("enabled", True) is not False]
    bound, books, _groups, _problems = _bindings(catalog, settings)
    workloads = [workload(e, settings, bound.get(e["name"])) for e in entries]
    services = []
    for entry, w in zip(entries, workloads):
        existing = [s for s in services if s["name"] == w["service"]]
        if existing:
            existing[0]["workloads"].append(w["name"])
            continue
        svc = _service_of(entry, settings)
        services.append({
            "name": svc["name"],
            "port": svc["port"],
            "type": svc["type"],
            "labels": {LABEL_NAME: settings["app_name"], LABEL_PART_OF: settings["part_of"],
                       LABEL_MANAGED_BY: MANAGED_BY, LABEL_INSTANCE: svc["name"]},
            "selector": svc["selector"],
            "ingress": _ingress_of(entry, settings),
            "workloads": [w["name"]],
        })
    claims = []
    for w in workloads:
        cache = w["cache"]
        if cache["type"] == "pvc" and cache["create"] and cache["claim"] not in [c["name"] for c in claims]:
            claims.append({"name": cache["claim"], "access_mode": cache["access_mode"], "size": cache["size"],
                           "storage_class": cache["storage_class"]})
    common = {LABEL_NAME: settings["app_name"], LABEL_PART_OF: settings["part_of"], LABEL_MANAGED_BY: MANAGED_BY}
    return {
        "namespace": settings["namespace"],
        "create_namespace": bool(settings["create_namespace"]),
        "labels": common,
        "gpu_nodes": [dict(books[n], configmap=gpu_modes.configmap_name(n),
                           modes_json=json.dumps(books[n], sort_keys=True, indent=1)) for n in sorted(books)],
        "hf_token_secret": settings["hf_token_secret"] or "",
        "weights_script": settings["name_prefix"] + "weights-check" if any(w["download"] for w in workloads) else "",
        "gate_script": settings["name_prefix"] + "api-gate" if any(w["sleep"] for w in workloads) else "",
        "engine_policies": [_engine_policy(w, settings) for w in workloads
                            if w["sleep"] and settings["engine_network_policy"]],
        "prepull_pause_image": settings["prepull_pause_image"],
        "workloads": workloads,
        "services": services,
        "claims": claims,
    }


def _engine_policy(w, settings):
    """A NetworkPolicy that admits only the client port (the API gate) to a sleep-mode server's pods: vLLM's
    engine port, with its development endpoints, stays reachable only from the pod's own node (the kubelet's
    probes and, through k3s's agent tunnel, the API server's pod proxy: Kubernetes always allows a node's
    traffic to its pods) and from ``engine_allowed_cidrs``."""
    ingress = [{"ports": [{"port": w["port"], "protocol": "TCP"}]}]
    cidrs = [str(c) for c in settings["engine_allowed_cidrs"] or []]
    if cidrs:
        ingress.append({"from": [{"ipBlock": {"cidr": c}} for c in cidrs],
                        "ports": [{"port": w["sleep"]["engine_port"], "protocol": "TCP"}]})
    return {"name": w["full_name"] + "-engine", "labels": w["labels"], "selector": w["selector"], "ingress": ingress}
