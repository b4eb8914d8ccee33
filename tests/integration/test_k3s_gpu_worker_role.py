"""ansible-playbook runs of the k3s_gpu_worker role on this machine that must change nothing: a check-mode
run of a server (what it would write, shown by --diff) and an agent whose server does not answer (refused
before any change). Both carry a join token that must not appear in the output, even at -vvv. The role's
real installs, upgrades and uninstalls run in its molecule scenarios (systemd containers)."""

import os
import socket

import pytest

from tests.harness.ansible_cli import ansible_playbook

# results as one JSON line each (messages unwrapped), diffs as diffs
JSON = {"ANSIBLE_CALLBACK_RESULT_FORMAT": "json"}

PLAY = """
- name: Run k3s_gpu_worker
  hosts: localhost
  gather_facts: true
  roles:
    - role: baremetal.gpu.k3s_gpu_worker
"""
TOKEN = "K10deadbeef::server:NeverPrintThisJoinToken"
RTX_3060 = {"driver_installed": True, "driver_version": "570.195.03", "cuda_driver_version": "12.8",
            "gpus": [{"index": 0, "name": "NVIDIA GeForce RTX 3060", "compute_capability": "8.6",
                      "memory_total_mib": 12288, "architecture": "Ampere"}]}
WRITTEN = ["/usr/local/bin/k3s", "/etc/rancher/k3s/config.yaml", "/etc/rancher/k3s/baremetal-gpu-token",
           "/etc/systemd/system/k3s.service", "/etc/systemd/system/k3s-agent.service"]

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def nothing_written():
    existing = [path for path in WRITTEN if os.path.exists(path)]
    if existing:
        pytest.skip("this machine already has files the role writes: %s" % existing)
    yield
    assert [path for path in WRITTEN if os.path.exists(path)] == [], "the role wrote files"


@pytest.fixture
def playbook(tmp_path):
    path = tmp_path / "k3s.yml"
    path.write_text(PLAY)
    return path


def closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens once the socket is closed


def test_check_mode_shows_what_a_server_would_get_and_writes_nothing(playbook):
    run = ansible_playbook(playbook, "--check", "--diff", "-vvv", extra_vars={
        "k3s_gpu_worker_sha256": "a" * 64, "k3s_gpu_worker_token": TOKEN, "k3s_gpu_worker_node_name": "gpu-1",
        "k3s_gpu_worker_gpu_facts": RTX_3060, "k3s_gpu_worker_device_plugin_config": "default",
        "k3s_gpu_worker_symlinks": []}, env=JSON)
    out = run.stdout + run.stderr
    assert TOKEN not in out
    assert ("k3s v1.32.5+k3s1 (k3s) would be fetched, verified (sha256 %s) and installed as /usr/local/bin/k3s"
            % ("a" * 64)) in out
    # the config.yaml diff: node name and GPU labels
    for line in ("+node-name: gpu-1", "+- memorysize=12GB", "+- nvidia.com/device-plugin.config=default",
                 "+- nvidia.com/gpu.product=NVIDIA-GeForce-RTX-3060", "+token-file: /etc/rancher/k3s/baremetal-gpu-token",
                 "+ExecStart=/usr/local/bin/k3s server", "+Restart=always"):
        assert line in out, line


def test_an_agent_whose_server_does_not_answer_is_refused_before_any_change(playbook):
    port = closed_port()
    run = ansible_playbook(playbook, "-vvv", check=False, extra_vars={
        "k3s_gpu_worker_role": "agent", "k3s_gpu_worker_server_url": "https://127.0.0.1:%d" % port,
        "k3s_gpu_worker_server_timeout": 2, "k3s_gpu_worker_sha256": "a" * 64, "k3s_gpu_worker_token": TOKEN,
        "k3s_gpu_worker_gpu_facts": RTX_3060}, env=JSON)
    out = run.stdout + run.stderr
    assert run.returncode != 0
    assert TOKEN not in out
    assert "The k3s server https://127.0.0.1:%d did not accept a connection from localhost within 2 s" % port in out
    assert "nothing was changed" in out


def test_bad_input_is_listed_at_once(playbook):
    run = ansible_playbook(playbook, check=False, extra_vars={
        "k3s_gpu_worker_version": "latest", "k3s_gpu_worker_sha256": "abc", "k3s_gpu_worker_gpu_facts": RTX_3060,
        "k3s_gpu_worker_node_labels": {"node-role.kubernetes.io/gpu": "true"}}, env=JSON)
    out = run.stdout + run.stderr
    assert run.returncode != 0
    assert "k3s_gpu_worker cannot continue, nothing was changed" in out
    for problem in ("'latest' is not a k3s release string", "k3s_gpu_worker_sha256 must be the sha256",
                    "a node may not set label node-role.kubernetes.io/gpu on itself"):
        assert problem in out, problem
