"""Verify the common role inside Debian 12/13 containers running systemd."""

import json
import os

import testinfra.utils.ansible_runner

# Talk to the containers with podman exec directly: much faster than testinfra's ansible backend.
testinfra_hosts = [
    "podman://" + name
    for name in testinfra.utils.ansible_runner.AnsibleRunner(os.environ["MOLECULE_INVENTORY_FILE"]).get_hosts("all")
]


def test_systemd_is_pid_1(host):
    assert host.file("/proc/1/comm").content_string.strip() == "systemd"


def test_base_packages_installed(host):
    for name in ("ca-certificates", "gnupg", "python3-apt"):
        assert host.package(name).is_installed, name


def test_local_fact_names_the_os(host):
    fact = json.loads(host.file("/etc/ansible/facts.d/baremetal_gpu.fact").content_string)
    codename = host.system_info.codename
    assert fact["managed_by"] == "baremetal.gpu"
    assert fact["os"] == {"bookworm": "Debian 12", "trixie": "Debian 13"}[codename]


def test_unsupported_os_message_names_os_and_supported_list(host):
    message = host.file("/tmp/unsupported-os-message").content_string
    assert "Fedora 41 (x86_64) is not supported by baremetal.gpu" in message
    for supported in ("Debian 12", "Debian 13", "Ubuntu 22.04", "Ubuntu 24.04", "Rocky 9", "RedHat 9"):
        assert supported in message
