"""Verify k3s_gpu_worker_state: absent on a k3s agent (Debian 13): k3s and what it started are gone, the
NVIDIA driver and toolkit files and a user's own crictl are not."""


def test_no_k3s_process_is_left(host):
    processes = host.check_output("ps -e -o args=")
    assert "/usr/local/bin/k3s" not in processes
    assert "containerd-shim" not in processes
    assert "sleep 100000" not in processes  # the shim's child


def test_units_are_gone(host):
    for unit in ("k3s", "k3s-agent"):
        assert not host.file("/etc/systemd/system/%s.service" % unit).exists
        assert not host.file("/etc/systemd/system/%s.service.env" % unit).exists
        assert host.run("systemctl is-active %s" % unit).stdout.strip() in ("inactive", "unknown")


def test_binary_config_data_and_links_are_gone(host):
    for path in ("/usr/local/bin/k3s", "/usr/local/bin/k3s-killall.sh", "/usr/local/bin/kubectl",
                 "/usr/local/bin/ctr", "/etc/rancher/k3s", "/var/lib/rancher/k3s", "/var/lib/kubelet",
                 "/run/k3s"):
        assert not host.file(path).exists, path


def test_a_users_own_crictl_is_left(host):
    crictl = host.file("/usr/local/bin/crictl")
    assert crictl.is_file and not crictl.is_symlink
    assert "the user's own crictl" in crictl.content_string


def test_nvidia_files_are_left_alone(host):
    assert host.file("/usr/bin/nvidia-smi").is_file
    assert host.file("/usr/bin/nvidia-container-runtime").is_file
    assert host.file("/etc/modprobe.d/nvidia-stand-in.conf").is_file
