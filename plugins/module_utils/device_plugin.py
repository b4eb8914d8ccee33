# -*- coding: utf-8 -*-
# Copyright: baremetal.gpu maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The NVIDIA device plugin on a cluster: render, apply, and wait until every GPU node advertises its GPUs.

Used by ``baremetal.gpu.nvidia_device_plugin`` (the ``nvidia_device_plugin`` role) and the tests.

* ``render()`` builds what NVIDIA's Helm chart (deployments/helm/nvidia-device-plugin in
  NVIDIA/k8s-device-plugin) builds with an embedded configuration map: a ConfigMap with one plugin
  configuration file per key, a ServiceAccount with a ClusterRole reading nodes for the config manager,
  and a DaemonSet whose init container and sidecar (``config-manager``) copy the configuration named by the
  node's ``nvidia.com/device-plugin.config`` label to ``/config/config.yaml`` for the plugin.
* ``ensure_runtime_class()`` creates the ``nvidia`` RuntimeClass only when it is missing (k3s ships one).
* ``wait_nodes()`` watches Nodes until each GPU node is Ready and its allocatable ``nvidia.com/gpu`` (or
  ``nvidia.com/gpu.shared`` with ``renameByDefault``) equals its GPUs times the time-slicing replicas of
  its configuration; on timeout the error names the node, its plugin pod's phase, events and log lines.

Plugin configuration format (api/config/v1 of the plugin): ``version: v1``, ``flags``, and for sharing
``sharing.timeSlicing`` with ``renameByDefault``, ``failRequestsGreaterThanOne`` and ``resources``
(``name``, ``replicas``). The plugin refuses time-slicing with fewer than 2 replicas, so a configuration
of 1 replica is written without a ``sharing`` section. Changing a node's label makes the sidecar copy the
other configuration and restart the plugin (SIGHUP); changing a configuration's content changes the pod
template's ``checksum/config`` annotation, which rolls the DaemonSet (as the chart does).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import copy
import hashlib
import json
import re
import time

from ansible_collections.baremetal.gpu.plugins.module_utils import kube as k8s

