"""site.yml end to end, as on a real home lab, with a systemd container as the GPU node.

The GPU node `k3s-gpu-worker` is a Debian 12 container with systemd (podman, the host's network), reached by
Ansible's podman connection; the cluster is the simulated one (scripts/fake-cluster) on the host's loopback,
whose node of the same name stands in for what k3s would register. What runs for real in the container:
the OS check and base packages (common), the NVIDIA driver's userspace packages from Debian's archive with
their hold and the nouveau blacklist (the kernel-module, initramfs and reboot steps off), k3s's binary
downloaded from a local HTTP server laid out like GitHub's release downloads and verified against the sha256
in the inventory, its config.yaml, token file (from Ansible Vault, with a password file made here) and
systemd unit (enabled; the k3s service steps off: k3s_gpu_worker_start_service false, since the binary is a
stand-in that cannot run a cluster), the NVIDIA container toolkit from a signed local mirror built from
NVIDIA's source (its k3s path writes the default-runtime drop-in; no k3s restart to wait for), the gpu-mode
command in its virtualenv with the node's own kubeconfig. The container sees the simulated node's GPU
through the fake NVML library pointed at the simulated node's GPU ledger (bind-mounted), so GPU facts, k3s's
GPU labels and gpu-mode's memory wait read what the fake vLLM servers hold. The container's processes run as
root without sudo (ansible_become false): sudo would drop the fake NVML's environment.

The sequence of the issue: site.yml (the default mode ml activated, the summary), gpu-mode.yml -e mode=r1,
site.yml again (changed=0 on every host, r1 still active), gpu-mode.yml -e mode=ml (back). One container, one
simulated cluster at time scale 0.05, all under the molecule lock (/tmp/molecule.lock), removed at the end.

Not real here: the kernel module and its loading, a reboot, k3s itself (the stand-in answers --version only),
k3s detecting the NVIDIA runtime, the device plugin's pods on a real node, vLLM; the driver in the container is
Debian 12's 535 userspace while the simulated GPU reports driver 570.195.03 (the home lab's).
"""

import fcntl
import functools
import hashlib
import http.server
import json
import os
import re
import shutil
import subprocess
import threading
import time
import uuid

import pytest
import yaml

from ansible_collections.baremetal.gpu.plugins.module_utils.kube import Kube
from tests.harness import fake_cluster, fake_nvml
from tests.harness.ansible_cli import ROOT, ansible_playbook, kube_env, run_tool

pytestmark = [pytest.mark.slow, pytest.mark.podman]

NODE = "k3s-gpu-worker"
NS = "ml"
K3S_VERSION = "v1.32.5+k3s1"
IMAGE = "localhost/debian-systemd:bookworm"
HOMELAB = yaml.safe_load((ROOT / "inventories" / "homelab" / "group_vars" / "all.yml").read_text())
SITE_TIMEOUT = 1200


def podman(*args, check=True, timeout=120):
    run = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout, check=False)
    if check and run.returncode != 0:
        raise AssertionError("podman %s: %s%s" % (" ".join(args), run.stdout, run.stderr))
    return run


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # pylint: disable=arguments-differ
        pass


