"""NVIDIA's device plugin and its config manager (nvidia/k8s-device-plugin), as the DaemonSet of the
`nvidia_device_plugin` role runs them (contract: tests/harness/kubelet/node_setup.py).

`config-manager` reads the node's `NODE_LABEL` (nvidia.com/device-plugin.config), picks that config from
`CONFIG_FILE_SRCDIR` (else `DEFAULT_CONFIG`, else the `FALLBACK_STRATEGIES`: `named` = a config called
"default", `single` = the only one), and puts it at `CONFIG_FILE_DST` (the real one links it; here it is
copied). With `ONESHOT=true` (the init container) it exits 0, or 1 when the config does not exist; as the
sidecar it waits for label changes and, when the config changed, sends `SIGNAL` (1 = SIGHUP) to
`PROCESS_TO_SIGNAL`, which needs `shareProcessNamespace: true`; a label naming a config that does not exist
is logged and ignored until the next change (so a new config must be in the ConfigMap, and its volume
updated, before the label names it).

`nvidia-device-plugin` reads `CONFIG_FILE`, finds the node's GPUs (NVML; none: it fails, or idles with
`failOnInitError: false`), and registers with the kubelet over /var/lib/kubelet/device-plugins (a
hostPath it must mount): `nvidia.com/gpu` (or `nvidia.com/gpu.shared` with `renameByDefault`) with
GPUs x time-slicing replicas devices. SIGHUP re-reads the config and registers again; SIGTERM
unregisters (the node's allocatable drops at once, its capacity after the kubelet's grace period)."""

from __future__ import annotations

import posixpath
import threading
import time
from typing import Any, Dict, List, Optional, Tuple

import yaml

from .basic import ThreadProgram

PLUGIN_DIR = "/var/lib/kubelet/device-plugins"
KLOG = "I%s %7d %s] %s"


def klog(location: str, message: str) -> str:
    stamp = time.strftime("%m%d %H:%M:%S", time.gmtime()) + ".000000"
    return KLOG % (stamp, 1, location, message)


class ConfigError(ValueError):
    pass


def parse_plugin_config(text: str) -> Dict[str, Any]:
    """The parts of a device plugin config file the simulator acts on (a ConfigError says what is wrong)."""
    try:
        doc = yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"unable to parse config file: {err}") from None
    if not isinstance(doc, dict) or doc.get("version") != "v1":
        version = doc.get("version") if isinstance(doc, dict) else doc
        raise ConfigError(f"unable to parse config file: unknown version: {version!r}")
    flags = doc.get("flags") or {}
    sharing = (doc.get("sharing") or {}).get("timeSlicing") or {}
    replicas, name = 1, "nvidia.com/gpu"
    for resource in sharing.get("resources") or []:
        if resource.get("name") != "nvidia.com/gpu":
            raise ConfigError(f"unable to validate config: resource name {resource.get('name')!r} not supported")
        replicas = resource.get("replicas", 1)
        if not isinstance(replicas, int) or replicas < 1:
            raise ConfigError(f"unable to validate config: invalid replicas: {replicas!r} (must be >= 1)")
        if resource.get("rename"):
            name = resource["rename"] if "/" in resource["rename"] else "nvidia.com/" + resource["rename"]
    if replicas > 1 and sharing.get("renameByDefault") and name == "nvidia.com/gpu":
        name = "nvidia.com/gpu.shared"
    return {"resource": name, "replicas": replicas,
            "fail_on_init_error": flags.get("failOnInitError", True) is not False,
            "fail_requests_greater_than_one": bool(sharing.get("failRequestsGreaterThanOne")) and replicas > 1}


class DevicePluginProgram(ThreadProgram):
    handles_sigterm = True

    def __init__(self, ctx: Any) -> None:
        super().__init__(ctx)
        self._hup = threading.Event()
        self.key = f"{ctx.pod['metadata']['uid']}/{ctx.name}"

    def signal(self, name: str) -> bool:
        if name in ("HUP", "SIGHUP", "1"):
            self._hup.set()
            return True
        return False

    def _configured(self) -> Optional[Dict[str, Any]]:
        path = self.ctx.env.get("CONFIG_FILE")
        if not path:
            return parse_plugin_config("version: v1\n")
        data = self.sandbox.files.read(path)
        if data is None:
            self.log(klog("main.go:178", f"error starting plugins: unable to load config: unable to finalize config: "
                                         f"unable to parse config file: error reading config file: open {path}: "
                                         "no such file or directory"))
            return None
        try:
            return parse_plugin_config(data.decode(errors="replace"))
        except ConfigError as err:
            self.log(klog("main.go:178", f"error starting plugins: unable to load config: {err}"))
            return None

    def main(self) -> int:
        self.log(klog("main.go:235", 'Starting NVIDIA Device Plugin" version="v0.17.1"'))
        node = self.ctx.node
        while True:
            self._hup.clear()
            config = self._configured()
            if config is None:
                return 1
            devices = node.gpu_devices() if node is not None else []
            if not devices:
                self.log(klog("factory.go:48", "Detected non-NVML platform: could not load NVML library: "
                                               "libnvidia-ml.so.1: cannot open shared object file"))
                if config["fail_on_init_error"]:
                    self.log(klog("main.go:178", "error starting plugins: error creating plugin manager: "
                                                 "unable to create plugin manager: platform detection failed"))
                    return 1
                self.log(klog("main.go:330", "No devices found. Waiting indefinitely."))
            elif not self.sandbox.files.exists(posixpath.join(PLUGIN_DIR, "kubelet.sock")):
                self.log(klog("main.go:178", f"error starting plugins: error starting plugin: Could not register "
                                             f"device plugin: dial unix {PLUGIN_DIR}/kubelet.sock: connect: no such "
                                             "file or directory"))
                return 1
            else:
                self._register(config, devices)
            while not (self._hup.wait(0.05) or self.sandbox.term.is_set() or self.sandbox.killed.is_set()):
                pass
            if node is not None:
                node.devices.unregister(self.key)
            if self.sandbox.killed.is_set():
                return 137
            if self.sandbox.term.is_set():
                self.log(klog("main.go:316", 'Received signal "terminated", shutting down.'))
                self.log(klog("main.go:164", "Stopping plugins."))
                return 0
            self.log(klog("main.go:312", 'Received signal "hangup", restarting.'))

    def _register(self, config: Dict[str, Any], devices: List[Any]) -> None:
        resource, replicas = config["resource"], config["replicas"]
        ids: List[Tuple[str, int]] = []
        for device in devices:
            if replicas > 1:
                ids.extend((f"{device.uuid}::{n}", device.index) for n in range(replicas))
            else:
                ids.append((device.uuid, device.index))
        self.ctx.node.devices.register(self.key, resource, ids, config["fail_requests_greater_than_one"])
        socket = resource.split("/", 1)[1].replace(".", "-")
        self.log(klog("server.go:195", f"Starting GRPC server for '{resource}'"))
        self.log(klog("server.go:139", f"Starting to serve '{resource}' on {PLUGIN_DIR}/nvidia-{socket}.sock"))
        self.log(klog("server.go:146", f"Registered device plugin for '{resource}' with Kubelet"))