DEFAULT_VERSION = "v0.19.3"
DEFAULT_REPOSITORY = "nvcr.io/nvidia/k8s-device-plugin"
CONFIG_LABEL = "nvidia.com/device-plugin.config"
GPU_PRESENT_LABEL = "nvidia.com/gpu.present"
GPU_COUNT_LABEL = "nvidia.com/gpu.count"
GPU_RESOURCE = "nvidia.com/gpu"
SHARED_SUFFIX = ".shared"
CONFIG_DIR = "/available-configs"
CONFIG_FILE = "/config/config.yaml"
KUBELET_DEVICE_PLUGINS = "/var/lib/kubelet/device-plugins"
MPS_ROOT = "/run/nvidia/mps"
DEFAULT_TOLERATIONS = (
    {"key": "CriticalAddonsOnly", "operator": "Exists"},
    {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
)

_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_CONFIG_NAME_RE = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_VERSION_RE = re.compile(r"^v\d+\.\d+\.\d+(-rc\.\d+)?$")
_YAML_WORDS = ("true", "false", "yes", "no", "on", "off", "null", "y", "n")
_CONFIG_KEYS = ("replicas", "rename_by_default", "fail_requests_greater_than_one")


class DevicePluginError(Exception):
    """Bad input (the message lists every problem) or a cluster that cannot take the plugin."""


class NodesNotReady(Exception):
    """GPU nodes did not advertise their GPUs before the deadline; ``report`` has one entry per node."""

    def __init__(self, message, report):
        self.report = report
        super(NodesNotReady, self).__init__(message)


# --- options -----------------------------------------------------------------------------------------

def _int(value):
    if isinstance(value, bool):
        raise ValueError("a boolean")
    if isinstance(value, float) and value != int(value):
        raise ValueError("not a whole number")
    return int(value)


def normalize_configs(configs, default_config="default"):
    """{name: {replicas, rename_by_default, fail_requests_greater_than_one}} with the default config added
    (1 replica) when missing; raises DevicePluginError listing every problem."""
    problems = []
    out = {}
    for name, entry in sorted((configs or {}).items()):
        name = str(name)
        if len(name) > 63 or not _CONFIG_NAME_RE.match(name):
            problems.append("configuration name %r must be a ConfigMap key and a node label value: 1-63 "
                            "characters [A-Za-z0-9-_.], alphanumeric at both ends" % name)
            continue
        entry = dict(entry or {})
        unknown = sorted(k for k in entry if k not in _CONFIG_KEYS)
        if unknown:
            problems.append("configuration %s: unknown key(s) %s (known: %s)"
                            % (name, ", ".join(unknown), ", ".join(_CONFIG_KEYS)))
        try:
            replicas = _int(entry.get("replicas", 1))
        except (TypeError, ValueError):
            problems.append("configuration %s: replicas must be a whole number, got %r" % (name, entry.get("replicas")))
            continue
        if replicas < 1:
            problems.append("configuration %s: time-slicing replicas must be 1 (no sharing) or more, got %d"
                            % (name, replicas))
            continue
        out[name] = {"replicas": replicas,
                     "rename_by_default": bool(entry.get("rename_by_default", False)),
                     "fail_requests_greater_than_one": bool(entry.get("fail_requests_greater_than_one", False))}
    if not default_config or not _CONFIG_NAME_RE.match(str(default_config)):
        problems.append("default configuration name %r is not a valid configuration name" % (default_config,))
    elif default_config not in out and not problems:
        out[default_config] = {"replicas": 1, "rename_by_default": False, "fail_requests_greater_than_one": False}
    if problems:
        raise DevicePluginError("nvidia_device_plugin cannot continue, nothing was changed: " + "; ".join(problems))
    return out


def resource_name(entry):
    """The extended resource a configuration advertises."""
    if entry["replicas"] > 1 and entry["rename_by_default"]:
        return GPU_RESOURCE + SHARED_SUFFIX
    return GPU_RESOURCE


def config_document(entry, fail_on_init_error=True):
    """One configuration in the plugin's own file format (api/config/v1)."""
    document = {"version": "v1", "flags": {"migStrategy": "none", "failOnInitError": bool(fail_on_init_error)}}
    if entry["replicas"] > 1:
        document["sharing"] = {"timeSlicing": {
            "renameByDefault": entry["rename_by_default"],
            "failRequestsGreaterThanOne": entry["fail_requests_greater_than_one"],
            "resources": [{"name": GPU_RESOURCE, "replicas": entry["replicas"]}],
        }}
    return document


def _yaml_scalar(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    text = str(value)
    if re.match(r"^[A-Za-z][A-Za-z0-9./_-]*$", text) and text.lower() not in _YAML_WORDS:
        return text
    return json.dumps(text)  # a double-quoted YAML string


def to_yaml(value, indent=0):
    """Block YAML for the configuration documents (mappings, lists of mappings, scalars), keys in a
    fixed order, so the ConfigMap's content is the same from run to run."""
    pad = " " * indent
    lines = []
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, (dict, list)) and item:
                lines.append("%s%s:" % (pad, key))
                lines.append(to_yaml(item, indent + 2))
            else:
                lines.append("%s%s: %s" % (pad, key, _yaml_scalar(item) if not isinstance(item, (dict, list))
                                           else ("{}" if isinstance(item, dict) else "[]")))
    else:
        for item in value:
            text = to_yaml(item, indent + 2)
            lines.append("%s- %s" % (pad, text.lstrip()))
    return "\n".join(lines)


def config_text(entry, fail_on_init_error=True):
    return to_yaml(config_document(entry, fail_on_init_error)) + "\n"


def validate_options(options):
    """Check the module's options beyond their types; returns the normalized configurations."""
    problems = []
    for key in ("name", "namespace", "runtime_class"):
        value = str(options.get(key) or "")
        if len(value) > 63 or not _NAME_RE.match(value):
            problems.append("%s %r must be a DNS label (lower case letters, digits, '-')" % (key, value))
    version = str(options.get("version") or "")
    if not _VERSION_RE.match(version):
        problems.append("version %r is not a device plugin release tag such as %s" % (version, DEFAULT_VERSION))
    if options.get("wait_timeout") is not None and float(options["wait_timeout"]) <= 0:
        problems.append("wait_timeout must be more than 0 seconds")
    for name, count in sorted((options.get("node_gpus") or {}).items()):
        try:
            if _int(count) < 1:
                raise ValueError
        except (TypeError, ValueError):
            problems.append("node_gpus[%s] must be a whole number of GPUs (1 or more), got %r" % (name, count))
    try:
        configs = normalize_configs(options.get("configs"), options.get("default_config") or "default")
    except DevicePluginError as exc:
        problems.append(str(exc).split(": ", 1)[1])
        configs = {}
    if problems:
        raise DevicePluginError("nvidia_device_plugin cannot continue, nothing was changed: " + "; ".join(problems))
    return configs


# --- manifests ---------------------------------------------------------------------------------------

def image(options):
    return options.get("image") or "%s:%s" % (DEFAULT_REPOSITORY, options["version"])


def selector_labels(options):
    return {"app.kubernetes.io/name": "nvidia-device-plugin", "app.kubernetes.io/instance": options["name"]}


def common_labels(options):
    labels = dict(selector_labels(options))
    labels.update({"app.kubernetes.io/version": options["version"], k8s.MANAGED_BY_LABEL: k8s.FIELD_MANAGER})
    return labels


def _config_manager(options, oneshot):
    env = [
        {"name": "ONESHOT", "value": "true" if oneshot else "false"},
        {"name": "KUBECONFIG", "value": ""},
        {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
        {"name": "NODE_LABEL", "value": CONFIG_LABEL},
        {"name": "CONFIG_FILE_SRCDIR", "value": CONFIG_DIR},
        {"name": "CONFIG_FILE_DST", "value": CONFIG_FILE},
        {"name": "DEFAULT_CONFIG", "value": options["default_config"]},
        {"name": "FALLBACK_STRATEGIES", "value": "named,single"},
        {"name": "SEND_SIGNAL", "value": "false" if oneshot else "true"},
        {"name": "SIGNAL", "value": "" if oneshot else "1"},  # SIGHUP
        {"name": "PROCESS_TO_SIGNAL", "value": "" if oneshot else "nvidia-device-plugin"},
    ]
    container = {
        "name": "nvidia-device-plugin-init" if oneshot else "nvidia-device-plugin-sidecar",
        "image": image(options),
        "imagePullPolicy": options.get("image_pull_policy") or "IfNotPresent",
        "command": ["config-manager"],
        "env": env,
        "volumeMounts": [{"name": "available-configs", "mountPath": CONFIG_DIR},
                         {"name": "config", "mountPath": "/config"}],
    }
    if not oneshot:
        container["securityContext"] = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    return container


def render(options, configs):
    """The plugin's objects in apply order: ConfigMap, ServiceAccount, ClusterRole, ClusterRoleBinding,
    DaemonSet (the RuntimeClass is handled by ``ensure_runtime_class``)."""
    name, namespace = options["name"], options["namespace"]
    labels = common_labels(options)
    data = dict((key, config_text(configs[key], options.get("fail_on_init_error", True))) for key in sorted(configs))
    checksum = hashlib.sha256(json.dumps(data, sort_keys=True).encode("utf-8")).hexdigest()
    account = name + "-service-account"
    role = name + "-role"
    config_map = {"apiVersion": "v1", "kind": "ConfigMap",
                  "metadata": {"name": options["config_map"], "namespace": namespace, "labels": labels},
                  "data": data}
    service_account = {"apiVersion": "v1", "kind": "ServiceAccount",
                       "metadata": {"name": account, "namespace": namespace, "labels": labels}}
    cluster_role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                    "metadata": {"name": role, "labels": labels},
                    "rules": [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "watch"]}]}
    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
               "metadata": {"name": role + "-binding", "labels": labels},
               "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}],
               "roleRef": {"kind": "ClusterRole", "name": role, "apiGroup": "rbac.authorization.k8s.io"}}
    plugin = {
        "name": "nvidia-device-plugin-ctr",
        "image": image(options),
        "imagePullPolicy": options.get("image_pull_policy") or "IfNotPresent",
        "command": ["nvidia-device-plugin"],
        "env": [{"name": "MPS_ROOT", "value": MPS_ROOT},
                {"name": "CONFIG_FILE", "value": CONFIG_FILE},
                {"name": "NVIDIA_VISIBLE_DEVICES", "value": "all"},
                {"name": "NVIDIA_DRIVER_CAPABILITIES", "value": "compute,utility"}],
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
        "volumeMounts": [{"name": "kubelet-device-plugins-dir", "mountPath": KUBELET_DEVICE_PLUGINS},
                         {"name": "mps-shm", "mountPath": "/dev/shm"},
                         {"name": "mps-root", "mountPath": "/mps"},
                         {"name": "cdi-root", "mountPath": "/var/run/cdi"},
                         {"name": "available-configs", "mountPath": CONFIG_DIR},
                         {"name": "config", "mountPath": "/config"}],
    }
    if options.get("resources"):
        plugin["resources"] = copy.deepcopy(options["resources"])
    pod_spec = {
        "priorityClassName": options.get("priority_class") or "system-node-critical",
        "serviceAccountName": account,
        "shareProcessNamespace": True,
        "securityContext": {},
        "initContainers": [_config_manager(options, oneshot=True)],
        "containers": [_config_manager(options, oneshot=False), plugin],
        "volumes": [
            {"name": "kubelet-device-plugins-dir", "hostPath": {"path": KUBELET_DEVICE_PLUGINS, "type": "Directory"}},
            {"name": "mps-root", "hostPath": {"path": MPS_ROOT, "type": "DirectoryOrCreate"}},
            {"name": "mps-shm", "hostPath": {"path": MPS_ROOT + "/shm"}},
            {"name": "cdi-root", "hostPath": {"path": "/var/run/cdi", "type": "DirectoryOrCreate"}},
            {"name": "available-configs", "configMap": {"name": options["config_map"]}},
            {"name": "config", "emptyDir": {}},
        ],
        "nodeSelector": dict(options.get("node_selector") or {GPU_PRESENT_LABEL: "true"}),
        "tolerations": copy.deepcopy(list(options["tolerations"]) if options.get("tolerations") is not None
                                     else list(DEFAULT_TOLERATIONS)),
    }
    if not options.get("default_runtime_nvidia"):
        pod_spec["runtimeClassName"] = options["runtime_class"]
    if options.get("image_pull_secrets"):
        pod_spec["imagePullSecrets"] = [{"name": s} for s in options["image_pull_secrets"]]
    daemon_set = {
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "selector": {"matchLabels": selector_labels(options)},
            "updateStrategy": {"type": "RollingUpdate"},
            "template": {"metadata": {"labels": labels, "annotations": {"checksum/config": checksum}},
                         "spec": pod_spec},
        },
    }
    return [config_map, service_account, cluster_role, binding, daemon_set]


