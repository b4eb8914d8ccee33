"""Verify k3s_gpu_worker on Debian 12 (server) and Debian 13 (agent) after: install of v1.31.9+k3s1
(prepare), upgrade to v1.32.5+k3s1 (converge), an idempotent second run, two refused binaries and one
label change (side effect). The k3s binary is a stand-in (molecule/shared/k3s-standin.py) that records
each start; its sha256 values come from the scenario's prepare step, computed on the controller."""

import json
import os
import pathlib

import pytest
import yaml

EPHEMERAL = pathlib.Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"])
SHA256 = yaml.safe_load((EPHEMERAL / "standins.yml").read_text())["standin_sha256"]
TOKEN = "K10molecule-standin-token::server:Sup3rS3cretJoinT0ken"


def is_agent(host):
    return host.backend.get_hostname() == "k3s-agent-trixie"


def unit(host):
    return "k3s-agent" if is_agent(host) else "k3s"


def starts(host):
    lines = host.file("/var/lib/k3s-standin/starts.jsonl").content_string.splitlines()
    return [json.loads(line) for line in lines]


def config(host):
    return yaml.safe_load(host.file("/etc/rancher/k3s/config.yaml").content_string)


def test_the_binary_is_the_pinned_release(host):
    binary = host.file("/usr/local/bin/k3s")
    assert binary.sha256sum == SHA256["v1.32.5+k3s1"]
    assert binary.mode == 0o755 and binary.user == "root"
    assert host.check_output("/usr/local/bin/k3s --version").splitlines()[0].startswith("k3s version v1.32.5+k3s1 ")
    assert not host.file("/usr/local/bin/.k3s.partial").exists


def test_k3s_started_once_per_release_and_once_for_the_config_change(host):
    # prepare: v1.31.9; converge (upgrade): one restart on v1.32.5; idempotence: none; two refusals:
    # none; the label change: one. The command is the role's (server or agent).
    history = [(s["version"], s["command"]) for s in starts(host)]
    command = "agent" if is_agent(host) else "server"
    assert history == [("v1.31.9+k3s1", command), ("v1.32.5+k3s1", command), ("v1.32.5+k3s1", command)]
    # the last start read the final config.yaml (the one with the new label)
    assert starts(host)[-1]["config_sha256"] == host.file("/etc/rancher/k3s/config.yaml").sha256sum


def test_the_unit_is_enabled_running_and_restarts_on_failure(host):
    service = host.service(unit(host))
    assert service.is_enabled and service.is_running
    text = host.file("/etc/systemd/system/%s.service" % unit(host)).content_string
    assert "Restart=always\n" in text and "RestartSec=5s\n" in text
    assert ("ExecStart=/usr/local/bin/k3s %s" % ("agent" if is_agent(host) else "server")) in text
    assert ("Type=exec" if is_agent(host) else "Type=notify") in text
    other = "k3s" if is_agent(host) else "k3s-agent"
    assert not host.file("/etc/systemd/system/%s.service" % other).exists


def test_config_carries_name_gpu_labels_taints_and_kubelet_args(host):
    cfg = config(host)
    labels = dict(label.split("=", 1) for label in cfg["node-label"])
    assert cfg["node-name"] == host.backend.get_hostname()
    assert labels["nvidia.com/gpu.present"] == "true"
    assert labels["nvidia.com/gpu.product"] == "NVIDIA-GeForce-RTX-3060"
    assert labels["nvidia.com/gpu.count"] == "1"
    assert labels["nvidia.com/gpu.compute.major"] == "8" and labels["nvidia.com/gpu.compute.minor"] == "6"
    assert labels["nvidia.com/cuda.driver.major"] == "570"
    assert labels["rack"] == "r2"
    mode = host.file("/etc/rancher/k3s/config.yaml").mode
    assert mode == 0o600
    if is_agent(host):
        assert cfg["server"] == "https://127.0.0.1:6443"
        assert labels["memorysize"] == "16GB"  # overridden in the inventory
        assert labels["nvidia.com/device-plugin.config"] == "t4-ts2"
        assert labels["site"] == "molecule"
        assert "node-taint" not in cfg
    else:
        assert "server" not in cfg
        assert labels["memorysize"] == "12GB"
        assert "nvidia.com/device-plugin.config" not in labels
        assert cfg["node-taint"] == ["nvidia.com/gpu=present:NoSchedule"]
        assert cfg["kubelet-arg"] == ["max-pods=250"]
        assert cfg["disable"] == ["traefik"]
        assert cfg["write-kubeconfig-mode"] == "0600"


def test_the_token_is_only_in_a_root_only_file(host):
    cfg_text = host.file("/etc/rancher/k3s/config.yaml").content_string
    assert TOKEN not in cfg_text
    token = host.file("/etc/rancher/k3s/baremetal-gpu-token")
    if is_agent(host):
        assert config(host)["token-file"] == "/etc/rancher/k3s/baremetal-gpu-token"
        assert token.content_string.strip() == TOKEN
        assert token.mode == 0o600 and token.user == "root"
    else:  # a server without a token: k3s generates one
        assert not token.exists
        assert "token-file" not in config(host)


def test_registries_and_service_environment(host):
    registries = host.file("/etc/rancher/k3s/registries.yaml")
    env = host.file("/etc/systemd/system/k3s-agent.service.env")
    if is_agent(host):
        assert yaml.safe_load(registries.content_string) == {
            "mirrors": {"docker.io": {"endpoint": ["http://127.0.0.1:5000"]}}}
        assert registries.mode == 0o600
        assert "HTTPS_PROXY=http://proxy.example.com:3128\n" in env.content_string
        assert "NO_PROXY=127.0.0.0/8,10.0.0.0/8" in env.content_string
    else:
        assert not registries.exists


def test_kubectl_crictl_ctr_link_to_k3s(host):
    for name in ("kubectl", "crictl", "ctr"):
        link = host.file("/usr/local/bin/" + name)
        assert link.is_symlink and link.linked_to == "/usr/local/bin/k3s"
    assert host.file("/usr/local/bin/k3s-killall.sh").mode == 0o755


def test_the_server_kubeconfig_reached_the_controller_pointing_at_the_server(host):
    if is_agent(host):
        pytest.skip("agents have no admin kubeconfig")
    path = EPHEMERAL / "k3s-server-bookworm.kubeconfig"
    document = yaml.safe_load(path.read_text())
    assert document["clusters"][0]["cluster"]["server"] == "https://k3s-server-bookworm:6443"
    assert path.stat().st_mode & 0o777 == 0o600


def refusal(host, name):
    return host.file("/tmp/refusal-%s" % name).content_string


def test_a_checksum_mismatch_is_refused_and_leaves_the_working_binary(host):
    message = refusal(host, "checksum-mismatch")
    assert "k3s v1.33.1+k3s1 (k3s) from http://127.0.0.1:8098/v1.33.1+k3s1/k3s has sha256 %s" % SHA256[
        "v1.33.1+k3s1"] in message
    assert "but the inventory pins %s: refusing it" % ("0" * 64) in message
    assert "/usr/local/bin/k3s was left as it was" in message
    # the binary, its process and the partial download: as before
    assert host.file("/usr/local/bin/k3s").sha256sum == SHA256["v1.32.5+k3s1"]


def test_a_checksum_of_another_release_is_refused(host):
    message = refusal(host, "other-release")
    assert 'reports "k3s version v1.32.5+k3s1 (5f6b9bc8)", not v1.33.1+k3s1' in message
