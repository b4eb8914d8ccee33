"""Simple container programs: a process in a thread with PID 1's signal semantics, the shell, /pause,
an idle stand-in for programs nobody modelled, one that cannot start, and the vllm role's weights check."""

from __future__ import annotations

import collections
import posixpath
import threading
from typing import Any, List, Optional

from .shell_run import Killed, Shell, ShellExit, split_argv

MAX_LOG_LINES = 5000


class ThreadProgram:
    """A process run by `main()` in a thread. SIGTERM sets `sandbox.term` (what happens then is the
    program's business: PID 1 without a handler ignores it); SIGKILL at the end of the grace period sets
    `sandbox.killed` and the exit code is 137."""

    listen_ports: List[int] = []
    listen_host = "0.0.0.0"
    handles_sigterm = False

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
        self.sandbox = ctx.sandbox
        self.exit_code: Optional[int] = None
        self._logs: collections.deque = collections.deque(maxlen=MAX_LOG_LINES)
        self._thread: Optional[threading.Thread] = None
        self._done = threading.Event()

    def log(self, line: str) -> None:
        self._logs.append(line)

    def logs(self) -> List[str]:
        return list(self._logs)

    def main(self) -> int:
        raise NotImplementedError

    def _run(self) -> None:
        try:
            code = self.main()
        except ShellExit as done:
            code = done.code
        except Killed:
            code = 137
        except Exception as err:  # a bug in a program model shows in the container's log
            self.log(f"simulator: program failed: {err!r}")
            code = 1
        if self.sandbox.killed.is_set():
            code = 137
        self.exit_code = code
        self._done.set()

    def start(self) -> Optional[str]:
        self._thread = threading.Thread(target=self._run, name=f"container-{self.ctx.name}", daemon=True)
        self._thread.start()
        return None

    def poll(self) -> Optional[int]:
        return self.exit_code if self._done.is_set() else None

    def signal(self, name: str) -> bool:
        return False

    def stop(self, grace_seconds: float) -> int:
        if self._done.is_set():
            return self.exit_code if self.exit_code is not None else 0
        self.sandbox.term.set()
        if not self._done.wait(self.sandbox.clock.real(grace_seconds)):
            self.sandbox.killed.set()
            self._done.wait(10)
            self.exit_code = 137
        return self.exit_code if self.exit_code is not None else 137


class ShellProgram(ThreadProgram):
    """`sh -c SCRIPT`, or a bare command run without a shell (`sleep 600`, `true`, `/bin/false`)."""

    MODELLED = ("true", "false", "sleep", "echo", "printf", "cat", "test", "date", "env", "ls")

    def main(self) -> int:
        argv = self.ctx.argv
        script, _rest = split_argv(argv)
        shell = Shell(self.sandbox, self.log, name=posixpath.basename(argv[0]) if script else "sh")
        if script is not None:
            return shell.run(script)
        if posixpath.basename(argv[0]) in ("sh", "bash", "dash", "ash") and len(argv) == 1:
            return 0  # an interactive shell with no stdin attached reads EOF and exits
        return shell.run_argv(argv)


class PauseProgram(ThreadProgram):
    """The pause container: sleeps until SIGTERM or SIGINT, then exits 0."""

    handles_sigterm = True

    def main(self) -> int:
        while not self.sandbox.term.wait(0.05):
            if self.sandbox.killed.is_set():
                return 137
        return 0


class IdleProgram(ThreadProgram):
    """A program the simulator has no model of: it runs, listens nowhere, and dies of SIGTERM (143)."""

    handles_sigterm = True

    def main(self) -> int:
        self.log(f"simulator: no model of program {self.ctx.argv[0]!r} (argv {self.ctx.argv!r}): running idle, "
                 "listening nowhere")
        while not self.sandbox.term.wait(0.05):
            if self.sandbox.killed.is_set():
                return 137
        return 143


class WeightsCheckProgram(ThreadProgram):
    """The vllm role's `check_weights.py` init container. The simulator has no model files: it takes the
    node's cache as complete and exits 0, after a log line saying so."""

    def main(self) -> int:
        self.log("simulator: model weights taken as complete in the cache (no files are simulated)")
        return 0


class ExitedProgram:
    """A process that could not start (StartError, exit 128) or exited at once with `code`."""

    listen_ports: List[int] = []
    listen_host = "0.0.0.0"

    def __init__(self, code: int, lines: List[str], reason: str = "Error") -> None:
        self.exit_code = code
        self.reason = reason
        self.lines = list(lines)

    def start(self) -> Optional[str]:
        return None

    def poll(self) -> Optional[int]:
        return self.exit_code

    def stop(self, grace_seconds: float) -> int:
        return self.exit_code

    def logs(self) -> List[str]:
        return list(self.lines)

    def signal(self, name: str) -> bool:
        return False