def runtime_class(name, handler):
    return {"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass", "metadata": {"name": name}, "handler": handler}


def ensure_runtime_class(kube, name, handler, check_mode=False):
    """Create RuntimeClass ``name`` only when it is missing; leave one k3s (or anyone) created alone.
    Returns a result entry like ``apply_all``'s; raises DevicePluginError when one exists with another
    handler (pods would then run with a runtime that cannot see the GPUs)."""
    existing = kube.get("node.k8s.io/v1", "RuntimeClass", name)
    result = {"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass", "namespace": None, "name": name}
    if existing is not None:
        if existing.get("handler") != handler:
            raise DevicePluginError("RuntimeClass %s exists with handler %r, not %r: the device plugin would run "
                                    "without the NVIDIA runtime; fix or delete it, or set runtime_class to another "
                                    "name" % (name, existing.get("handler"), handler))
        managers = sorted(set(m.get("manager") for m in (existing.get("metadata") or {}).get("managedFields") or []
                              if m.get("manager")))
        result.update(action="unchanged", changed=False, created_by=", ".join(managers) or "unknown")
        return result
    body = runtime_class(name, handler)
    body["metadata"]["labels"] = {k8s.MANAGED_BY_LABEL: k8s.FIELD_MANAGER}
    try:
        kube.request("POST", kube.path("node.k8s.io/v1", "RuntimeClass"),
                     [("fieldManager", k8s.FIELD_MANAGER), ("dryRun", "All" if check_mode else None)], body=body)
    except k8s.KubeError as exc:
        if exc.status != 409:  # created by k3s in the meantime
            raise
    result.update(action="created", changed=True)
    return result