class ConfigManagerProgram(ThreadProgram):
    handles_sigterm = True

    def _select(self, label: str, available: List[str]) -> str:
        env = self.ctx.env
        if label:
            name = label
        elif env.get("DEFAULT_CONFIG"):
            name = env["DEFAULT_CONFIG"]
        else:
            name = ""
            for strategy in [s.strip() for s in env.get("FALLBACK_STRATEGIES", "").split(",") if s.strip()]:
                if strategy == "named" and "default" in available:
                    name = "default"
                    break
                if strategy == "single" and len(available) == 1:
                    name = available[0]
                    break
            if not name:
                raise ConfigError("no default config specified and unable to fall back")
        if name not in available:
            raise ConfigError(f"specified config {name} does not exist")
        return name

    def _update(self, label: str) -> bool:
        """updateConfig: point CONFIG_FILE_DST at the chosen config; signal the plugin when it changed."""
        env = self.ctx.env
        source = env.get("CONFIG_FILE_SRCDIR", "/available-configs")
        target = env.get("CONFIG_FILE_DST", "/config/config.yaml")
        try:
            name = self._select(label, self.sandbox.files.listdir(source))
        except ConfigError as err:
            self.log(klog("main.go:195", f"Error: error updating config: {err}"))
            return False
        self.log(klog("main.go:245", f"Updating to config: {name}"))
        data = self.sandbox.files.read(posixpath.join(source, name)) or b""
        if self.sandbox.files.read(target) == data:
            self.log(klog("main.go:249", "Already configured. Skipping update..."))
            return True
        self.sandbox.files.write(target, data)
        if env.get("SEND_SIGNAL", "").lower() == "true":
            if not self._signal(env.get("PROCESS_TO_SIGNAL", "nvidia-device-plugin"), env.get("SIGNAL", "1")):
                return False
        self.log(klog("main.go:258", f"Successfully updated to config: {name}"))
        return True

    def main(self) -> int:
        """ONESHOT: one update, exit 0 or 1. Sidecar: an update per label change (an error is logged and it
        waits for the next change, as the real one does)."""
        env = self.ctx.env
        label_key = env.get("NODE_LABEL", "nvidia.com/device-plugin.config")
        label = (self.ctx.node.labels() if self.ctx.node is not None else {}).get(label_key, "")
        if env.get("ONESHOT", "false").lower() == "true":
            return 0 if self._update(label) else 1
        self._update(label)
        while True:
            self.log(klog("main.go:205", f"Waiting for change to '{label_key}' label"))
            while True:
                if self.sandbox.term.wait(0.05) or self.sandbox.killed.is_set():
                    return 137 if self.sandbox.killed.is_set() else 0
                current = (self.ctx.node.labels() if self.ctx.node is not None else {}).get(label_key, "")
                if current != label:
                    label = current
                    break
            self.log(klog("main.go:209", f"Label change detected: {label_key}={label}"))
            self._update(label)

    def _signal(self, process: str, signum: str) -> bool:
        if not (self.ctx.pod.get("spec") or {}).get("shareProcessNamespace"):
            self.log(klog("main.go:195", f"Error: error sending signal to '{process}': unable to get process ID: "
                                         "process not found (is shareProcessNamespace enabled?)"))
            return False
        for name, backend in self.ctx.siblings().items():
            argv = getattr(getattr(backend, "ctx", None), "argv", None) or []
            if argv and posixpath.basename(argv[0]) == process and backend.signal("HUP" if signum == "1" else signum):
                self.log(klog("main.go:260", f"Sent signal {signum} to '{process}' (container {name})"))
                return True
        self.log(klog("main.go:195", f"Error: error sending signal to '{process}': process not found"))
        return False
