"""Runs shell scripts (shell_parse's subset) inside a container's sandbox, with the signal semantics of a
container's PID 1: SIGTERM does nothing unless the script traps it (`trap 'exit 0' TERM`); SIGKILL ends
everything. `sleep` sleeps simulated seconds. A command the image lacks is `not found` (127); a command
the simulator has no model of runs idle until killed (one log line says so)."""

from __future__ import annotations

import posixpath
from typing import Callable, Dict, List, Optional, Tuple

from .coreutils import COMMANDS, Result
from .sandbox import Sandbox
from .shell_parse import AndOr, For, Group, If, Loop, Pipeline, Sequence, ShellSyntaxError, Simple, Word, parse

BUILTINS = ("exit", "trap", "export", "set", "unset", "cd", "exec", ":", "wait", "shift", "readonly")


class ShellExit(Exception):
    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class Killed(Exception):
    """SIGKILL: the process is gone."""


class Shell:
    def __init__(self, sandbox: Sandbox, out: Optional[Callable[[str], None]] = None, name: str = "sh") -> None:
        self.sandbox = sandbox
        self.files = sandbox.files
        self.net = sandbox.net
        self.vars: Dict[str, str] = dict(sandbox.env)
        self.vars.setdefault("HOSTNAME", sandbox.hostname)
        self.status = 0
        self.name = name
        self.cwd = "/"
        self.traps: Dict[str, str] = {}
        self._out = out
        self._lines: List[str] = []

    # ------------------------------------------------------------------ output
    def emit(self, text: str) -> None:
        if not text:
            return
        if self._out is not None:
            for line in text.rstrip("\n").split("\n"):
                self._out(line)
        else:
            self._lines.append(text)

    def output(self) -> str:
        return "".join(self._lines)

    def path(self, path: str) -> str:
        return posixpath.normpath(posixpath.join(self.cwd, path))

    # ------------------------------------------------------------------ signals and time
    def check_signals(self) -> None:
        if self.sandbox.killed.is_set():
            raise Killed()
        if self.sandbox.term.is_set() and "TERM" in self.traps:
            handler = self.traps.pop("TERM")
            self.run_tree(parse(handler)) if handler else None

    def sleep(self, seconds: float) -> None:
        """Sleep simulated seconds; SIGKILL ends it, a trapped SIGTERM interrupts it (the trap runs)."""
        real = float("inf") if seconds == float("inf") else self.sandbox.clock.real(seconds)
        deadline = None if real == float("inf") else self.sandbox.clock.now() + real
        while True:
            self.check_signals()
            remaining = None if deadline is None else deadline - self.sandbox.clock.now()
            if remaining is not None and remaining <= 0:
                return
            step = 0.05 if remaining is None else min(remaining, 0.05)
            if "TERM" in self.traps:
                self.sandbox.term.wait(step)
            else:
                self.sandbox.killed.wait(step)

    def unknown(self, argv: List[str]) -> Result:
        """A program the simulator has no model of: it runs, does nothing, and never ends by itself."""
        self.emit(f"simulator: no model of program {argv[0]!r}: running idle, listening nowhere\n")
        self.sleep(float("inf"))
        return 0, "", ""

    # ------------------------------------------------------------------ entry points
    def run(self, script: str) -> int:
        try:
            tree = parse(script)
        except ShellSyntaxError as err:
            self.emit(f"{self.name}: 1: Syntax error: {err}\n")
            return 2
        try:
            return self.run_tree(tree)
        except ShellExit as done:
            return done.code

    def run_argv(self, argv: List[str]) -> int:
        """Run one command given as argv (a container's command without a shell)."""
        try:
            code, out, err = self.command(argv, "")
            self.emit(out)
            self.emit(err)
            return code
        except ShellExit as done:
            return done.code

    # ------------------------------------------------------------------ evaluation
    def run_tree(self, node) -> int:
        self.check_signals()
        if isinstance(node, Sequence):
            for item in node.items:
                self.status = self.run_tree(item)
            return self.status
        if isinstance(node, AndOr):
            status = self.run_tree(node.first)
            for op, pipeline in node.rest:
                if (op == "&&" and status == 0) or (op == "||" and status != 0):
                    status = self.run_tree(pipeline)
            self.status = status
            return status
        if isinstance(node, Pipeline):
            status, text, err = self._pipeline(node)
            self.emit(text)
            self.emit(err)
            return (1 if status == 0 else 0) if node.negate else status
        return self._compound(node)

    def _compound(self, node) -> int:
        if isinstance(node, If):
            for condition, body in node.branches:
                if self.run_tree(condition) == 0:
                    return self.run_tree(body)
            return self.run_tree(node.otherwise) if node.otherwise else 0
        if isinstance(node, Loop):
            status = 0
            while (self.run_tree(node.condition) == 0) != node.until:
                status = self.run_tree(node.body)
            return status
        if isinstance(node, For):
            status = 0
            for word in node.words:
                for value in self.expand(word):
                    self.vars[node.name] = value
                    status = self.run_tree(node.body)
            return status
        if isinstance(node, Group):
            saved = dict(self.vars) if node.subshell else None
            try:
                return self.run_tree(node.body)
            except ShellExit as done:
                if node.subshell:
                    return done.code
                raise
            finally:
                if saved is not None:
                    self.vars = saved
        if isinstance(node, Simple):
            code, out, err = self._simple(node, "")
            self.emit(out)
            self.emit(err)
            return code
        raise ShellSyntaxError(f"cannot run {node!r}")

    def _pipeline(self, node: Pipeline) -> Result:
        stdin, err_all, code = "", "", 0
        for command in node.commands:
            if isinstance(command, Simple):
                code, stdin, err = self._simple(command, stdin)
            else:
                sub = Shell(self.sandbox, None, self.name)
                sub.vars, sub.traps = self.vars, self.traps
                code = sub.run_tree(command)
                stdin, err = sub.output(), ""
            err_all += err
        self.status = code
        return code, stdin, err_all

    def expand(self, word: Word) -> List[str]:
        fields: List[str] = [""]
        quoted_any = False
        for kind, text, quoted in word.parts:
            quoted_any |= quoted
            if kind == "lit":
                value = text
            elif kind == "var":
                value = {"?": str(self.status), "$": str(self.sandbox.pid), "#": "0",
                         "0": self.name}.get(text, self.vars.get(text, ""))
            else:
                sub = Shell(self.sandbox, None, self.name)
                sub.vars = dict(self.vars)
                sub.run(text)
                value = sub.output().rstrip("\n")
            if kind == "lit" or quoted:
                fields[-1] += value
            else:
                pieces = value.split()
                if not pieces:
                    continue
                fields[-1] += pieces[0]
                fields.extend(pieces[1:])
        return fields if (fields != [""] or quoted_any) else []

    def _simple(self, node: Simple, stdin: str) -> Result:
        argv = [value for word in node.words for value in self.expand(word)]
        assigns = {name: "".join(self.expand(value)) for name, value in node.assigns}
        if not argv:
            self.vars.update(assigns)
            return 0, "", ""
        saved = dict(self.vars)
        self.vars.update(assigns)
        try:
            code, out, err = self.command(argv, stdin)
        finally:
            if assigns:
                self.vars = {**saved, **{k: v for k, v in self.vars.items() if k not in assigns}}
        return self._redirect(node, code, out, err)

    def _redirect(self, node: Simple, code: int, out: str, err: str) -> Result:
        for op, target in node.redirs:
            path = "".join(self.expand(target)) if target is not None else ""
            if op == "2>&1":
                out, err = out + err, ""
            elif op == ">&2":
                out, err = "", err + out
            elif op in (">", ">>", "&>", "2>"):
                data = (out + err) if op == "&>" else (err if op == "2>" else out)
                if path != "/dev/null":
                    previous = (self.files.read(self.path(path)) or b"") if op == ">>" else b""
                    self.files.write(self.path(path), previous + data.encode())
                if op in (">", ">>", "&>"):
                    out = ""
                if op in ("2>", "&>"):
                    err = ""
        return code, out, err

    # ------------------------------------------------------------------ commands
    def command(self, argv: List[str], stdin: str) -> Result:
        self.check_signals()
        name = argv[0]
        if name in BUILTINS:
            return self._builtin(name, argv[1:], stdin)
        base = posixpath.basename(name)
        if not self.sandbox.has_tool(name) and base not in ("true", "false", "echo", "test", "["):
            return 127, "", f"{self.name}: 1: {name}: not found\n"
        handler = COMMANDS.get(base)
        if handler is None:
            return self.unknown(argv)
        code, out, err = handler(self, argv[1:], stdin)
        self.status = code
        return code, out, err

    def _builtin(self, name: str, args: List[str], stdin: str) -> Result:
        if name == "exit":
            raise ShellExit(int(args[0]) if args and args[0].lstrip("-").isdigit() else self.status)
        if name == "trap":
            if len(args) >= 2:
                for signal_name in args[1:]:
                    self.traps[signal_name.upper().replace("SIG", "").replace("15", "TERM")] = args[0]
            return 0, "", ""
        if name == "export":
            for arg in args:
                if "=" in arg:
                    key, value = arg.split("=", 1)
                    self.vars[key] = value
            return 0, "", ""
        if name == "unset":
            for arg in args:
                self.vars.pop(arg, None)
            return 0, "", ""
        if name == "cd":
            self.cwd = self.path(args[0]) if args else "/"
            return 0, "", ""
        if name == "exec":
            if not args:
                return 0, "", ""
            code, out, err = self.command(args, stdin)
            self.emit(out)
            self.emit(err)
            raise ShellExit(code)
        return 0, "", ""  # set, wait, shift, readonly, ':'


def split_argv(argv: List[str]) -> Tuple[Optional[str], List[str]]:
    """(script, []) for `sh -c SCRIPT ...` (any sh/bash/dash/ash, `-ec` and the like), else (None, argv)."""
    if len(argv) >= 3 and posixpath.basename(argv[0]) in ("sh", "bash", "dash", "ash") and \
            argv[1].startswith("-") and "c" in argv[1]:
        return argv[2], []
    return None, list(argv)
