"""The fake vLLM (tests/harness/fake_vllm.py) as a container program.

The server is configured from the container's real argv and listens on a free loopback port; the kubelet
maps podIP:<--port, default 8000> to it (unless it bound loopback with `--host 127.0.0.1`: then only the
pod itself reaches it). Options from the simulator (`program_options["vllm"]`): `load_seconds` and
`shutdown_seconds` (simulated), `overrides(ctx) -> dict` (more FakeVLLMServer keyword arguments, e.g.
`crash_during_load`). The server gets the pod's GPU claim (its memory goes through the node's ledger), the
container's environment, the time scale, and the vLLM release its image tag names."""

from __future__ import annotations

import posixpath
import re
import shlex
from typing import Any, Dict, List, Optional

SERVER_MODULE = "vllm.entrypoints.openai.api_server"


def _expand(token: str, positional: List[str], env: Dict[str, str]) -> List[str]:
    """A shell word after shlex: "$@" is every positional parameter, $1..$9 one, $VAR / ${VAR} the env."""
    if token == "$@":
        return list(positional[1:])
    match = re.fullmatch(r"\$\{?([A-Za-z_][A-Za-z0-9_]*|[0-9])\}?", token)
    if match:
        name = match.group(1)
        if name.isdigit():
            index = int(name)
            return [positional[index]] if index < len(positional) else []
        return [env[name]] if name in env else []
    return [token]


def vllm_args(argv: List[str], env: Optional[Dict[str, str]] = None) -> Optional[List[str]]:
    """The server's arguments when `argv` starts vLLM's OpenAI server, else None. For `sh -c SCRIPT $0 ARGS`,
    the script's `vllm serve ...` with "$@", $1 and $VAR expanded (what runs before it is taken as done)."""
    argv = [str(a) for a in argv]
    if len(argv) >= 3 and posixpath.basename(argv[0]) in ("sh", "bash", "dash", "ash") and \
            argv[1].startswith("-") and "c" in argv[1]:
        try:
            lexer = shlex.shlex(argv[2], posix=True, punctuation_chars=True)
            lexer.whitespace_split = True
            tokens = list(lexer)
        except ValueError:
            return None
        positional = argv[3:]
        for i, token in enumerate(tokens):
            if (posixpath.basename(token) == "vllm" and tokens[i + 1:i + 2] == ["serve"]) or token == SERVER_MODULE:
                rest = tokens[i + (2 if token != SERVER_MODULE else 1):]
                cut = next((j for j, t in enumerate(rest) if t in ("&&", "||", ";", "|", "&")), len(rest))
                return [word for token in rest[:cut] for word in _expand(token, positional, env or {})]
        return None
    if argv[:1] == ["exec"]:
        argv = argv[1:]
    if len(argv) >= 2 and posixpath.basename(argv[0]) == "vllm" and argv[1] == "serve":
        return argv[2:]
    if len(argv) >= 3 and posixpath.basename(argv[0]).startswith("python") and argv[1] == "-m" \
            and argv[2] == SERVER_MODULE:
        return argv[3:]
    return None


def _option(args: List[str], name: str) -> Optional[str]:
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


class VllmProgram:
    def __init__(self, ctx: Any) -> None:
        from tests.harness.fake_vllm import FakeVLLMServer, version_from_image  # pylint: disable=C0415

        self.ctx = ctx
        args = vllm_args(ctx.argv, ctx.env) or []
        options: Dict[str, Any] = dict(ctx.options.get("vllm") or {})
        overrides = options.pop("overrides", None)
        kwargs: Dict[str, Any] = {"port": 0, "host": "127.0.0.1", "time_scale": ctx.time_scale, "gpu": ctx.gpu,
                                  "env": dict(ctx.env)}
        for key in ("load_seconds", "shutdown_seconds"):
            if options.get(key) is not None:
                kwargs[key] = options[key]
        version = version_from_image(ctx.container.get("image", ""))
        if version and "--fake-version" not in args:
            kwargs["version"] = version
        if callable(overrides):
            kwargs.update(overrides(ctx) or {})
        port = _option(args, "--port")
        self.listen_ports = [int(port) if port and port.isdigit() else 8000]
        self.listen_host = _option(args, "--host") or "0.0.0.0"
        self.error: Optional[str] = None
        self.server = None
        try:
            self.server = FakeVLLMServer.from_args(["vllm", "serve", *args], **kwargs)
        except ValueError as err:  # vLLM's argparse refuses the command line: exit 2 with its usage error
            self.error = f"vllm serve: error: {err}"

    def start(self) -> Optional[str]:
        if self.server is None:
            return None
        return self.server.start()

    def poll(self) -> Optional[int]:
        if self.server is None:
            return 2
        return self.server.poll()

    def stop(self, grace_seconds: float) -> int:
        """SIGTERM; `grace_seconds` simulated (the fake vLLM takes real seconds)."""
        if self.server is None:
            return 2
        code = self.server.stop(grace_seconds * self.ctx.time_scale)
        return code if isinstance(code, int) else 0

    def logs(self) -> List[str]:
        if self.server is None:
            return ["usage: vllm serve [model_tag] [options]", self.error or ""]
        return self.server.logs()

    def signal(self, name: str) -> bool:
        return False
