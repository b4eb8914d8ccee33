"""The vllm role's API gate (roles/vllm/files/api_gate.py) as a container program: `python3 <path>/api_gate.py
--listen-port P --upstream-port E`.

The script is read from the container's own files (the ConfigMap volume the pod mounts), so what runs is what
the role shipped; a pod that does not mount it fails as python does ("can't open file", exit 2). The gate
listens on a real loopback port that the pod network maps to podIP:P, and reaches its upstream through the
pod's loopback: `127.0.0.1:E` resolves to whatever process of the same pod listens on E now (vLLM's engine
port), or refuses the connection when none does."""

from __future__ import annotations

import threading
import types
from typing import Any, List, Optional

SCRIPT = "api_gate.py"


def is_api_gate(argv: List[str]) -> bool:
    import posixpath  # pylint: disable=import-outside-toplevel

    return len(argv) > 1 and posixpath.basename(argv[0]).startswith("python") and \
        posixpath.basename(argv[1]) == SCRIPT


class ApiGateProgram:
    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
        self._logs: List[str] = []
        self.exit_code: Optional[int] = None
        self.gate = None
        self.listen_ports: List[int] = []
        self.listen_host = "0.0.0.0"
        self._thread: Optional[threading.Thread] = None
        source = ctx.sandbox.files.read(ctx.argv[1])
        if source is None:
            self._logs.append(f"python3: can't open file '{ctx.argv[1]}': [Errno 2] No such file or directory")
            self.exit_code = 2
            return
        module = types.ModuleType("api_gate")
        module.__file__ = ctx.argv[1]
        exec(compile(source, ctx.argv[1], "exec"), module.__dict__)  # pylint: disable=exec-used
        try:
            self.args = module.parse_args(ctx.argv[2:])
        except SystemExit as exc:  # argparse refused the command line
            self._logs.append(f"api_gate.py: error: bad arguments {ctx.argv[2:]!r}")
            self.exit_code = int(exc.code or 2)
            return
        self.module = module
        self.listen_ports = [self.args.listen_port]
        self.listen_host = self.args.listen_host

    def _upstream(self):
        real = self.ctx.sandbox.net.resolve(self.args.upstream_host, self.args.upstream_port)
        if not real:
            raise ConnectionRefusedError(111, "Connection refused")
        host, port = real.rsplit(":", 1)
        return host, int(port)

    def start(self) -> Optional[str]:
        if self.exit_code is not None:
            return None
        self.gate = self.module.Gate(("127.0.0.1", 0), self._upstream, self.args.timeout, log=self._logs.append)
        self.gate.log("listening on %s:%d, client routes to %s:%d" % (
            self.args.listen_host, self.args.listen_port, self.args.upstream_host, self.args.upstream_port))
        self._thread = threading.Thread(target=self.gate.serve_forever, kwargs={"poll_interval": 0.05},
                                        name=f"api-gate-{self.ctx.name}", daemon=True)
        self._thread.start()
        return "http://127.0.0.1:%d" % self.gate.server_address[1]

    def poll(self) -> Optional[int]:
        return self.exit_code

    def stop(self, grace_seconds: float) -> int:
        """SIGTERM: the script's handler shuts the server down and exits 0."""
        if self.exit_code is not None:
            return self.exit_code
        if self.gate is not None:
            self.gate.shutdown()
            self.gate.server_close()
        self.exit_code = 0
        return 0

    def logs(self) -> List[str]:
        return list(self._logs)

    def signal(self, name: str) -> bool:
        return False
