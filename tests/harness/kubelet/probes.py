"""Probes as the kubelet's prober workers run them (pkg/kubelet/prober/worker.go), one worker per container
and probe type, each on its own port/path/scheme and timings (defaults: period 10 s, timeout 1 s,
failureThreshold 3, successThreshold 1, initialDelaySeconds 0; simulated seconds):

- the first probe runs when the worker starts, then one per period; none before initialDelaySeconds since
  the container started; readiness and liveness wait until the startup probe has succeeded (and readiness
  is run at once when it does);
- a result counts only after `failureThreshold` failures or `successThreshold` successes in a row;
  readiness starts as failed, liveness as succeeded;
- every failed probe is an `Unhealthy` Warning event with the kubelet's text (`Readiness probe failed:
  Get "http://10.42.0.7:8000/health": dial tcp 10.42.0.7:8000: connect: connection refused`, `HTTP probe
  failed with statuscode: 503`); a startup or liveness failure at threshold kills the container.

httpGet goes to the pod IP (or `host`) and resolves a named port through the container's ports; only what
a process of the pod listens on answers. tcpSocket connects. exec runs the command in the container
(programs/shell_run.py: a tool the image lacks fails like runc or sh says, 126/127). gRPC probes are not
simulated (they fail with a message saying so)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Callable, Dict, Optional, Tuple

import aiohttp

from .programs.sandbox import PodPorts, Sandbox
from .programs.shell_run import Killed, Shell, ShellExit, split_argv
from .timing import SimClock

DEFAULTS = {"periodSeconds": 10, "timeoutSeconds": 1, "failureThreshold": 3, "successThreshold": 1,
            "initialDelaySeconds": 0}
TITLE = {"startup": "Startup", "readiness": "Readiness", "liveness": "Liveness"}


def setting(spec: Dict[str, Any], name: str) -> float:
    value = spec.get(name)
    return float(DEFAULTS[name] if value in (None, 0) and name != "initialDelaySeconds" else (value or 0))


def resolve_port(port: Any, container: Dict[str, Any]) -> Optional[int]:
    if isinstance(port, int):
        return port
    text = str(port)
    if text.isdigit():
        return int(text)
    for entry in container.get("ports") or []:
        if entry.get("name") == text:
            return int(entry["containerPort"])
    return None


async def http_probe(session: aiohttp.ClientSession, spec: Dict[str, Any], container: Dict[str, Any],
                     net: PodPorts, timeout: float) -> Tuple[bool, str]:
    get = spec["httpGet"]
    scheme = str(get.get("scheme", "HTTP")).lower()
    host = get.get("host") or net.ip
    port = resolve_port(get.get("port"), container)
    if port is None:
        return False, f"probe errored: unable to find port {get.get('port')!r} in container {container['name']}"
    path = get.get("path", "/") or "/"
    url = f"{scheme}://{host}:{port}{path if path.startswith('/') else '/' + path}"
    real = net.resolve(host, port, inside=False)
    if real is None:
        return False, f'Get "{url}": dial tcp {host}:{port}: connect: connection refused'
    headers = {h["name"]: h["value"] for h in get.get("httpHeaders") or [] if "name" in h}
    headers.setdefault("User-Agent", "kube-probe/1.32")
    target = f"{scheme}://{real}{path if path.startswith('/') else '/' + path}"
    try:
        async with session.get(target, headers=headers, ssl=False, allow_redirects=False,
                               timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
            await resp.content.read(10 * 1024)
            if 200 <= resp.status < 400:
                return True, ""
            return False, f"HTTP probe failed with statuscode: {resp.status}"
    except asyncio.TimeoutError:
        return False, f'Get "{url}": context deadline exceeded (Client.Timeout exceeded while awaiting headers)'
    except aiohttp.ClientConnectorError:  # bound but not listening (a server still loading)
        return False, f'Get "{url}": dial tcp {host}:{port}: connect: connection refused'
    except (aiohttp.ClientError, OSError):
        if scheme == "https":
            return False, f'Get "{url}": tls: first record does not look like a TLS handshake'
        return False, f'Get "{url}": EOF'


async def tcp_probe(spec: Dict[str, Any], container: Dict[str, Any], net: PodPorts,
                    timeout: float) -> Tuple[bool, str]:
    sock = spec["tcpSocket"]
    host = sock.get("host") or net.ip
    port = resolve_port(sock.get("port"), container)
    if port is None:
        return False, f"probe errored: unable to find port {sock.get('port')!r} in container {container['name']}"
    real = net.resolve(host, port, inside=False)
    if real is None:
        return False, f"dial tcp {host}:{port}: connect: connection refused"
    real_host, real_port = real.rsplit(":", 1)
    try:
        _reader, writer = await asyncio.wait_for(asyncio.open_connection(real_host, int(real_port)), timeout)
        writer.close()
        return True, ""
    except (OSError, asyncio.TimeoutError):
        return False, f"dial tcp {host}:{port}: connect: connection refused"


def exec_in_container(sandbox: Sandbox, argv: list, timeout: float) -> Tuple[Optional[int], str]:
    """(exit code, output) of a command run in the container (a probe, a hook); None on timeout."""
    probe_box = Sandbox(sandbox.files, dict(sandbox.env), sandbox.clock, sandbox.net, sandbox.tools,
                        sandbox.pid, sandbox.hostname)
    script, _rest = split_argv(argv)
    result: Dict[str, Any] = {}

    def run() -> None:
        shell = Shell(probe_box, None, name="sh")
        try:
            if script is not None:
                result["code"] = shell.run(script)
            elif not probe_box.has_tool(argv[0]):
                result["code"], result["error"] = 126, (
                    f"rpc error: code = Unknown desc = failed to exec in container: failed to start exec: OCI runtime "
                    f"exec failed: exec failed: unable to start container process: exec: \"{argv[0]}\": executable "
                    "file not found in $PATH: unknown")
            else:
                result["code"] = shell.run_argv(argv)
        except ShellExit as done:
            result["code"] = done.code
        except Killed:
            result["code"] = None
        result["output"] = shell.output()

    thread = threading.Thread(target=run, name="exec-probe", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        probe_box.killed.set()
        thread.join(5)
        return None, f"command {' '.join(argv)!r} timed out"
    if "error" in result:
        return -1, result["error"]
    return result.get("code"), result.get("output", "")


async def exec_probe(spec: Dict[str, Any], sandbox: Sandbox, timeout: float) -> Tuple[bool, str]:
    argv = list((spec.get("exec") or {}).get("command") or [])
    if not argv:
        return False, "probe errored: no command given"
    code, output = await asyncio.get_running_loop().run_in_executor(None, exec_in_container, sandbox, argv, timeout)
    if code == 0:
        return True, ""
    if code == -1:
        return False, f"probe errored: {output}"
    return False, output


class ProbeWorker:
    """One probe of one container instance. `instance` offers: running(), started_at (monotonic),
    started (bool), sandbox, container; callbacks: on_result(kind, ok), on_failure_kill(kind), event(...)."""

    def __init__(self, kind: str, spec: Dict[str, Any], instance: Any, clock: SimClock,
                 session: aiohttp.ClientSession, event: Callable[[str, str, str], None],
                 on_result: Callable[[str, bool], None]) -> None:
        self.kind = kind
        self.spec = spec
        self.instance = instance
        self.clock = clock
        self.session = session
        self.event = event
        self.on_result = on_result
        self.trigger = asyncio.Event()
        self.last: Optional[bool] = {"readiness": False, "liveness": True}.get(kind)
        self.run_length = 0
        self.on_hold = False

    async def run(self) -> None:
        period = self.clock.real(setting(self.spec, "periodSeconds"))
        while await self.do_probe():
            try:
                await asyncio.wait_for(self.trigger.wait(), period)
            except asyncio.TimeoutError:
                pass
            self.trigger.clear()

    async def do_probe(self) -> bool:
        instance = self.instance
        if not instance.running():
            return False
        if self.clock.now() - instance.started_at < self.clock.real(setting(self.spec, "initialDelaySeconds")):
            return True
        if self.kind != "startup" and not instance.started:
            return True
        if (self.kind == "startup" and instance.started) or self.on_hold:
            return True
        ok, output = await self.probe()
        if not instance.running():
            return False
        if not ok:
            errored = output.startswith("probe errored: ")
            detail = f"errored: {output[len('probe errored: '):]}" if errored else f"failed: {output}"
            self.event("Warning", "Unhealthy", f"{TITLE[self.kind]} probe {detail}")
        if self.last == ok:
            self.run_length += 1
        else:
            self.last, self.run_length = ok, 1
        threshold = setting(self.spec, "successThreshold" if ok else "failureThreshold")
        if self.run_length < threshold:
            return True
        self.on_result(self.kind, ok)
        if self.kind in ("liveness", "startup") and not ok:
            self.on_hold = True
            self.run_length = 0
        return True

    async def probe(self) -> Tuple[bool, str]:
        timeout = self.clock.timeout(setting(self.spec, "timeoutSeconds"))
        container = self.instance.container
        net = self.instance.sandbox.net
        if "httpGet" in self.spec:
            return await http_probe(self.session, self.spec, container, net, timeout)
        if "tcpSocket" in self.spec:
            return await tcp_probe(self.spec, container, net, timeout)
        if "exec" in self.spec:
            return await exec_probe(self.spec, self.instance.sandbox, timeout)
        return False, "probe errored: the simulator runs httpGet, tcpSocket and exec probes only"