# --- the wait ----------------------------------------------------------------------------------------

def node_ready(node):
    for cond in (node.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return cond.get("status") == "True", cond
    return False, None


def expectation(node, configs, default_config, node_gpus=None):
    """What the plugin must advertise on ``node``: {config, replicas, gpus, resource, expected} or
    {problem} when it cannot be known (no GPU count, or a configuration the ConfigMap lacks)."""
    meta = node.get("metadata") or {}
    name = meta.get("name")
    labels = meta.get("labels") or {}
    key = labels.get(CONFIG_LABEL) or default_config
    if key not in configs:
        return {"config": key, "problem": "node %s selects device plugin configuration %r (label %s) but the "
                                          "ConfigMap has only %s: the config manager would refuse to start"
                                          % (name, key, CONFIG_LABEL, ", ".join(sorted(configs)))}
    entry = configs[key]
    gpus = (node_gpus or {}).get(name)
    if gpus is None:
        text = labels.get(GPU_COUNT_LABEL)
        if text is None or not str(text).isdigit():
            return {"config": key, "problem": "node %s has no %s label to say how many GPUs it has (the "
                                              "k3s_gpu_worker role sets it from gpu_facts); pass node_gpus"
                                              % (name, GPU_COUNT_LABEL)}
        gpus = int(text)
    gpus = int(gpus)
    return {"config": key, "replicas": entry["replicas"], "gpus": gpus, "resource": resource_name(entry),
            "expected": gpus * entry["replicas"]}


def node_state(node, configs, default_config, node_gpus=None):
    """{name, ready, expectation..., allocatable, done} for one Node object."""
    state = {"name": (node.get("metadata") or {}).get("name")}
    state.update(expectation(node, configs, default_config, node_gpus))
    state["ready"] = node_ready(node)[0]
    allocatable = (node.get("status") or {}).get("allocatable") or {}
    state["allocatable"] = dict((k, v) for k, v in allocatable.items() if k.startswith(GPU_RESOURCE))
    if "problem" in state:
        state["done"] = False
        return state
    have = allocatable.get(state["resource"])
    state["done"] = bool(state["ready"] and have is not None and str(have).isdigit() and int(have) == state["expected"])
    return state


def _selected(node, selector):
    labels = (node.get("metadata") or {}).get("labels") or {}
    return all(labels.get(k) == v for k, v in (selector or {}).items())


def wait_nodes(kube, configs, default_config, names=None, node_selector=None, node_gpus=None, timeout=300,
               daemon_set=None, clock=time.monotonic, log_lines=20, event_count=5, started=None):
    """Wait until every GPU node is Ready and advertises GPUs x replicas; returns per-node states.

    ``names``: the nodes that must be there (all of them, whether or not they match ``node_selector``);
    when empty, every node matching ``node_selector`` and at least one. One list, then a watch from its
    resourceVersion (list again on 410), under a monotonic deadline. A node whose configuration or GPU
    count cannot be known fails at once. On timeout raises NodesNotReady naming each node that is not
    done: its Ready condition, what it advertises against what is expected, its plugin pod's phase,
    container states, events and last log lines.
    """
    started = clock() if started is None else started  # when the caller's wait began (for messages)
    deadline = clock() + float(timeout)
    wanted = list(names or [])
    nodes = {}
    seconds = {}

    def evaluate():
        states = {}
        for name, node in nodes.items():
            if wanted and name not in wanted:
                continue
            if not wanted and not _selected(node, node_selector):
                continue
            states[name] = node_state(node, configs, default_config, node_gpus)
            if states[name]["done"] and name not in seconds:
                seconds[name] = round(clock() - started, 3)
        problems = [s["problem"] for s in states.values() if "problem" in s]
        if problems:
            raise DevicePluginError("; ".join(sorted(problems)))
        complete = (all(n in states and states[n]["done"] for n in wanted) if wanted
                    else bool(states) and all(s["done"] for s in states.values()))
        return states, complete

    while True:
        items, rv = kube.list("v1", "Node")
        nodes = dict(((n.get("metadata") or {}).get("name"), n) for n in items)
        states, complete = evaluate()
        if complete or clock() >= deadline:
            break
        try:
            for event_type, obj in kube.watch("v1", "Node", None, rv, deadline, clock=clock):
                if event_type == "BOOKMARK":
                    continue
                name = (obj.get("metadata") or {}).get("name")
                if event_type == "DELETED":
                    nodes.pop(name, None)
                else:
                    nodes[name] = obj
                states, complete = evaluate()
                if complete:
                    break
        except k8s.KubeError as exc:
            if exc.status != 410:
                raise
            continue  # too old a resourceVersion: list again
        if complete or clock() >= deadline:
            break
    if complete:
        for state in states.values():
            state["seconds"] = seconds.get(state["name"])
        return [states[n] for n in sorted(states)]

    elapsed = clock() - started
    pending = [n for n in wanted if n not in states or not states[n]["done"]] if wanted else \
        sorted(n for n, s in states.items() if not s["done"])
    report = []
    lines = []
    ds_obj = None
    if daemon_set:
        ds_obj = kube.get("apps/v1", "DaemonSet", daemon_set["name"], daemon_set["namespace"])
    if not pending and not wanted:
        lines.append("no node carries %s" % ", ".join("%s=%s" % kv for kv in sorted((node_selector or {}).items()))
                     + ": no GPU node has joined the cluster, or the k3s_gpu_worker role did not label it")
    for name in pending:
        entry = diagnose_node(kube, name, nodes.get(name), states.get(name), node_selector, ds_obj,
                              log_lines=log_lines, event_count=event_count)
        report.append(entry)
        lines.append(entry["text"])
    if ds_obj is not None:
        lines.append("DaemonSet %s/%s: %s" % (daemon_set["namespace"], daemon_set["name"], k8s.ready_summary(ds_obj)))
    if pending:
        head = "%d GPU node(s) did not advertise their GPUs after %.1f s" % (len(pending), elapsed)
    else:
        head = "no GPU node advertised its GPUs after %.1f s" % elapsed
    raise NodesNotReady(head + "\n" + "\n".join(lines), report)


def precheck_nodes(kube, configs, default_config, names=None, node_selector=None, node_gpus=None):
    """Fail at once for registered GPU nodes whose expectation cannot be known (a configuration the
    ConfigMap lacks, no GPU count): waiting would only time out."""
    problems = []
    for item in kube.items("v1", "Node"):
        name = (item.get("metadata") or {}).get("name")
        if (names and name not in names) or (not names and not _selected(item, node_selector)):
            continue
        problem = expectation(item, configs, default_config, node_gpus).get("problem")
        if problem:
            problems.append(problem)
    if problems:
        raise DevicePluginError("; ".join(sorted(problems)))


def _why_no_pod(node, node_selector, ds_obj):
    labels = (node.get("metadata") or {}).get("labels") or {}
    missing = ["%s=%s" % (k, v) for k, v in sorted((node_selector or {}).items()) if labels.get(k) != v]
    if missing:
        return "the node lacks the plugin's node selector label(s) %s" % ", ".join(missing)
    tolerations = (((ds_obj or {}).get("spec") or {}).get("template") or {}).get("spec", {}).get("tolerations") or []
    for taint in (node.get("spec") or {}).get("taints") or []:
        if taint.get("effect") not in ("NoSchedule", "NoExecute"):
            continue
        tolerated = any((t.get("operator") == "Exists" and (not t.get("key") or t.get("key") == taint.get("key"))
                         or (t.get("key") == taint.get("key") and t.get("value") == taint.get("value")))
                        and (not t.get("effect") or t.get("effect") == taint.get("effect")) for t in tolerations)
        if not tolerated:
            return "the plugin does not tolerate the node's taint %s=%s:%s" % (
                taint.get("key"), taint.get("value", ""), taint.get("effect"))
    return "see the DaemonSet's events"


def diagnose_node(kube, name, node, state, node_selector, ds_obj, log_lines=20, event_count=5):
    """What the plugin shows on one node: Ready, advertised vs expected, its plugin pod, events, logs."""
    entry = {"node": name, "pods": []}
    if node is None:
        entry["text"] = "node %s: not registered with the cluster (is k3s running on it and joined?)" % name
        return entry
    ready, cond = node_ready(node)
    state = state or {}
    entry.update(ready=ready, allocatable=state.get("allocatable"), expected=state.get("expected"),
                 resource=state.get("resource"))
    lines = ["node %s: Ready=%s%s; allocatable %s, expected %s=%s (%s GPU(s) x %s replica(s), configuration %r)" % (
        name, cond.get("status") if cond else "unknown",
        " (%s: %s)" % (cond.get("reason", ""), cond.get("message", "")) if cond and not ready else "",
        ", ".join("%s=%s" % kv for kv in sorted((state.get("allocatable") or {}).items())) or "no nvidia.com/gpu",
        state.get("resource"), state.get("expected"), state.get("gpus"), state.get("replicas"), state.get("config"))]
    for event in k8s.events_for(kube, None, "Node", name, event_count):
        lines.append("  node event: " + event)
    if ds_obj is not None:
        meta = ds_obj.get("metadata") or {}
        match = ((ds_obj.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        pods = kube.items("v1", "Pod", meta.get("namespace"),
                          label_selector=",".join("%s=%s" % kv for kv in sorted(match.items())),
                          field_selector="spec.nodeName=%s" % name)
        if not pods:
            lines.append("  no %s pod on this node: %s" % (meta.get("name"), _why_no_pod(node, node_selector, ds_obj)))
            for event in k8s.events_for(kube, meta.get("namespace"), "DaemonSet", meta.get("name"), event_count):
                lines.append("  daemonset event: " + event)
        pods.sort(key=lambda p: (p.get("metadata") or {}).get("creationTimestamp") or "", reverse=True)
        for pod in pods[:1]:
            info, pod_lines = k8s.pod_report(kube, meta.get("namespace"), pod, log_lines=log_lines,
                                             event_count=event_count)
            entry["pods"].append(info)
            lines.extend(pod_lines)
    entry["text"] = "\n".join(lines)
    return entry


# --- everything the module does ----------------------------------------------------------------------

def deploy(kube, options, check_mode=False, want_diff=False, clock=time.monotonic, out=None):
    """Validate, make sure the RuntimeClass exists, server-side apply the plugin, wait for its rollout and
    for the GPU nodes. Fills and returns ``out`` (results, configs, rollout, nodes, timings), so that a
    caller still has what was applied when the wait raises."""
    options = dict(options)
    options.setdefault("default_config", "default")
    configs = validate_options(options)
    manifests = render(options, configs)
    out = out if out is not None else {}
    out.update({"results": [], "nodes": [], "configs": dict((k, dict(v, resource=resource_name(v)))
                                                            for k, v in configs.items())})
    timings = out.setdefault("timings", {})
    started = clock()
    if not options.get("default_runtime_nvidia"):
        out["results"].append(ensure_runtime_class(kube, options["runtime_class"], options.get("runtime_handler")
                                                   or options["runtime_class"], check_mode=check_mode))
    results, applied = k8s.apply_all(kube, manifests, check_mode=check_mode, want_diff=want_diff,
                                     default_namespace=options["namespace"], clock=clock)
    out["results"].extend(results)
    timings["apply_s"] = round(clock() - started, 4)
    if options.get("wait", True) and not check_mode:
        t0 = clock()
        timeout = float(options.get("wait_timeout") or 300)
        wait_args = dict(node_selector=options.get("node_selector") or {GPU_PRESENT_LABEL: "true"},
                         names=options.get("nodes"), node_gpus=options.get("node_gpus"),
                         daemon_set={"name": options["name"], "namespace": options["namespace"]},
                         clock=clock, log_lines=options.get("log_lines", 20))
        precheck_nodes(kube, configs, options["default_config"], wait_args["names"], wait_args["node_selector"],
                       wait_args["node_gpus"])
        try:
            done = k8s.wait_ready(kube, [("apps/v1", "DaemonSet", options["namespace"], options["name"])], timeout,
                                  clock=clock, log_lines=options.get("log_lines", 20))
        except k8s.RolloutTimeout as exc:
            # The plugin's pods did not all roll out: say so, and what each GPU node shows right now.
            try:
                wait_nodes(kube, configs, options["default_config"], timeout=0, started=t0, **wait_args)
            except NodesNotReady as nodes_exc:
                raise NodesNotReady("the device plugin DaemonSet did not roll out: %s\n%s" % (exc, nodes_exc),
                                    exc.report + nodes_exc.report)
            raise NodesNotReady("the device plugin DaemonSet did not roll out: %s" % exc, exc.report)
        out["rollout"] = dict(("%s/%s/%s" % key, seconds) for key, seconds in done.items())
        remaining = max(1.0, timeout - (clock() - t0))
        out["nodes"] = wait_nodes(kube, configs, options["default_config"], timeout=remaining, started=t0,
                                  **wait_args)
        timings["wait_s"] = round(clock() - t0, 4)
    timings["total_s"] = round(clock() - started, 4)
    return out
