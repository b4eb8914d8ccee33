"""Verify the gpu_mode role inside Debian 12/13 containers (systemd, no GPU) against the simulated cluster that
prepare started on the host: the command in its own virtualenv, its settings, its root-only kubeconfig, and
`gpu-mode` itself run inside each container against the cluster with the node's own credentials."""

import json
import os

import testinfra.utils.ansible_runner

testinfra_hosts = [
    "podman://" + name
    for name in testinfra.utils.ansible_runner.AnsibleRunner(os.environ["MOLECULE_INVENTORY_FILE"]).get_hosts("all")
]

PREFIX = "/opt/baremetal-gpu/gpu-mode"


def node(host):
    return host.check_output("hostname")


def test_the_virtualenv_has_the_pinned_client_and_no_ansible(host):
    python = PREFIX + "/venv/bin/python"
    version = host.check_output(python + " -c 'import sys; print(\"%d.%d\" % sys.version_info[:2])'")
    assert version == {"bookworm": "3.11", "trixie": "3.13"}[host.system_info.codename]
    assert host.check_output(python + " -c 'import kubernetes; print(kubernetes.__version__)'") == "37.0.2"
    assert host.run(python + " -c 'import pynvml'").rc == 0
    # the command's Ansible parts come from the packed code under lib/, not from the virtualenv
    assert host.run(python + " -I -c 'import ansible'").rc != 0


def test_the_command_runs_the_collections_code_from_the_virtualenv(host):
    cli = host.file("/usr/local/bin/gpu-mode")
    assert cli.mode == 0o755 and cli.user == "root"
    assert cli.content_string.splitlines()[0] == "#!%s/venv/bin/python -I" % PREFIX
    lib = host.file(PREFIX + "/lib")
    assert lib.is_symlink and lib.linked_to.startswith(PREFIX + "/lib-")
    assert host.file(PREFIX + "/lib/ansible_collections/baremetal/gpu/plugins/module_utils/gpu_mode/cli.py").exists
    assert host.file(PREFIX + "/lib/ansible/module_utils/urls.py").exists


def test_settings_name_the_node_and_the_kubeconfig_is_root_only(host):
    settings = json.loads(host.file("/etc/baremetal-gpu/gpu-mode.json").content_string)
    assert settings == {"node": node(host), "namespace": "ml", "kubeconfig": "/etc/baremetal-gpu/gpu-mode.kubeconfig",
                        "proc_root": "/proc"}
    kubeconfig = host.file("/etc/baremetal-gpu/gpu-mode.kubeconfig")
    assert (kubeconfig.mode, kubeconfig.user, kubeconfig.group) == (0o600, "root", "root")
    config = json.loads(kubeconfig.content_string)
    assert config["users"][0]["name"] == "gpu-mode-" + node(host)
    assert config["clusters"][0]["cluster"]["server"].startswith("https://127.0.0.1:")


def test_help_exit_codes(host):
    run = host.run("gpu-mode --help")
    assert run.rc == 0 and "exit codes:" in run.stdout
    assert host.run("gpu-mode").rc == 2  # no command: usage error


def test_status_shows_the_nodes_modes_from_the_cluster_and_says_gpu_memory_is_unavailable(host):
    run = host.run("gpu-mode status")
    assert run.rc == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == "node %s  mode (none recorded)" % node(host)
    assert lines[1] == "workloads:"
    workloads = [line.split()[0] for line in lines[2:] if line.startswith("  vllm-")]
    assert workloads == {"gpu-mode-bookworm": ["vllm-qwen-bookworm"],
                         "gpu-mode-trixie": ["vllm-qwen-trixie", "vllm-r1-trixie"]}[node(host)]
    assert any(line.startswith("GPU memory: unavailable here (") for line in lines), run.stdout


def test_list_shows_each_mode_with_its_fit_and_an_unknown_mode_is_refused(host):
    run = host.run("gpu-mode list")
    assert run.rc == 0, run.stderr
    modes = [line.split()[0] for line in run.stdout.splitlines()[1:] if line and not line.startswith(" ")]
    assert modes == {"gpu-mode-bookworm": ["ml", "off"], "gpu-mode-trixie": ["ml", "off", "r1"]}[node(host)]
    assert "no NVIDIA driver on the node" in run.stdout
    refused = host.run("gpu-mode turbo")
    assert refused.rc == 2 and "unknown mode 'turbo' for node %s; valid modes: ml (default)" % node(host) in refused.stderr
    json_status = json.loads(host.check_output("gpu-mode status --json"))
    assert json_status["node"] == node(host) and json_status["mode"] is None


def test_the_node_cannot_read_another_nodes_modes(host):
    other = {"gpu-mode-bookworm": "gpu-mode-trixie", "gpu-mode-trixie": "gpu-mode-bookworm"}[node(host)]
    run = host.run("gpu-mode status --node %s" % other)
    assert run.rc == 5 and "forbidden" in run.stderr, run.stderr
