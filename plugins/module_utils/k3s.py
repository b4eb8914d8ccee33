# -*- coding: utf-8 -*-
# Copyright: baremetal.gpu maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the ``k3s_gpu_worker`` role installs on a node, decided from its variables and GPU facts.

Plain functions over plain data; the role reaches them through the ``baremetal.gpu.k3s_worker_plan``
filter, and the unit tests call them directly. ``plan()`` validates everything the role is given and
returns every value the role's tasks and templates use, or raises ``K3sError`` listing every problem,
so that bad input fails before anything on the node changes.

k3s facts this module encodes (sources in roles/k3s_gpu_worker/README.md):

* Release strings look like ``v1.32.5+k3s1`` (release candidates ``v1.32.5-rc1+k3s1``); the release
  assets are ``k3s`` (amd64) and ``k3s-arm64`` (arm64), with ``sha256sum-<arch>.txt`` beside them.
* ``--node-label`` values are re-applied by the k3s agent at every start (labels removed from the
  configuration stay on the Node); ``--node-taint`` only applies when the node first registers.
* The kubelet may not label its own Node with ``kubernetes.io``/``k8s.io`` keys other than a few
  well-known ones (NodeRestriction), so ``node-role.kubernetes.io/*`` must be set with kubectl.
* ``default-runtime`` exists for agents from v1.26.12+k3s1, v1.27.9+k3s1, v1.28.5+k3s1 and v1.29.0+k3s1,
  and for servers from v1.29.0+k3s1 (k3s-io/k3s#9027; its 1.26 backport #9028 was never merged).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import math
import re

try:
    from urllib.parse import urlsplit
except ImportError:  # pragma: no cover
    from urlparse import urlsplit

from ansible_collections.baremetal.gpu.plugins.module_utils import container_toolkit

K3S_RELEASE_RE = re.compile(r"^v(\d+)\.(\d+)\.(\d+)(?:-rc(\d+))?\+k3s(\d+)$")
SHA256_RE = re.compile(r"^[0-9a-fA-F]{64}$")

#: ``ansible_architecture`` -> (k3s architecture name, release asset of the binary).
ARCHITECTURES = {
    "x86_64": ("amd64", "k3s"),
    "aarch64": ("arm64", "k3s-arm64"),
}

ROLES = ("server", "agent")
TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")

#: Label keys the role derives from GPU facts (names as NVIDIA's GPU feature discovery writes them,
#: so a later GFD deployment agrees), plus ``memorysize`` (total GPU memory of the node, "12GB").
LABEL_PRESENT = "nvidia.com/gpu.present"
LABEL_PRODUCT = "nvidia.com/gpu.product"
LABEL_COUNT = "nvidia.com/gpu.count"
LABEL_MEMORY = "nvidia.com/gpu.memory"
LABEL_FAMILY = "nvidia.com/gpu.family"
LABEL_COMPUTE_MAJOR = "nvidia.com/gpu.compute.major"
LABEL_COMPUTE_MINOR = "nvidia.com/gpu.compute.minor"
LABEL_DRIVER_MAJOR = "nvidia.com/cuda.driver.major"
LABEL_DRIVER_MINOR = "nvidia.com/cuda.driver.minor"
LABEL_DRIVER_REV = "nvidia.com/cuda.driver.rev"
LABEL_CUDA_MAJOR = "nvidia.com/cuda.runtime.major"
LABEL_CUDA_MINOR = "nvidia.com/cuda.runtime.minor"
LABEL_MEMORYSIZE = "memorysize"
#: The label the NVIDIA device plugin's config manager reads to pick this node's configuration.
LABEL_DEVICE_PLUGIN_CONFIG = "nvidia.com/device-plugin.config"

#: Memory sizes GPUs are sold with, in GB. NVML reports less than the product size (a 16 GB T4 shows
#: 15360 MiB, an 80 GB H100 81559 MiB), so a GPU's size is its MiB rounded up to the next of these.
NOMINAL_GB = (1, 2, 3, 4, 5, 6, 8, 10, 11, 12, 16, 20, 24, 32, 40, 48, 64, 80, 94, 96, 128, 141, 180, 192,
              256, 288)

# Kubernetes names (apimachinery validation).
_LABEL_NAME_RE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
_DNS_SUBDOMAIN_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_CONFIGMAP_KEY_RE = re.compile(r"^[-._a-zA-Z0-9]+$")
# Labels under kubernetes.io / k8s.io a kubelet may set on its own Node (NodeRestriction).
_KUBELET_ALLOWED_LABELS = ("kubernetes.io/hostname", "kubernetes.io/arch", "kubernetes.io/os",
                           "beta.kubernetes.io/instance-type", "node.kubernetes.io/instance-type",
                           "failure-domain.beta.kubernetes.io/region", "failure-domain.beta.kubernetes.io/zone",
                           "topology.kubernetes.io/region", "topology.kubernetes.io/zone")
_KUBELET_ALLOWED_PREFIXES = ("kubelet.kubernetes.io/", "node.kubernetes.io/")

#: config.yaml keys the role writes itself; they cannot come through ``config_extra``.
MANAGED_CONFIG_KEYS = ("server", "token", "token-file", "agent-token", "agent-token-file", "node-name",
                       "node-label", "node-taint", "kubelet-arg", "default-runtime", "data-dir")


class K3sError(Exception):
    """The role's input is not usable; the message lists every problem."""


def _truthy(value):
    """Booleans as Ansible passes them (True, "true", "yes", "1"); anything else is false."""
    if isinstance(value, str):
        return value.strip().lower() in ("true", "yes", "on", "1")
    return bool(value)


# --- single values ----------------------------------------------------------------------------------

def parse_release(version):
    """``"v1.32.5+k3s1"`` -> (1, 32, 5); None unless it is a k3s release string."""
    match = K3S_RELEASE_RE.match(str(version or "").strip())
    if not match:
        return None
    return tuple(int(x) for x in match.groups()[:3])


def release_problem(version):
    """Why ``version`` is not a pinned k3s release string, or None."""
    if parse_release(version) is None:
        return ("k3s_gpu_worker_version %r is not a k3s release string: pin one like v1.32.5+k3s1 (see "
                "https://github.com/k3s-io/k3s/releases); channels such as 'stable' or 'latest' are not "
                "pinned" % (version,))
    return None


def sha256_problem(name, value):
    """Why ``value`` is not a sha256 (64 hex digits), or None."""
    if not SHA256_RE.match(str(value or "").strip()):
        return ("%s must be the sha256 of the file, 64 hexadecimal digits (from the release's "
                "sha256sum-<arch>.txt); got %r" % (name, value))
    return None


def architecture(ansible_architecture):
    """(k3s arch, binary asset name) for ``ansible_architecture``; raises K3sError otherwise."""
    if ansible_architecture not in ARCHITECTURES:
        raise K3sError("architecture %r is not supported by k3s_gpu_worker: it installs k3s on %s"
                       % (ansible_architecture, " or ".join(sorted(ARCHITECTURES))))
    return ARCHITECTURES[ansible_architecture]


def parse_server_url(url):
    """(host, port) of a k3s server URL ``https://host[:6443]``; raises K3sError when malformed."""
    text = str(url or "").strip()
    parts = urlsplit(text)
    if parts.scheme != "https" or not parts.hostname or parts.path not in ("", "/") or parts.query:
        raise K3sError("k3s_gpu_worker_server_url %r is not a k3s server URL: use https://<server>:6443"
                       % (url,))
    try:
        port = parts.port or 6443
    except ValueError:
        raise K3sError("k3s_gpu_worker_server_url %r has an invalid port" % (url,))
    return parts.hostname, port


def label_key_problem(key):
    """Why ``key`` is not a Kubernetes label key, or None."""
    key = str(key)
    prefix, name = key.rpartition("/")[::2]
    if not name or len(name) > 63 or not _LABEL_NAME_RE.match(name):
        return "label key %r: the name part must be 1-63 characters [A-Za-z0-9-_.], alphanumeric at both ends" % key
    if prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN_RE.match(prefix)):
        return "label key %r: the prefix must be a DNS subdomain (lower case, dots)" % key
    return None


def label_value_problem(key, value):
    """Why ``value`` is not a Kubernetes label value, or None."""
    value = str(value)
    if len(value) > 63 or not _LABEL_NAME_RE.match(value):
        return ("label %s=%r: values are at most 63 characters [A-Za-z0-9-_.], alphanumeric at both ends"
                % (key, value))
    return None


def kubelet_may_set(key):
    """Whether NodeRestriction lets a node put label ``key`` on itself."""
    prefix = key.rpartition("/")[0]
    restricted = (prefix == "kubernetes.io" or prefix.endswith(".kubernetes.io") or prefix == "k8s.io"
                  or prefix.endswith(".k8s.io"))
    if not restricted:
        return True
    return key in _KUBELET_ALLOWED_LABELS or key.startswith(_KUBELET_ALLOWED_PREFIXES)


def sanitize_label_value(text):
    """A label value from free text, as NVIDIA's GPU feature discovery does (``NVIDIA GeForce RTX 3060``
    -> ``NVIDIA-GeForce-RTX-3060``), cut to 63 characters."""
    text = re.sub(r"[^A-Za-z0-9-_. ]", "", str(text or ""))
    text = "-".join(text.split())
    return text[:63].strip("-_.")


def nominal_gb(memory_mib):
    """The memory size a GPU is sold with, in GB, from the MiB NVML reports (15360 -> 16)."""
    gib = int(math.ceil(float(memory_mib) / 1024.0 - 0.01))
    for size in NOMINAL_GB:
        if size >= gib:
            return size
    return gib


def device_plugin_config_problem(name):
    """Why ``name`` cannot name a device plugin configuration (ConfigMap key and label value), or None."""
    name = str(name)
    if not _CONFIGMAP_KEY_RE.match(name) or label_value_problem(LABEL_DEVICE_PLUGIN_CONFIG, name):
        return ("device plugin config name %r must be a ConfigMap key and a label value: 1-63 characters "
                "[A-Za-z0-9-_.], alphanumeric at both ends" % name)
    return None


# --- labels, taints ---------------------------------------------------------------------------------

def gpu_labels(facts):
    """Node labels from ``baremetal.gpu.gpu_facts`` facts; {} for a node without GPUs.

    Product, count, memory (MiB per GPU), family and compute capability of the first GPU as NVIDIA's GPU
    feature discovery names them; driver version and the highest CUDA the driver supports; and
    ``memorysize``: the node's total GPU memory in GB as the GPUs are sold (two 16 GB GPUs: ``32GB``).
    """
    gpus = list((facts or {}).get("gpus") or [])
    if not gpus:
        return {}
    first = gpus[0]
    products = set(g.get("name") for g in gpus)
    labels = {
        LABEL_PRESENT: "true",
        LABEL_COUNT: str(len(gpus)),
        LABEL_PRODUCT: sanitize_label_value(first.get("name")) if len(products) == 1 else "mixed",
    }
    memories = [g.get("memory_total_mib") for g in gpus if g.get("memory_total_mib")]
    if memories:
        labels[LABEL_MEMORY] = str(min(int(m) for m in memories))
        labels[LABEL_MEMORYSIZE] = "%dGB" % sum(nominal_gb(m) for m in memories)
    if first.get("architecture"):
        labels[LABEL_FAMILY] = sanitize_label_value(str(first["architecture"]).lower())
    capability = str(first.get("compute_capability") or "")
    if re.match(r"^\d+\.\d+$", capability):
        labels[LABEL_COMPUTE_MAJOR], labels[LABEL_COMPUTE_MINOR] = capability.split(".")
    version = str((facts or {}).get("driver_version") or "")
    parts = version.split(".")
    if len(parts) >= 2 and all(p.isdigit() for p in parts):
        labels[LABEL_DRIVER_MAJOR] = parts[0]
        labels[LABEL_DRIVER_MINOR] = parts[1]
        if len(parts) > 2:
            labels[LABEL_DRIVER_REV] = parts[2]
    cuda = str((facts or {}).get("cuda_driver_version") or "")
    if re.match(r"^\d+\.\d+$", cuda):
        labels[LABEL_CUDA_MAJOR], labels[LABEL_CUDA_MINOR] = cuda.split(".")
    return labels


def node_labels(facts, overrides=None, gpu_labels_enabled=True, device_plugin_config=""):
    """(labels, problems): GPU labels, then the device plugin config label, then ``overrides`` (a None or
    empty value drops a derived label)."""
    labels = gpu_labels(facts) if gpu_labels_enabled else {}
    problems = []
    if device_plugin_config:
        problem = device_plugin_config_problem(device_plugin_config)
        if problem:
            problems.append("k3s_gpu_worker_device_plugin_config: " + problem)
        labels[LABEL_DEVICE_PLUGIN_CONFIG] = str(device_plugin_config)
    for key, value in sorted((overrides or {}).items()):
        key = str(key)
        if value is None or value == "":
            labels.pop(key, None)
            continue
        if isinstance(value, bool):
            value = "true" if value else "false"
        labels[key] = str(value)
    for key, value in sorted(labels.items()):
        problem = label_key_problem(key) or label_value_problem(key, value)
        if problem:
            problems.append("k3s_gpu_worker_node_labels: " + problem)
        elif not kubelet_may_set(key):
            problems.append("k3s_gpu_worker_node_labels: a node may not set label %s on itself (the API server's "
                            "NodeRestriction admission refuses kubernetes.io and k8s.io labels other than a few "
                            "well-known ones); set it from the server with kubectl label node" % key)
    return labels, problems


def taint_strings(taints):
    """(["key=value:Effect", ...], problems) from strings or {key, value, effect} mappings."""
    out, problems = [], []
    for taint in taints or []:
        if isinstance(taint, dict):
            key, value, effect = taint.get("key"), taint.get("value", ""), taint.get("effect")
        else:
            match = re.match(r"^([^=:]+)(?:=([^:]*))?:([A-Za-z]+)$", str(taint))
            if not match:
                problems.append("k3s_gpu_worker_node_taints: %r is not key=value:Effect" % (taint,))
                continue
            key, value, effect = match.group(1), match.group(2) or "", match.group(3)
        if effect not in TAINT_EFFECTS:
            problems.append("k3s_gpu_worker_node_taints: taint %s has effect %r; use one of %s"
                            % (key, effect, ", ".join(TAINT_EFFECTS)))
            continue
        problem = label_key_problem(key) or (label_value_problem(key, value) if value else None)
        if problem:
            problems.append("k3s_gpu_worker_node_taints: " + problem.replace("label", "taint", 1))
            continue
        out.append("%s%s:%s" % (key, "=" + str(value) if value else "", effect))
    return out, problems


# --- the plan -----------------------------------------------------------------------------------------

def _default_runtime_problem(runtime, role, release):
    if not runtime:
        return None
    if runtime != "nvidia":
        return ("k3s_gpu_worker_default_runtime %r: only '' (k3s's own runc) or 'nvidia' are supported"
                % (runtime,))
    if role == "server" and release < (1, 29, 0):
        return ("k3s_gpu_worker_default_runtime: nvidia needs k3s v1.29.0+k3s1 or later on a server (the "
                "default-runtime option reached the server command line in v1.29.0); pin a newer version or "
                "leave it '' and let GPU pods use runtimeClassName: nvidia")
    if not container_toolkit.k3s_supports_default_runtime(release):
        return ("k3s_gpu_worker_default_runtime: nvidia needs a k3s release with the default-runtime option "
                "(v1.26.12+k3s1, v1.27.9+k3s1, v1.28.5+k3s1, v1.29.0+k3s1 or later); pin a newer version or "
                "leave it '' and let GPU pods use runtimeClassName: nvidia")
    return None


def plan(settings, facts=None):
    """Validate the role's settings and return what to install; raises K3sError listing every problem.

    ``settings`` are the role's variables without the ``k3s_gpu_worker_`` prefix (see the role's
    defaults); ``token_set`` says whether a token was given (the token itself never passes here), and
    ``architecture`` is the node's ``ansible_architecture``. ``facts`` are ``gpu_facts`` facts.
    """
    s = dict(settings or {})
    problems = []
    state = s.get("state", "present")
    if state not in ("present", "absent"):
        problems.append("k3s_gpu_worker_state must be present or absent, got %r" % (state,))
    role = s.get("role", "agent")
    if role not in ROLES:
        problems.append("k3s_gpu_worker_role must be server or agent, got %r" % (role,))
    try:
        arch, asset = architecture(s.get("architecture"))
    except K3sError as exc:
        problems.append(str(exc))
        arch, asset = None, None
    service = "k3s" if role == "server" else "k3s-agent"
    out = {"state": state, "role": role, "service": service, "arch": arch}
    if state == "absent":
        if problems:
            raise K3sError("; ".join(problems))
        return out

    version = str(s.get("version") or "").strip()
    problem = release_problem(version)
    if problem:
        problems.append(problem)
    release = parse_release(version)
    binary_src = str(s.get("binary_src") or "")
    problem = sha256_problem("k3s_gpu_worker_sha256", s.get("sha256"))
    if problem:
        problems.append(problem)
    binary_url = str(s.get("binary_url") or "")
    if not binary_url and not binary_src and asset:
        binary_url = "%s/%s/%s" % (str(s.get("release_url") or "").rstrip("/"), version, asset)
    images_src = str(s.get("airgap_images_src") or "")
    images_url = str(s.get("airgap_images_url") or "")
    if images_src and images_url:
        problems.append("set k3s_gpu_worker_airgap_images_src or k3s_gpu_worker_airgap_images_url, not both")
    images = None
    if images_src or images_url:
        problem = sha256_problem("k3s_gpu_worker_airgap_images_sha256", s.get("airgap_images_sha256"))
        if problem:
            problems.append(problem)
        name = (images_src or urlsplit(images_url).path).rstrip("/").rpartition("/")[2]
        if not re.search(r"\.tar(\.gz|\.zst)?$", name):
            problems.append("the air-gap images file %r must be a .tar, .tar.gz or .tar.zst archive (k3s imports "
                            "only those from its images directory)" % name)
        images = {"src": images_src, "url": images_url, "name": name,
                  "sha256": str(s.get("airgap_images_sha256") or "").strip().lower()}

    server_host, server_port = None, None
    if role == "agent":
        try:
            server_host, server_port = parse_server_url(s.get("server_url"))
        except K3sError as exc:
            problems.append(str(exc))
        if not _truthy(s.get("token_set")):
            problems.append("k3s_gpu_worker_token is empty: an agent needs the cluster's join token (the server's "
                            "/var/lib/rancher/k3s/server/node-token); keep it in Ansible Vault")
    elif s.get("server_url"):
        problems.append("k3s_gpu_worker_server_url is set but k3s_gpu_worker_role is server: a server joining "
                        "another server (HA) is not supported by this role")

    node_name = str(s.get("node_name") or "")
    if len(node_name) > 63 or not _DNS_SUBDOMAIN_RE.match(node_name):
        problems.append("k3s_gpu_worker_node_name %r is not a valid node name (lower case letters, digits, '-' "
                        "and '.')" % (node_name,))

    gpu_count = len((facts or {}).get("gpus") or [])
    if _truthy(s.get("require_gpu", True)) and gpu_count == 0:
        problems.append("no NVIDIA GPU is visible on this node (%s): a GPU worker needs the driver loaded; run "
                        "the nvidia_driver role first, or set k3s_gpu_worker_require_gpu: false for a node "
                        "without GPUs" % ((facts or {}).get("reason") or "gpu_facts found none"))
    labels, label_problems = node_labels(facts, s.get("node_labels"), _truthy(s.get("gpu_labels", True)),
                                         s.get("device_plugin_config") or "")
    problems.extend(label_problems)
    taints, taint_problems = taint_strings(s.get("node_taints"))
    problems.extend(taint_problems)
    kubelet_args = [str(a) for a in s.get("kubelet_args") or []]
    for arg in kubelet_args:
        if not re.match(r"^[a-z0-9][a-z0-9-]*=.*$", arg):
            problems.append("k3s_gpu_worker_kubelet_args: %r is not name=value (e.g. max-pods=250)" % arg)
    runtime = str(s.get("default_runtime") or "")
    if release:
        problem = _default_runtime_problem(runtime, role, release)
        if problem:
            problems.append(problem)
    extra = dict(s.get("config_extra") or {})
    clashes = sorted(k for k in extra if k in MANAGED_CONFIG_KEYS)
    if clashes:
        problems.append("k3s_gpu_worker_config_extra sets %s, which the role manages: use the role's own "
                        "variables (data-dir is fixed at /var/lib/rancher/k3s)" % ", ".join(clashes))
    if problems:
        raise K3sError("k3s_gpu_worker cannot continue, nothing was changed: " + "; ".join(problems))

    config = dict((k, v) for k, v in extra.items())
    if role == "agent":
        config["server"] = "https://%s:%d" % (server_host if ":" not in server_host else "[%s]" % server_host,
                                              server_port)
    if _truthy(s.get("token_set")):
        config["token-file"] = str(s.get("token_file"))
    config["node-name"] = node_name
    if labels:
        config["node-label"] = ["%s=%s" % kv for kv in sorted(labels.items())]
    if taints:
        config["node-taint"] = taints
    if kubelet_args:
        config["kubelet-arg"] = kubelet_args
    if runtime:
        config["default-runtime"] = runtime
    if role == "server":
        config.setdefault("write-kubeconfig-mode", "0600")
    out.update({
        "version": version,
        "sha256": str(s.get("sha256")).strip().lower(),
        "binary_url": binary_url,
        "binary_src": binary_src,
        "asset": asset,
        "images": images,
        "server_host": server_host,
        "server_port": server_port,
        "node_name": node_name,
        "labels": labels,
        "taints": taints,
        "gpu_count": gpu_count,
        "device_plugin_config": str(s.get("device_plugin_config") or ""),
        "config": config,
        "unit_type": "notify" if role == "server" else "exec",
        "command": role,
    })
    return out
