"""Verify the nvidia_driver role in Debian 12/13 systemd containers (kernel module step off)."""

import pytest

BRANCH = {"bookworm": "535", "trixie": "550"}
USERSPACE = ("nvidia-smi", "libnvidia-ml1", "libcuda1", "nvidia-persistenced")


@pytest.fixture
def branch(host):
    return BRANCH[host.system_info.codename]


@pytest.mark.parametrize("name", USERSPACE)
def test_userspace_packages_installed_on_the_branch(host, branch, name):
    package = host.package(name)
    assert package.is_installed
    assert package.version.startswith(branch + "."), package.version


def test_no_kernel_module_packages_with_the_kernel_step_off(host):
    for name in ("nvidia-kernel-dkms", "nvidia-open-kernel-dkms", "dkms"):
        assert not host.package(name).is_installed, name


@pytest.mark.parametrize("name", USERSPACE)
def test_driver_packages_held(host, name):
    package, selection = host.check_output("dpkg --get-selections %s", name).split()
    assert (package.split(":")[0], selection) == (name, "hold")


def test_apt_pin_keeps_the_branch(host, branch):
    pref = host.file("/etc/apt/preferences.d/baremetal-gpu-nvidia-driver.pref")
    assert pref.mode == 0o644
    assert "Pin: version %s.*" % branch in pref.content_string
    assert "Pin-Priority: 1001" in pref.content_string
    policy = host.check_output("apt-cache policy nvidia-smi")
    # apt itself reads the pin: the installed version carries priority 1001.
    assert "1001" in policy, policy


def test_upgrade_would_not_touch_the_driver(host):
    simulated = host.check_output("apt-get -s -o Debug::NoLocking=1 dist-upgrade")
    for name in USERSPACE:
        assert "Inst %s " % name not in simulated


def test_nonfree_sources_configured(host):
    codename = host.system_info.codename
    sources = host.file("/etc/apt/sources.list.d/baremetal-gpu-debian-nonfree.sources").content_string
    assert "Suites: %s %s-updates" % (codename, codename) in sources
    assert "Suites: %s-security" % codename in sources
    assert sources.count("Components: contrib non-free non-free-firmware") == 2
    assert "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg" in sources


def test_nouveau_blacklisted_for_modprobe_and_initramfs(host):
    blacklist = host.file("/etc/modprobe.d/blacklist-nouveau.conf")
    assert "blacklist nouveau" in blacklist.content_string
    assert "options nouveau modeset=0" in blacklist.content_string
    # mkinitramfs copies /etc/modprobe.d/*.conf into every initramfs it builds, so the rebuild the
    # role's handler runs (update-initramfs -u -k all) carries the blacklist into early boot.
    assert host.run("grep -q 'for file in /etc/modprobe.d/\\*.conf' /usr/sbin/mkinitramfs").rc == 0


def test_persistenced_enabled(host):
    service = host.service("nvidia-persistenced")
    assert service.is_enabled


def test_nvidia_smi_is_the_real_binary(host, branch):
    # No driver can load in a container: the real nvidia-smi says so.
    result = host.run("nvidia-smi")
    assert result.rc != 0
    assert "couldn't communicate with the NVIDIA driver" in result.stdout + result.stderr


def test_wrong_distro_branch_fails_naming_the_fix(host, branch):
    message = host.file("/tmp/wrong-branch-message").content_string
    assert "serves driver branch %s only, not 570" % branch in message
    assert "nvidia_driver_source: cuda" in message


def test_branch_change_refused_before_any_change(host, branch):
    message = host.file("/tmp/branch-change-refusal").content_string
    assert "Driver branch %s is installed but branch 570" % branch in message
    assert "nvidia_driver_allow_branch_change: true" in message
    assert not host.file("/etc/apt/sources.list.d/baremetal-gpu-nvidia-cuda.sources").exists
    assert "Pin: version %s.*" % branch in host.file(
        "/etc/apt/preferences.d/baremetal-gpu-nvidia-driver.pref").content_string
