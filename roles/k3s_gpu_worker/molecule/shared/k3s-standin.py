"""A stand-in for the k3s binary in the molecule scenarios. It is NOT k3s: the real binary cannot be
downloaded here. It answers `k3s --version` like k3s, and `k3s server` / `k3s agent` behave like a
systemd service (READY=1 on $NOTIFY_SOCKET, runs until stopped), recording each start (version, command,
sha256 of config.yaml) in /var/lib/k3s-standin/starts.jsonl so the tests can count restarts. A server
writes an admin kubeconfig pointing at https://127.0.0.1:6443, as k3s does."""

import hashlib
import json
import os
import signal
import socket
import sys
import time

VERSION = "@VERSION@"
STATE = "/var/lib/k3s-standin"
CONFIG = "/etc/rancher/k3s/config.yaml"
KUBECONFIG = """apiVersion: v1
kind: Config
clusters:
- cluster:
    certificate-authority-data: c3RhbmQtaW4=
    server: https://127.0.0.1:6443
  name: default
contexts:
- context:
    cluster: default
    user: default
  name: default
current-context: default
users:
- name: default
  user:
    token: stand-in-admin-token
"""


def notify_ready():
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.connect(address)
        sock.sendall(b"READY=1")


def run(command):
    try:
        with open(CONFIG, "rb") as handle:
            config_sha = hashlib.sha256(handle.read()).hexdigest()
    except OSError:
        config_sha = None
    os.makedirs(STATE, exist_ok=True)
    with open(os.path.join(STATE, "starts.jsonl"), "a") as log:
        log.write(json.dumps({"version": VERSION, "command": command, "config_sha256": config_sha,
                              "pid": os.getpid(), "time": time.time()}) + "\n")
    if command == "server":
        with open("/etc/rancher/k3s/k3s.yaml", "w") as handle:
            handle.write(KUBECONFIG)
        os.chmod("/etc/rancher/k3s/k3s.yaml", 0o600)
    notify_ready()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        signal.pause()


def main(argv):
    if argv[:1] in (["--version"], ["-v"], ["version"]):
        print("k3s version %s (5f6b9bc8)" % VERSION)
        print("go version go1.23.8")
        return 0
    if argv[:1] in (["server"], ["agent"]):
        run(argv[0])
    print("k3s stand-in: %s is not simulated" % " ".join(argv), file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