def serve(directory):
    """A static HTTP server on the host's loopback (the container shares the host's network)."""
    handler = functools.partial(QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def k3s_standin(www):
    """The k3s stand-in release (roles/k3s_gpu_worker/molecule/shared) and its sha256, the inventory's pin."""
    text = (ROOT / "roles" / "k3s_gpu_worker" / "molecule" / "shared" / "k3s-standin.py").read_text()
    binary = www / "k3s" / K3S_VERSION / "k3s"
    binary.parent.mkdir(parents=True)
    binary.write_text("#!/usr/bin/python3\n" + text.replace("@VERSION@", K3S_VERSION))
    binary.chmod(0o755)
    return hashlib.sha256(binary.read_bytes()).hexdigest()


def toolkit_mirror():
    """The signed local apt mirror of the toolkit (cached; built with podman the first time)."""
    run = subprocess.run([str(ROOT / "roles" / "nvidia_container_toolkit" / "molecule" / "default" / "build-mirror.sh")],
                         capture_output=True, text=True, timeout=1800, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    return run.stdout.strip().splitlines()[-1]


def vault(tmp_path, data):
    """A vault file encrypted with a password file made for this test (never in the repository)."""
    password = tmp_path / "vault-password"
    password.write_text(uuid.uuid4().hex + "\n")
    password.chmod(0o600)
    path = tmp_path / "inventory" / "group_vars" / "k3s_cluster" / "vault.yml"
    path.parent.mkdir(parents=True)
    path.write_text(yaml.safe_dump(data))
    run_tool("ansible-vault", "encrypt", "--vault-password-file", str(password), str(path))
    assert path.read_text().startswith("$ANSIBLE_VAULT;")
    return password


def write_inventory(tmp_path, container, port, k3s_sha256, mirror_url):
    inventory = tmp_path / "inventory"
    node = {
        "ansible_connection": "containers.podman.podman",
        "ansible_host": container,
        "ansible_python_interpreter": "/usr/bin/python3",
        "ansible_become": False,
        "ansible_pipelining": True,  # one podman exec per task instead of four
        # the driver: Debian 12's branch from its archive, userspace only (containers load no kernel module)
        "nvidia_driver_branch": "535",
        "nvidia_driver_kernel_module": False,
        "nvidia_driver_reboot": False,
        "nvidia_driver_rebuild_initramfs": False,  # a container boots no initramfs
        # k3s: a single-node server (the home lab's worker would be an agent of its server)
        "k3s_gpu_worker_role": "server",
        "k3s_gpu_worker_release_url": "http://127.0.0.1:%d/k3s" % port,
        "k3s_gpu_worker_start_service": False,
        # the toolkit from the local mirror (what could be built: nvidia-container-toolkit-base)
        "nvidia_container_toolkit_repo_base": mirror_url,
        "nvidia_container_toolkit_repo_key_url": mirror_url + "/gpgkey",
        "nvidia_container_toolkit_packages": ["nvidia-container-toolkit-base"],
        "nvidia_container_toolkit_restart_engine": False,
        # gpu-mode sees the simulated GPU's processes under the bind-mounted ledger export
        "gpu_mode_proc_root": "/srv/simulated-gpu/proc",
    }
    catalog = dict(HOMELAB, cluster_kubeconfig="", vllm_prepull=False)
    (inventory / "group_vars" / "all.yml").write_text(yaml.safe_dump(catalog))
    (inventory / "group_vars" / "k3s_cluster" / "k3s.yml").write_text(yaml.safe_dump({
        "k3s_gpu_worker_version": K3S_VERSION, "k3s_gpu_worker_sha256": k3s_sha256,
        "k3s_gpu_worker_token": "{{ vault_k3s_token }}"}))
    (inventory / "hosts.yml").write_text(yaml.safe_dump({"all": {
        "hosts": {"localhost": {"ansible_connection": "local",
                                "ansible_python_interpreter": "{{ ansible_playbook_python }}"}},
        "children": {"k3s_cluster": {"children": {"gpu_nodes": {"hosts": {NODE: node}}}}}}}))
    return inventory


@pytest.fixture(scope="module")
def homelab(tmp_path_factory):
    """The container node, the simulated cluster and the inventory; everything removed afterwards."""
    if not shutil.which("podman") or podman("image", "exists", IMAGE, check=False).returncode != 0:
        pytest.skip("needs podman and %s (scripts/setup builds it)" % IMAGE)
    tmp = tmp_path_factory.mktemp("site-e2e")
    lock = open("/tmp/molecule.lock", "a+")  # pylint: disable=consider-using-with
    fcntl.flock(lock, fcntl.LOCK_EX)  # one podman workload at a time on this machine
    container = "site-e2e-%s" % uuid.uuid4().hex[:8]
    kubeconfig = tmp / "kubeconfig"
    state_root = tmp / "fake-cluster"
    www = tmp / "www"
    server = None
    try:
        fake_nvml.build(tmp)
        fake_cluster.up(fake_cluster.ClusterConfig(kubeconfig=str(kubeconfig), nodes=[{"name": NODE}],
                                                   time_scale=0.05), root=str(state_root))
        (state,) = fake_cluster.status(str(kubeconfig), root=str(state_root))
        gpu_state = state.nodes[0]["gpu_state_dir"]
        sha = k3s_standin(www)
        os.symlink(toolkit_mirror(), www / "nvidia")
        server = serve(www)
        port = server.server_address[1]
        podman("run", "-d", "--name", container, "--hostname", NODE, "--network", "host", "--systemd", "always",
               "-v", "%s:/srv/simulated-gpu:ro" % gpu_state, "-v", "%s:/opt/fake-nvml:ro" % tmp,
               "-e", "LD_LIBRARY_PATH=/opt/fake-nvml", "-e", "FAKE_NVML_DATA=/srv/simulated-gpu/nvml.txt",
               IMAGE, "/sbin/init")
        # NVML's Python bindings (nvidia-ml-py, as the controller's) for gpu_facts on the node: on a real node
        # nvidia-smi serves it instead, which needs the kernel module
        import pynvml  # pylint: disable=import-outside-toplevel
        podman("cp", pynvml.__file__, "%s:/usr/lib/python3/dist-packages/pynvml.py" % container)
        password = vault(tmp, {"vault_k3s_token": "K10" + uuid.uuid4().hex})
        inventory = write_inventory(tmp, container, port, sha, "http://127.0.0.1:%d/nvidia" % port)
        kube = Kube.from_params({"kubeconfig": str(kubeconfig)})
        yield {"inventory": inventory, "password": password, "container": container, "kube": kube,
               "env": kube_env(kubeconfig), "k3s_sha256": sha}
        kube.close()
    finally:
        podman("rm", "-f", "-t", "0", container, check=False)
        if server is not None:
            server.shutdown()
        fake_cluster.down(str(kubeconfig), root=str(state_root))
        lock.close()


def playbook(world, name, *args, extra_vars=None):
    started = time.monotonic()
    run = ansible_playbook(ROOT / name, "--vault-password-file", str(world["password"]), *args,
                           inventory=world["inventory"], extra_vars=extra_vars, env=world["env"], check=False,
                           timeout=SITE_TIMEOUT)
    print("%s %s: %.0f s" % (name, json.dumps(extra_vars or {}), time.monotonic() - started))  # the runtime, in -s
    assert run.returncode == 0, run.stdout[-6000:] + "\n" + run.stderr[-1500:]
    return run.stdout + run.stderr


def recap(out):
    return dict((host, {"changed": int(changed), "failed": int(failed)}) for host, changed, failed in re.findall(
        r"^(\S+)\s+: ok=\d+\s+changed=(\d+)\s+unreachable=0\s+failed=(\d+)", out, re.M))


def flat(out):
    """One space between words: the YAML callback wraps long messages anywhere."""
    return " ".join(out.split())


def active(kube):
    replicas = dict((d["metadata"]["name"], d["spec"].get("replicas")) for d in kube.items("apps/v1", "Deployment", NS))
    mode = (kube.get("v1", "ConfigMap", "gpu-mode-" + NODE, NS).get("data") or {}).get("mode")
    return mode, replicas.get("vllm-ml"), replicas.get("vllm-r1")


def in_node(world, *argv):
    return podman("exec", world["container"], *argv, timeout=120)


def test_site_then_switch_then_site_again_changes_nothing(homelab):
    world = homelab
    out = playbook(world, "site.yml")
    text = flat(out)
    # the summary: node, driver, GPUs, k3s, the mode activated on a fresh cluster, the endpoint, time per stage
    assert "node %s (inventory host %s)" % (NODE, NODE) in text
    assert "driver: 570.195.03 (branch 570)" in text
    assert "GPUs: 1x NVIDIA GeForce RTX 3060 12288 MiB" in text
    assert "k3s: %s server" % K3S_VERSION in text
    assert "active: ml (activated: none -> ml)" in text
    assert "endpoint ml: ml/vllm-api:8000 (Qwen/Qwen3-8B-AWQ, vllm-qwen); ingress http://vllm.home.jetzinger.com/" in text
    assert re.search(r"time: preflight [\d.]+ s, NVIDIA driver .*, k3s .*, container toolkit .*, device plugin .*, "
                     r"vllm .*, gpu_mode .*, health check [\d.]+ s; total", text), text[-3000:]
    assert active(world["kube"]) == ("ml", 1, 0)
    # the node, as the stages left it
    assert in_node(world, "sha256sum", "/usr/local/bin/k3s").stdout.split()[0] == world["k3s_sha256"]
    config = yaml.safe_load(in_node(world, "cat", "/etc/rancher/k3s/config.yaml").stdout)
    assert config["node-name"] == NODE
    assert "nvidia.com/gpu.product=NVIDIA-GeForce-RTX-3060" in config["node-label"]
    assert "memorysize=12GB" in config["node-label"]
    assert in_node(world, "systemctl", "is-enabled", "k3s").stdout.strip() == "enabled"
    assert in_node(world, "stat", "-c", "%a", "/etc/rancher/k3s/baremetal-gpu-token").stdout.strip() == "600"
    held = in_node(world, "apt-mark", "showhold").stdout.split()
    assert {"libnvidia-ml1", "nvidia-smi"} <= set(held), held
    assert in_node(world, "nvidia-ctk", "--version").returncode == 0
    assert in_node(world, "test", "-f", "/etc/rancher/k3s/config.yaml.d/90-baremetal-gpu-nvidia.yaml").returncode == 0
    status = in_node(world, "gpu-mode", "status").stdout
    assert "node %s  mode ml" % NODE in status and "MiB used" in status

    switched = flat(playbook(world, "gpu-mode.yml", extra_vars={"mode": "r1"}))
    assert "node %s: ml -> r1 switched in" % NODE in switched
    assert active(world["kube"]) == ("r1", 0, 1)

    again = playbook(world, "site.yml")
    assert recap(again) == {NODE: {"changed": 0, "failed": 0}, "localhost": {"changed": 0, "failed": 0}}, \
        flat(again)[-4000:]
    assert "active: r1 (active and serving, left as it was)" in flat(again)
    assert active(world["kube"]) == ("r1", 0, 1)

    back = flat(playbook(world, "gpu-mode.yml", extra_vars={"mode": "ml"}))
    assert "node %s: r1 -> ml switched in" % NODE in back
    assert active(world["kube"]) == ("ml", 1, 0)
    # the token is in its root-only file and never in the output
    token = in_node(world, "cat", "/etc/rancher/k3s/baremetal-gpu-token").stdout.strip()
    assert token.startswith("K10") and token not in out + again
