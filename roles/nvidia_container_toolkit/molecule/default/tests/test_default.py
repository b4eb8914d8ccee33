"""Verify the nvidia_container_toolkit role in Debian 12/13 systemd containers with containerd."""

import re

import pytest

KEYRING = "/etc/apt/keyrings/baremetal-gpu-nvidia-container-toolkit.asc"


def test_repository_points_at_the_mirror_with_its_key(host):
    sources = host.file("/etc/apt/sources.list.d/baremetal-gpu-nvidia-container-toolkit.sources").content_string
    assert "URIs: http://127.0.0.1:8099/deb/amd64" in sources
    assert "Suites: /" in sources
    assert "Signed-By: %s" % KEYRING in sources
    assert host.file(KEYRING).content_string == host.file("/srv/nvidia-mirror/gpgkey").content_string


def test_apt_trusts_the_signed_mirror(host):
    # apt verified InRelease against the key: the package's candidate comes from the mirror.
    policy = host.check_output("apt-cache policy nvidia-container-toolkit-base")
    assert "Installed: 1.18.0-1" in policy
    assert "http://127.0.0.1:8099/deb/amd64  Packages" in policy


def test_toolkit_installed_pinned_and_held(host):
    package = host.package("nvidia-container-toolkit-base")
    assert package.is_installed and package.version == "1.18.0-1"
    package_name, selection = host.check_output("dpkg --get-selections nvidia-container-toolkit-base").split()
    assert selection == "hold"
    assert "NVIDIA Container Toolkit CLI version 1.18.0" in host.check_output("nvidia-ctk --version")


def test_containerd_sees_the_nvidia_runtime_as_default(host):
    # containerd itself merges its config and the drop-in nvidia-ctk wrote.
    dump = host.check_output("containerd config dump")
    assert re.search(r"runtimes\.['\"]?nvidia['\"]?\]", dump), dump
    assert 'BinaryName = "/usr/bin/nvidia-container-runtime"' in dump
    assert 'default_runtime_name = "nvidia"' in dump


def test_running_containerd_loaded_the_nvidia_runtime(host):
    # The role's handler restarted containerd: the running daemon's CRI plugin (its start-up log line)
    # has the nvidia runtime as default, not just the files on disk.
    assert host.service("containerd").is_running
    journal = host.check_output("journalctl -u containerd --no-pager -o cat")
    starts = [line for line in journal.splitlines() if "Start cri plugin with config" in line]
    assert starts, journal[-2000:]
    assert "DefaultRuntimeName:nvidia" in starts[-1]
    assert "BinaryName:/usr/bin/nvidia-container-runtime" in starts[-1]


@pytest.mark.parametrize("unit", ["nvidia-cdi-refresh.path"])
def test_package_postinst_ran(host, unit):
    # NVIDIA's postinst writes the runtime config and enables CDI refresh.
    assert host.file("/etc/nvidia-container-runtime/config.toml").exists
    assert host.service(unit).is_enabled


def test_containerd_config_imports_the_nvidia_drop_in(host):
    # The role wrote both files itself (copy), from nvidia-ctk's rendering in a scratch directory: the
    # import names the real drop-in directory, nothing of the scratch directory is left behind.
    config = host.file("/etc/containerd/config.toml").content_string
    assert "/etc/containerd/config.d/*.toml" in config, config
    assert config.count("/etc/containerd/config.d/*.toml") == 1, config
    assert ".nvidia-ctk" not in config
    drop_in = host.file("/etc/containerd/config.d/99-nvidia.toml")
    assert drop_in.mode == 0o644 and drop_in.user == "root"
    assert 'BinaryName = "/usr/bin/nvidia-container-runtime"' in drop_in.content_string
    assert host.run("ls -d /tmp/*.nvidia-ctk").rc != 0
