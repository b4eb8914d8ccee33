"""The shipped inventories carry every host and variable site.yml needs, with no secret in plain text, and the
home lab's marked k3s checksum placeholder is refused by site.yml's preflight before anything changes."""

import json
import re

import pytest

from tests.harness.ansible_cli import ROOT, ansible_playbook, run_tool

INVENTORIES = ["homelab", "local", "examples/datacenter-speech", "examples/homelab-standby", "examples/t4-timesliced",
               "examples/workstation-asr-fallback"]
NODE_STAGES = {"os", "driver", "k3s", "container_toolkit"}


def inventory(name):
    listed = json.loads(run_tool("ansible-inventory", "-i", str(ROOT / "inventories" / name), "--list").stdout)
    return listed, listed["_meta"]["hostvars"]


def group_hosts(listed, group):
    hosts = list(listed.get(group, {}).get("hosts", []))
    for child in listed.get(group, {}).get("children", []):
        hosts += group_hosts(listed, child)
    return hosts


@pytest.mark.parametrize("name", INVENTORIES)
def test_every_gpu_node_has_what_site_needs(name):
    listed, hostvars = inventory(name)
    gpu_nodes = group_hosts(listed, "gpu_nodes")
    assert gpu_nodes, "%s has no gpu_nodes" % name
    for host in gpu_nodes + group_hosts(listed, "k3s_servers"):
        hv = hostvars.get(host, {})
        skipped = set(hv.get("site_skip", {}))
        assert skipped <= NODE_STAGES, (host, skipped)
        if host in gpu_nodes and "driver" not in skipped:
            assert re.match(r"^\d{3}$", str(hv.get("nvidia_driver_branch", ""))), (host, "nvidia_driver_branch")
        if "k3s" not in skipped:
            assert re.match(r"^v\d+\.\d+\.\d+\+k3s\d+$", hv.get("k3s_gpu_worker_version", "")), (host, "k3s version")
            sha = hv.get("k3s_gpu_worker_sha256", "")
            # the real checksum, or the marked placeholder the preflight refuses
            assert re.match(r"^[0-9a-f]{64}$", sha) or sha.startswith("REPLACE-ME"), (host, sha)
            role = hv.get("k3s_gpu_worker_role")
            assert role in ("server", "agent"), (host, role)
            if role == "agent":
                assert hv.get("k3s_gpu_worker_server_url", "").startswith("https://"), host
                assert "vault_k3s_token" in hv.get("k3s_gpu_worker_token", ""), (host, "token from the vault")
        if host in gpu_nodes and "gpu_modes" in hv:
            modes = hv["gpu_modes"]
            assert sum(1 for m in modes.values() if (m or {}).get("default")) == 1, (host, "one default mode")
        if host in gpu_nodes and "k3s" not in skipped and hv.get("k3s_gpu_worker_device_plugin_config"):
            # the label names a configuration the device plugin stage renders
            assert hv["k3s_gpu_worker_device_plugin_config"] in hv.get("nvidia_device_plugin_configs", {}), host
        if host in gpu_nodes and any((m or {}).get("standby") for m in hv.get("gpu_modes", {}).values()):
            # each pod of a mode, awake or asleep, holds an nvidia.com/gpu of the one GPU: time-slicing must
            # advertise at least that many (a pod short of one stays Pending)
            config = hv.get("nvidia_device_plugin_configs", {}).get(hv.get("k3s_gpu_worker_device_plugin_config"))
            pods = max(len(m.get("workloads", [])) + len(m.get("standby", [])) for m in hv["gpu_modes"].values() if m)
            assert config and config.get("replicas", 1) >= pods, (host, "time-slicing for standby", config, pods)
        if hv.get("ansible_connection") == "local" and host != "localhost" or host == "localhost" and host in gpu_nodes:
            assert hv.get("baremetal_gpu_local_node") or skipped == NODE_STAGES, (host, "local node")


@pytest.mark.parametrize("name", INVENTORIES)
def test_no_secret_in_plain_text(name):
    hostvars = inventory(name)[1]
    for host, hv in hostvars.items():
        for key in ("k3s_gpu_worker_token", "vllm_hf_token"):
            value = hv.get(key, "")
            assert value == "" or re.match(r"^\{\{ vault_[a-z0-9_]+ \| default\(''\) \}\}$", value), (host, key, value)
    for path in (ROOT / "inventories" / name).rglob("*"):
        if path.is_file():
            assert not re.search(r"\bK10[0-9a-f]{20,}|hf_[A-Za-z0-9]{20,}", path.read_text()), path


@pytest.mark.slow
@pytest.mark.parametrize("name", ["homelab", "examples/homelab-standby"])
def test_the_home_lab_checksum_placeholder_is_refused_before_anything_changes(tmp_path, name):
    password = tmp_path / "vault-password"
    password.write_text("unused\n")
    run = ansible_playbook(ROOT / "site.yml", "--limit", "k3s-server", "--vault-password-file", str(password),
                           inventory=ROOT / "inventories" / name, check=False,
                           extra_vars={"ansible_connection": "local", "baremetal_gpu_local_node": True,
                                       "ansible_python_interpreter": "{{ ansible_playbook_python }}"})
    out = " ".join((run.stdout + run.stderr).split())
    assert run.returncode != 0
    assert "k3s_gpu_worker_sha256 must be the sha256 of the file, 64 hexadecimal digits" in out
    assert "REPLACE-ME: sha256 of k3s v1.32.5+k3s1 (amd64)" in out
    assert re.search(r"k3s-server\s*: ok=\d+\s+changed=0", run.stdout), run.stdout[-2000:]
