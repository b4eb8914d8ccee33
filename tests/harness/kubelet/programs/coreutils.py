"""The commands a container's shell can run, each `(shell, args, stdin) -> (exit code, stdout, stderr)`:
coreutils and busybox basics over the container's files, `curl`/`wget` over the pod's network (real HTTP
to the pod's listeners; connection refused elsewhere), and `python3 -c` run for real in a child process
whose sockets reach only the pod's listeners (its file access is the host's: only network checks are
faithful). A command the image does not have is `not found` (127) before it gets here."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Callable, Dict, List, Optional, Tuple

Result = Tuple[int, str, str]

_SHIM = '''import json, os, socket
_MAP = json.loads(os.environ.pop("BAREMETAL_GPU_SIM_PORTS", "{}"))
_LOCAL = {"localhost", "127.0.0.1", "::1", "0.0.0.0", ""}
_LOCAL |= set(json.loads(os.environ.pop("BAREMETAL_GPU_SIM_IPS", "[]")))
_connect = socket.socket.connect
def _target(address):
    if isinstance(address, tuple) and len(address) >= 2:
        real = _MAP.get("%s:%s" % (address[0], address[1]))
        if real:
            host, port = real.rsplit(":", 1)
            return (host, int(port))
        if address[0] in _LOCAL:
            raise ConnectionRefusedError(111, "Connection refused")
    return address
def connect(self, address):
    return _connect(self, _target(address))
def connect_ex(self, address):
    try:
        self.connect(address)
        return 0
    except ConnectionRefusedError:
        return 111
socket.socket.connect = connect
socket.socket.connect_ex = connect_ex
'''
_SHIM_DIR: Optional[str] = None


def _shim_dir() -> str:
    global _SHIM_DIR  # pylint: disable=global-statement
    if _SHIM_DIR is None or not os.path.isdir(_SHIM_DIR):
        _SHIM_DIR = tempfile.mkdtemp(prefix="kubelet-sim-python.")
        with open(os.path.join(_SHIM_DIR, "sitecustomize.py"), "w", encoding="utf-8") as handle:
            handle.write(_SHIM)
    return _SHIM_DIR


def cmd_true(sh, args, stdin) -> Result:
    return 0, "", ""


def cmd_false(sh, args, stdin) -> Result:
    return 1, "", ""


def cmd_echo(sh, args, stdin) -> Result:
    newline = True
    if args[:1] == ["-n"]:
        newline, args = False, args[1:]
    return 0, " ".join(args) + ("\n" if newline else ""), ""


def cmd_printf(sh, args, stdin) -> Result:
    if not args:
        return 1, "", "printf: usage: printf format [arguments]\n"
    fmt = args[0].replace("\\n", "\n").replace("\\t", "\t")
    try:
        return 0, fmt.replace("%s", "{}").format(*args[1:]) if "%s" in fmt else fmt, ""
    except IndexError:
        return 0, fmt, ""


def cmd_sleep(sh, args, stdin) -> Result:
    if not args:
        return 1, "", "sleep: missing operand\n"
    total = 0.0
    for arg in args:
        if arg == "infinity" or arg == "inf":
            total = float("inf")
            continue
        match = re.fullmatch(r"([0-9.]+)([smhd]?)", arg)
        if not match:
            return 1, "", f"sleep: invalid time interval '{arg}'\n"
        total += float(match.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]
    sh.sleep(total)
    return 0, "", ""


def cmd_cat(sh, args, stdin) -> Result:
    if not args:
        return 0, stdin, ""
    out, err, code = [], [], 0
    for path in args:
        data = sh.files.read(sh.path(path))
        if data is None:
            code = 1
            why = "Is a directory" if sh.files.is_dir(sh.path(path)) else "No such file or directory"
            err.append(f"cat: {path}: {why}\n")
        else:
            out.append(data.decode(errors="replace"))
    return code, "".join(out), "".join(err)


def cmd_test(sh, args, stdin) -> Result:
    if args and args[-1] == "]":
        args = args[:-1]
    negate = bool(args) and args[0] == "!"
    if negate:
        args = args[1:]
    result = False
    if len(args) == 2 and args[0] in ("-e", "-f", "-d", "-s", "-r", "-x", "-n", "-z"):
        op, value = args
        path = sh.path(value)
        result = {"-e": lambda: sh.files.exists(path), "-f": lambda: sh.files.read(path) is not None,
                  "-r": lambda: sh.files.exists(path), "-x": lambda: sh.files.read(path) is not None,
                  "-d": lambda: sh.files.is_dir(path), "-s": lambda: bool(sh.files.read(path)),
                  "-n": lambda: bool(value), "-z": lambda: not value}[op]()
    elif len(args) == 3 and args[1] in ("=", "==", "!="):
        result = (args[0] == args[2]) == (args[1] != "!=")
    elif len(args) == 3 and args[1] in ("-eq", "-ne", "-lt", "-le", "-gt", "-ge"):
        try:
            a, b = int(args[0]), int(args[2])
        except ValueError:
            return 2, "", f"sh: 1: [: Illegal number: {args[0]}\n"
        result = {"-eq": a == b, "-ne": a != b, "-lt": a < b, "-le": a <= b, "-gt": a > b, "-ge": a >= b}[args[1]]
    elif len(args) == 1:
        result = bool(args[0])
    return (0 if result != negate else 1), "", ""


def cmd_date(sh, args, stdin) -> Result:
    return 0, time.strftime("%a %b %d %H:%M:%S UTC %Y", time.gmtime()) + "\n", ""


def cmd_env(sh, args, stdin) -> Result:
    return 0, "".join(f"{k}={v}\n" for k, v in sorted(sh.vars.items())), ""


def cmd_grep(sh, args, stdin) -> Result:
    quiet = invert = fixed = ignore = False
    rest = []
    for arg in args:
        if arg.startswith("-") and len(arg) > 1 and not rest:
            quiet |= "q" in arg
            invert |= "v" in arg
            fixed |= "F" in arg
            ignore |= "i" in arg
        else:
            rest.append(arg)
    if not rest:
        return 2, "", "grep: no pattern\n"
    pattern, files = rest[0], rest[1:]
    text = stdin if not files else "".join((sh.files.read(sh.path(f)) or b"").decode(errors="replace")
                                           for f in files)
    flags = re.IGNORECASE if ignore else 0
    regex = re.compile(re.escape(pattern) if fixed else pattern, flags)
    lines = [line for line in text.splitlines() if bool(regex.search(line)) != invert]
    return (0 if lines else 1), ("" if quiet else "".join(line + "\n" for line in lines)), ""


def cmd_mkdir(sh, args, stdin) -> Result:
    return 0, "", ""


def cmd_touch(sh, args, stdin) -> Result:
    for path in args:
        if sh.files.read(sh.path(path)) is None:
            sh.files.write(sh.path(path), b"")
    return 0, "", ""


def cmd_rm(sh, args, stdin) -> Result:
    for path in [a for a in args if not a.startswith("-")]:
        sh.files.remove(sh.path(path))
    return 0, "", ""


def cmd_cp(sh, args, stdin) -> Result:
    paths = [a for a in args if not a.startswith("-")]
    if len(paths) != 2:
        return 1, "", "cp: missing file operand\n"
    data = sh.files.read(sh.path(paths[0]))
    if data is None:
        return 1, "", f"cp: cannot stat '{paths[0]}': No such file or directory\n"
    target = sh.path(paths[1])
    if sh.files.is_dir(target):
        target = target.rstrip("/") + "/" + paths[0].rsplit("/", 1)[-1]
    sh.files.write(target, data)
    return 0, "", ""


def cmd_ls(sh, args, stdin) -> Result:
    paths = [a for a in args if not a.startswith("-")] or ["."]
    out = []
    for path in paths:
        full = sh.path(path)
        if sh.files.read(full) is not None:
            out.append(path)
        elif sh.files.is_dir(full):
            out.extend(sh.files.listdir(full))
        else:
            return 2, "", f"ls: cannot access '{path}': No such file or directory\n"
    return 0, "".join(name + "\n" for name in out), ""


def _http(sh, url: str, method: str = "GET", headers: Optional[Dict[str, str]] = None,
          data: Optional[bytes] = None, timeout: float = 10.0) -> Tuple[Optional[int], bytes, str]:
    """(status or None, body, error) of a request from inside the pod."""
    parsed = urllib.parse.urlsplit(url if "://" in url else "http://" + url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    host = parsed.hostname or ""
    real = sh.net.resolve(host, port)
    if real is None:
        return None, b"", "refused"
    if parsed.scheme == "https":
        return None, b"", "tls"
    target = urllib.parse.urlunsplit(("http", real, parsed.path or "/", parsed.query, ""))
    request = urllib.request.Request(target, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return resp.status, resp.read(), ""
    except urllib.error.HTTPError as err:
        return err.code, err.read(), ""
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        return None, b"", "timeout" if "timed out" in str(reason) else "refused"


def cmd_curl(sh, args, stdin) -> Result:
    silent = show_errors = fail = head = False
    method, output, data, url = "GET", None, None, None
    headers: Dict[str, str] = {}
    timeout = 10.0
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in ("-o", "--output", "-X", "--request", "-H", "--header", "-d", "--data", "-m", "--max-time",
                   "--connect-timeout", "-w", "--write-out", "-A", "--user-agent"):
            value = args[i + 1] if i + 1 < len(args) else ""
            if arg in ("-o", "--output"):
                output = value
            elif arg in ("-X", "--request"):
                method = value
            elif arg in ("-H", "--header") and ":" in value:
                key, _sep, val = value.partition(":")
                headers[key.strip()] = val.strip()
            elif arg in ("-d", "--data"):
                data, method = value.encode(), "POST" if method == "GET" else method
            elif arg in ("-m", "--max-time", "--connect-timeout"):
                timeout = float(value)
            i += 2
            continue
        if arg in ("--fail", "--fail-with-body"):
            fail = True
        elif arg in ("--silent", "--show-error", "--head", "--insecure", "--location"):
            silent |= arg == "--silent"
            show_errors |= arg == "--show-error"
            head |= arg == "--head"
        elif arg.startswith("-") and not arg.startswith("--"):
            silent |= "s" in arg
            show_errors |= "S" in arg
            fail |= "f" in arg
            head |= "I" in arg
        else:
            url = arg
        i += 1
    if url is None:
        return 2, "", "curl: (2) no URL specified\n"
    parsed = urllib.parse.urlsplit(url if "://" in url else "http://" + url)
    status, body, error = _http(sh, url, "HEAD" if head else method, headers, data, timeout)
    quiet = silent and not show_errors
    port = parsed.port or 80
    if error == "refused":
        return 7, "", "" if quiet else (f"curl: (7) Failed to connect to {parsed.hostname} port {port} after 0 ms: "
                                        "Couldn't connect to server\n")
    if error == "tls":
        return 35, "", "" if quiet else "curl: (35) OpenSSL/3.0.13: error:0A00010B:SSL routines::wrong version number\n"
    if error == "timeout":
        return 28, "", "" if quiet else f"curl: (28) Operation timed out after {int(timeout * 1000)} milliseconds\n"
    if fail and status is not None and status >= 400:
        return 22, "", "" if quiet else f"curl: (22) The requested URL returned error: {status}\n"
    text = body.decode(errors="replace")
    if output and output != "/dev/null":
        sh.files.write(sh.path(output), body)
        text = ""
    elif output == "/dev/null":
        text = ""
    return 0, text, ""


def cmd_wget(sh, args, stdin) -> Result:
    spider = quiet = False
    output, url, timeout = None, None, 10.0
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in ("-O", "-T", "--timeout"):
            value = args[i + 1] if i + 1 < len(args) else ""
            if arg == "-O":
                output = value
            else:
                timeout = float(value)
            i += 2
            continue
        if arg == "--spider":
            spider = True
        elif arg.startswith("-O"):
            output = arg[2:]
        elif arg.startswith("-") and not arg.startswith("--"):
            quiet |= "q" in arg
        elif not arg.startswith("-"):
            url = arg
        i += 1
    if url is None:
        return 1, "", "wget: missing URL\n"
    parsed = urllib.parse.urlsplit(url if "://" in url else "http://" + url)
    status, body, error = _http(sh, url, timeout=timeout)
    if error:
        return 1, "", f"wget: can't connect to remote host ({parsed.hostname}): Connection refused\n"
    if status is not None and status >= 400:
        return 1, "", f"wget: server returned error: HTTP/1.1 {status}\n"
    if spider or output == "/dev/null":
        return 0, "", ""
    if output == "-":
        return 0, body.decode(errors="replace"), ""
    sh.files.write(sh.path(output or (parsed.path.rsplit("/", 1)[-1] or "index.html")), body)
    return 0, "", ""


def cmd_python(sh, args, stdin) -> Result:
    if not args:
        return 0, "", ""  # no tty, empty stdin: the REPL reads EOF and exits
    if args[0] != "-c" or len(args) < 2:
        return sh.unknown(["python3"] + args)
    env = {k: v for k, v in sh.vars.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.update(PYTHONPATH=_shim_dir(), BAREMETAL_GPU_SIM_PORTS=json.dumps(sh.net.mapping()),
               BAREMETAL_GPU_SIM_IPS=json.dumps([sh.net.ip]), PATH=os.environ.get("PATH", "/usr/bin:/bin"))
    try:
        proc = subprocess.Popen([sys.executable, "-c", args[1], *args[2:]], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=tempfile.gettempdir())
    except OSError as err:
        return 126, "", f"python3: {err}\n"
    try:
        while True:
            try:
                out, err = proc.communicate(stdin.encode(), timeout=0.05)
                break
            except subprocess.TimeoutExpired:
                if sh.sandbox.killed.is_set():
                    proc.kill()
                    proc.communicate()
                    return 137, "", ""
                stdin = ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")


COMMANDS: Dict[str, Callable[..., Result]] = {
    "true": cmd_true, "false": cmd_false, "echo": cmd_echo, "printf": cmd_printf, "sleep": cmd_sleep,
    "cat": cmd_cat, "test": cmd_test, "[": cmd_test, "date": cmd_date, "env": cmd_env, "grep": cmd_grep,
    "mkdir": cmd_mkdir, "touch": cmd_touch, "rm": cmd_rm, "cp": cmd_cp, "ls": cmd_ls, "curl": cmd_curl,
    "wget": cmd_wget, "python3": cmd_python, "python": cmd_python,
}


def command_names() -> List[str]:
    return sorted(COMMANDS)
