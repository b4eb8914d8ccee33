"""Container programs: what runs in a container, chosen from its effective argv (the image's ENTRYPOINT and
CMD when the pod gives no command/args, as containerd does).

The kubelet hands each program a `ContainerContext` and gets back a backend with:
- `start() -> url or None` (returns at once; a server may still be loading),
- `stop(grace_seconds) -> exit code` (SIGTERM, then SIGKILL at the end of the grace period; simulated
  seconds, the program scales them with `ctx.time_scale`),
- `poll() -> None while running, else the exit code`, `logs() -> lines`,
- `listen_ports` (the ports it listens on INSIDE the pod) and `listen_host` (the address it bound),
- optionally `signal(name)` (SIGHUP and the like).

Programs, in the order they are tried (`select_program`):
1. the simulator's `custom_programs` (by the basename of argv[0]), for tests;
2. the fake vLLM: `vllm serve ...`, `python3 -m vllm.entrypoints.openai.api_server ...`,
   `sh -c "... vllm serve ..."` (tests/harness/fake_vllm.py);
3. NVIDIA's `nvidia-device-plugin` and `config-manager` (programs/nvidia.py);
4. `/pause`; the vllm role's weights check (`python3 .../check_weights.py`) and API gate (`python3
   .../api_gate.py`, the role's script read from the container's files and run: programs/api_gate.py);
   `python3 -m MODULE ...` (the gpu_router role's router), the module read from the container's files and run
   in a child process with the pod's credentials, network, GPU access and /proc (programs/python_module.py);
5. shell and coreutils: `sh -c SCRIPT`, `true`, `false`, `sleep N`, `sleep infinity`, `echo`, ...
   (programs/shell_run.py), `sh` or `python3` alone (no stdin: exit 0 at once);
6. anything else runs idle, listens nowhere, and says so in one log line.
A program the image does not have fails to start: exit 128, reason StartError, as runc reports it."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List

from .sandbox import Sandbox

Obj = Dict[str, Any]


@dataclass
class ContainerContext:
    pod: Obj
    container: Obj
    argv: List[str]
    env: Dict[str, str]
    gpu: Any  # tests.harness.gpu_ledger.GpuClaim, or None without nvidia.com/gpu
    pid: int
    time_scale: float
    ip: str
    sandbox: Sandbox
    node: Any = None  # the node agent (labels, GPUs, device manager) for programs that need the node
    siblings: Callable[[], Dict[str, Any]] = lambda: {}  # container name -> backend, same pod
    options: Dict[str, Any] = field(default_factory=dict)  # the simulator's program options

    @property
    def name(self) -> str:
        return self.container["name"]


def is_vllm(argv: List[str]) -> bool:
    from .vllm import vllm_args  # pylint: disable=import-outside-toplevel

    return vllm_args(argv) is not None


def select_program(ctx: ContainerContext) -> Any:
    """The backend for the container's effective argv (see the module docstring for the order)."""
    from .api_gate import ApiGateProgram, is_api_gate
    from .basic import ExitedProgram, IdleProgram, PauseProgram, ShellProgram, WeightsCheckProgram
    from .nvidia import ConfigManagerProgram, DevicePluginProgram
    from .python_module import PythonModuleProgram, is_python_module
    from .shell_run import split_argv
    from .vllm import VllmProgram

    argv = ctx.argv
    if not argv:
        return ExitedProgram(128, ["failed to create containerd task: failed to create shim task: OCI runtime "
                                   "create failed: runc create failed: unable to start container process: "
                                   "no command specified: unknown"], reason="StartError")
    base = posixpath.basename(argv[0])
    custom = (ctx.options.get("custom_programs") or {}).get(base)
    if custom is not None:
        return custom(ctx)
    script, _rest = split_argv(argv)
    if not ctx.sandbox.has_tool(argv[0]):
        return ExitedProgram(128, [f"failed to create containerd task: failed to create shim task: OCI runtime "
                                   f"create failed: runc create failed: unable to start container process: exec: "
                                   f"\"{argv[0]}\": executable file not found in $PATH: unknown"],
                             reason="StartError")
    if is_vllm(argv):
        return VllmProgram(ctx)
    if base == "nvidia-device-plugin":
        return DevicePluginProgram(ctx)
    if base == "config-manager":
        return ConfigManagerProgram(ctx)
    if base == "pause":
        return PauseProgram(ctx)
    if base.startswith("python") and len(argv) > 1 and posixpath.basename(argv[1]) == "check_weights.py":
        return WeightsCheckProgram(ctx)
    if is_api_gate(argv):
        return ApiGateProgram(ctx)
    if is_python_module(argv):
        return PythonModuleProgram(ctx)
    if script is not None or base in ShellProgram.MODELLED or base in ("sh", "bash", "dash", "ash"):
        return ShellProgram(ctx)
    return IdleProgram(ctx)
