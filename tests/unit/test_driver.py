"""Unit tests of the nvidia_driver role's logic (plugins/module_utils/driver.py, platforms.py, versions.py)."""

import pathlib

import pytest

from ansible_collections.baremetal.gpu.plugins.module_utils import driver as d
from ansible_collections.baremetal.gpu.plugins.module_utils import platforms, versions

FIXTURES = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "gpu"
# /proc/driver/nvidia/version as the H100 machine wrote it (open module, a Nix-built driver: "nixbld@").
PROC_OPEN_580 = (FIXTURES / "h100-80gb-driver-580.159.04" / "proc-driver-nvidia-version.txt").read_text()
# Hand-written in the format of NVIDIA's proprietary module (the first line of its version file names no
# "Open Kernel Module"); no machine with one was captured.
PROC_PROPRIETARY_535 = (
    "NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.261.03  Wed Jul 30 20:04:10 UTC 2025\n"
    "GCC version:  gcc version 12.2.0 (Debian 12.2.0-14)\n"
)
# Hand-written: the open module built for aarch64.
PROC_OPEN_ARM = "NVRM version: NVIDIA UNIX Open Kernel Module for aarch64  570.133.20  Release Build  (x)\n"


def plat(distribution, version, arch="x86_64"):
    return platforms.platform(distribution, version, version.split(".")[0], arch)


# --- platforms ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("distribution,version,family,codename", [
    ("Ubuntu", "22.04", "Debian", "jammy"),
    ("Ubuntu", "24.04", "Debian", "noble"),
    ("Debian", "12", "Debian", "bookworm"),
    ("Debian", "13", "Debian", "trixie"),
    ("Rocky", "9", "RedHat", None),
    ("RedHat", "9", "RedHat", None),
])
def test_supported_platforms(distribution, version, family, codename):
    p = plat(distribution, version)
    assert (p["family"], p["codename"], p["release"]) == (family, codename, version)


def test_debian_point_release_maps_to_major():
    assert platforms.platform("Debian", "12.8", "12", "x86_64")["release"] == "12"


@pytest.mark.parametrize("distribution,version,major,arch", [
    ("Ubuntu", "20.04", "20", "x86_64"),
    ("Fedora", "41", "41", "x86_64"),
    ("Debian", "11", "11", "x86_64"),
    ("Ubuntu", "24.04", "24", "ppc64le"),
])
def test_unsupported_platform_names_os_and_supported_list(distribution, version, major, arch):
    with pytest.raises(platforms.UnsupportedPlatform) as err:
        platforms.platform(distribution, version, major, arch)
    message = str(err.value)
    assert "%s %s" % (distribution, version if distribution == "Ubuntu" else major) in message
    assert arch in message
    for supported in ("Debian 12", "Debian 13", "Ubuntu 22.04", "Ubuntu 24.04", "Rocky 9", "RedHat 9"):
        assert supported in message


# --- versions -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("given,expected", [(580, "580"), ("580", "580"), ("R570", "570"),
                                            ("535.261.03", "535"), (" 550 ", "550")])
def test_normalize_branch(given, expected):
    assert d.normalize_branch(given) == expected


@pytest.mark.parametrize("bad", ["58", "latest", "5800", "", None, "580-open"])
def test_normalize_branch_rejects(bad):
    with pytest.raises(d.DriverError):
        d.normalize_branch(bad)


def test_parse_and_order_driver_versions():
    assert versions.parse_driver_version("580.159.04") == (580, 159, 4)
    assert versions.parse_driver_version("570.86") == (570, 86)
    assert versions.parse_driver_version("1.18.0") is None
    assert versions.branch_of("550.163.01") == "550"
    assert versions.branch_of("garbage") is None
    assert versions.parse_driver_version("580.95.05") < versions.parse_driver_version("580.159.04")


@pytest.mark.parametrize("package_version,upstream", [
    ("580.95.05-0ubuntu0.24.04.2", "580.95.05"),
    ("3:580.65.06-1.el9", "580.65.06"),
    ("535.261.03-1", "535.261.03"),
    ("535.216.03-3~deb12u1", "535.216.03"),
    ("550.163.01-2", "550.163.01"),
])
def test_upstream_version(package_version, upstream):
    assert d.upstream_version(package_version) == upstream


def test_parse_proc_version_open_module():
    assert d.parse_proc_version(PROC_OPEN_580) == {
        "version": "580.159.04", "branch": "580", "kernel_module_type": "open", "architecture": "x86_64"}


def test_parse_proc_version_proprietary_and_arm():
    assert d.parse_proc_version(PROC_PROPRIETARY_535)["kernel_module_type"] == "proprietary"
    assert d.parse_proc_version(PROC_PROPRIETARY_535)["version"] == "535.261.03"
    arm = d.parse_proc_version(PROC_OPEN_ARM)
    assert (arm["architecture"], arm["branch"], arm["kernel_module_type"]) == ("aarch64", "570", "open")


@pytest.mark.parametrize("text", [None, "", "no nvidia here\n"])
def test_parse_proc_version_nothing_loaded(text):
    assert d.parse_proc_version(text) is None


# --- installed packages -------------------------------------------------------------------------------

DPKG_UBUNTU_580 = "\n".join([
    "nvidia-utils-580-server\t580.95.05-0ubuntu0.24.04.2\tii ",
    "libnvidia-compute-580-server:amd64\t580.95.05-0ubuntu0.24.04.2\thi ",
    "nvidia-headless-580-server-open\t580.95.05-0ubuntu0.24.04.2\tii ",
    "nvidia-container-toolkit\t1.18.0-1\tii ",
    "nvidia-modprobe\t570.133.07-1\tii ",
    "nvidia-utils-570-server\t570.172.08-0ubuntu0.24.04.1\trc ",
    "bash\t5.2.21-2ubuntu4\tii ",
])


def test_parse_dpkg_query_keeps_installed_only():
    installed = d.parse_dpkg_query(DPKG_UBUNTU_580)
    assert "nvidia-utils-570-server" not in installed  # removed, config files left
    assert installed["libnvidia-compute-580-server"] == "580.95.05-0ubuntu0.24.04.2"


def test_installed_driver_ignores_toolkit_and_modprobe_versions():
    found = d.installed_driver(d.parse_dpkg_query(DPKG_UBUNTU_580))
    assert found["branches"] == ["580"]
    assert found["version"] == "580.95.05"
    assert "nvidia-container-toolkit" not in found["packages"]
    assert "nvidia-modprobe" not in found["packages"]


def test_installed_driver_debian_and_rhel():
    debian = {"nvidia-smi": "535.261.03-1", "libcuda1": "535.261.03-1", "nvidia-persistenced": "535.171.04-1~deb12u1"}
    assert d.installed_driver(debian)["version"] == "535.261.03"
    rpm = d.parse_rpm_query("nvidia-driver\t3:580.65.06-1.el9\nkmod-nvidia-open-dkms\t3:580.65.06-1.el9\n"
                            "kernel\t0:5.14.0-503.el9\n")
    assert d.installed_driver(rpm)["branches"] == ["580"]


def test_installed_driver_mixed_branches_and_nothing():
    mixed = d.installed_driver({"nvidia-utils-570-server": "570.172.08-0ubuntu1", "nvidia-utils-580-server": "580.95.05-0ubuntu1"})
    assert mixed["branches"] == ["570", "580"] and mixed["branch"] == "580"
    empty = d.installed_driver({"bash": "5.2"})
    assert (empty["version"], empty["branch"], empty["branches"]) == (None, None, [])


def test_parse_dpkg_holds():
    assert d.parse_dpkg_holds("nvidia-smi\t\t\thold\nbash\tinstall\nlibcuda1:amd64\thold\n") == ["libcuda1", "nvidia-smi"]


# --- package selection -----------------------------------------------------------------------------------

def test_ubuntu_distro_packages_open_and_proprietary():
    p = plat("Ubuntu", "24.04")
    assert d.driver_packages(p, "distro", "580") == ["nvidia-headless-580-server-open", "nvidia-utils-580-server"]
    assert d.driver_packages(p, "distro", "570", open_kernel_module=False) == [
        "nvidia-headless-570-server", "nvidia-utils-570-server"]


def test_ubuntu_precompiled_signed_modules_follow_the_running_kernel():
    packages = d.driver_packages(plat("Ubuntu", "22.04"), "distro", "580", precompiled=True,
                                 kernel_release="5.15.0-126-generic")
    assert packages == ["nvidia-utils-580-server", "nvidia-headless-no-dkms-580-server-open",
                        "linux-modules-nvidia-580-server-open-generic",
                        "linux-modules-nvidia-580-server-open-5.15.0-126-generic"]
    with pytest.raises(d.DriverError):
        d.driver_packages(plat("Ubuntu", "22.04"), "distro", "580", precompiled=True, kernel_release="6.18.44-fc")


def test_userspace_only_packages_without_kernel_module():
    assert d.driver_packages(plat("Ubuntu", "24.04"), "distro", "580", kernel_module=False) == [
        "nvidia-utils-580-server", "libnvidia-compute-580-server"]
    assert d.driver_packages(plat("Debian", "12"), "distro", "535", kernel_module=False) == [
        "nvidia-smi", "libnvidia-ml1", "libcuda1", "nvidia-persistenced"]


def test_debian_distro_kernel_module_flavours():
    open_ = d.driver_packages(plat("Debian", "13"), "distro", "550")
    assert "nvidia-open-kernel-dkms" in open_ and "firmware-nvidia-gsp" in open_
    closed = d.driver_packages(plat("Debian", "12"), "distro", "535", open_kernel_module=False)
    assert "nvidia-kernel-dkms" in closed and "nvidia-open-kernel-dkms" not in closed


def test_debian_distro_serves_one_branch_per_release():
    with pytest.raises(d.DriverError) as err:
        d.driver_packages(plat("Debian", "12"), "distro", "580")
    assert "serves driver branch 535 only, not 580" in str(err.value)
    assert "nvidia_driver_source: cuda" in str(err.value)


def test_rhel_has_no_distro_source():
    with pytest.raises(d.DriverError) as err:
        d.driver_packages(plat("Rocky", "9"), "distro", "580")
    assert "nvidia_driver_source: cuda" in str(err.value)


@pytest.mark.parametrize("open_module,stream", [(True, "@nvidia-driver:580-open"), (False, "@nvidia-driver:580-dkms")])
def test_rhel_cuda_module_streams(open_module, stream):
    assert d.driver_packages(plat("RedHat", "9"), "cuda", "580", open_kernel_module=open_module) == [stream]


def test_apt_cuda_repo_packages_before_and_after_the_590_renames():
    p = plat("Ubuntu", "24.04")
    assert d.driver_packages(p, "cuda", "580") == ["nvidia-open-580"]
    assert d.driver_packages(p, "cuda", "570", open_kernel_module=False) == ["cuda-drivers-570"]
    assert d.driver_packages(p, "cuda", "590") == ["nvidia-driver-pinning-590", "nvidia-open"]
    assert d.driver_packages(plat("Debian", "12"), "cuda", "580", kernel_module=False) == [
        "nvidia-smi", "libcuda1", "libnvidia-ml1"]


def test_cuda_repo_arm64_only_where_nvidia_publishes_it():
    assert d.cuda_repo_url(plat("Ubuntu", "24.04", "aarch64")) == \
        "https://developer.download.nvidia.com/compute/cuda/repos/ubuntu2404/sbsa/"
    with pytest.raises(d.DriverError):
        d.driver_packages(plat("Debian", "12", "aarch64"), "cuda", "580")
    # Debian's own archive does build arm64.
    assert d.driver_packages(plat("Debian", "12", "aarch64"), "distro", "535")


def test_cuda_repo_urls_and_mirror():
    assert d.cuda_repo_url(plat("RedHat", "9")).endswith("/rhel9/x86_64/")
    assert d.cuda_repo_key_url(plat("Rocky", "9")).endswith("/rhel9/x86_64/D42D0685.pub")
    assert d.cuda_repo_key_url(plat("Debian", "12"), "http://127.0.0.1:8080/repos/") == \
        "http://127.0.0.1:8080/repos/debian12/x86_64/3bf863cc.pub"


def test_unknown_source_is_refused():
    with pytest.raises(d.DriverError):
        d.driver_packages(plat("Ubuntu", "24.04"), "ppa", "580")


def test_kernel_build_packages():
    assert d.kernel_build_packages(plat("Ubuntu", "24.04"), "6.8.0-45-generic") == \
        ["linux-headers-6.8.0-45-generic", "dkms"]
    assert d.kernel_build_packages(plat("Rocky", "9"), "5.14.0-503.el9.x86_64")[0] == "kernel-devel-5.14.0-503.el9.x86_64"
    assert d.kernel_build_packages(plat("Ubuntu", "24.04"), "6.8.0-45-generic", precompiled=True) == []


def test_apt_pin_text():
    text = d.apt_pin("580", ["nvidia-*", "libnvidia-*"])
    assert "Package: nvidia-* libnvidia-*\nPin: version 580.*\nPin-Priority: 1001\n" in text
    assert all(line.split(":", 1)[0] in ("Explanation", "Package", "Pin", "Pin-Priority")
               for line in text.splitlines())


# --- the plan ---------------------------------------------------------------------------------------------

def installed(*versions):
    return d.installed_driver({"nvidia-utils-%s-server" % v.split(".")[0]: v + "-0ubuntu1" for v in versions})


def test_plan_nothing_to_do_when_wanted_branch_is_installed_and_loaded():
    result = d.plan("580", installed("580.159.04"), d.parse_proc_version(PROC_OPEN_580))
    assert result["action"] == "none"
    assert result["branch_change_requested"] is False


def test_plan_fresh_node_installs():
    result = d.plan("580", installed(), None)
    assert result["action"] == "install" and result["current_branch"] is None


def test_plan_installed_but_not_loaded_loads():
    assert d.plan("580", installed("580.95.05"), None)["action"] == "load"
    # In a container (no kernel module step) installed is enough.
    assert d.plan("580", installed("580.95.05"), None, kernel_module=False)["action"] == "none"


def test_plan_refuses_other_loaded_branch():
    result = d.plan("570", installed("580.159.04"), d.parse_proc_version(PROC_OPEN_580))
    assert result["action"] == "refuse"
    assert result["branch_change_requested"] is True
    assert "Driver branch 580 is loaded but branch 570" in result["reason"]
    assert "nvidia_driver_allow_branch_change: true" in result["reason"]


def test_plan_refuses_other_installed_branch_even_when_nothing_is_loaded():
    result = d.plan("580", installed("570.172.08"), None)
    assert result["action"] == "refuse"
    assert "Driver branch 570 is installed" in result["reason"]


def test_plan_change_branch_when_allowed():
    result = d.plan("570", installed("580.159.04"), d.parse_proc_version(PROC_OPEN_580), allow_branch_change=True)
    assert result["action"] == "change_branch" and result["current_branch"] == "580"


def test_plan_flavour_change_counts_as_a_change():
    loaded = d.parse_proc_version(PROC_PROPRIETARY_535)
    refused = d.plan("535", installed("535.261.03"), loaded, open_kernel_module=True)
    assert refused["action"] == "refuse" and refused["flavour_change_requested"]
    assert "proprietary kernel module is loaded" in refused["reason"]
    assert d.plan("535", installed("535.261.03"), loaded, open_kernel_module=False)["action"] == "none"


def test_plan_adopts_a_driver_not_installed_by_packages():
    # The H100 machine's case if its driver came from a runfile: loaded, no driver package.
    result = d.plan("580", installed(), d.parse_proc_version(PROC_OPEN_580))
    assert result["action"] == "adopt" and result["managed_by_packages"] is False
    assert "580.159.04" in result["reason"]
    assert d.plan("570", installed(), d.parse_proc_version(PROC_OPEN_580))["action"] == "refuse"


# --- reboot decision --------------------------------------------------------------------------------------

def test_no_reboot_when_installed_is_loaded():
    decision = d.reboot_decision("580.159.04", "580.159.04", reboot_allowed=True)
    assert decision == {"required": False, "reboot": False, "reason": "Driver 580.159.04 is installed and loaded."}


def test_reboot_after_upgrade_or_branch_change():
    decision = d.reboot_decision("570.172.08", "580.159.04")
    assert decision["required"] and not decision["reboot"]
    assert "580.159.04 is loaded but 570.172.08 is installed" in decision["reason"]
    assert d.reboot_decision("570.172.08", "580.159.04", reboot_allowed=True)["reboot"] is True


def test_reboot_when_nouveau_holds_the_gpu():
    decision = d.reboot_decision("580.95.05", None, nouveau_loaded=True, reboot_allowed=True)
    assert decision["required"] and decision["reboot"] and "nouveau" in decision["reason"]


def test_reboot_when_module_failed_to_load_names_the_error():
    decision = d.reboot_decision("580.95.05", None, load_error="modprobe: ERROR: could not insert 'nvidia'")
    assert decision["required"] and "could not insert" in decision["reason"]


def test_never_reboot_without_kernel_module_step_or_driver():
    assert d.reboot_decision("535.261.03", None, nouveau_loaded=True, kernel_module=False,
                             reboot_allowed=True)["required"] is False
    assert d.reboot_decision(None, None)["required"] is False
    assert d.reboot_decision(None, "580.159.04")["required"] is False


# --- Secure Boot ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("output,expected", [
    ("SecureBoot enabled\n", True),
    ("SecureBoot disabled\nPlatform is in Setup Mode\n", False),
    ("This system doesn't support Secure Boot\n", False),
    ("EFI variables are not supported on this system\n", False),
    ("", None),
])
def test_parse_secure_boot_from_mokutil(output, expected):
    assert d.parse_secure_boot(mokutil_output=output) is expected


def test_parse_secure_boot_from_efivar_bytes():
    assert d.parse_secure_boot(efivar_bytes=b"\x06\x00\x00\x00\x01") is True
    assert d.parse_secure_boot(efivar_bytes=b"\x06\x00\x00\x00\x00") is False
    assert d.parse_secure_boot(efivar_bytes=b"\x06") is None


def test_secure_boot_blocks_unsigned_dkms_module_with_steps():
    verdict = d.secure_boot_verdict(True, distribution="Ubuntu")
    assert verdict["ok"] is False
    steps = " ".join(verdict["fix"])
    assert "mokutil --import /var/lib/shim-signed/mok/MOK.der" in steps
    assert "nvidia_driver_ubuntu_precompiled: true" in steps
    debian = d.secure_boot_verdict(True, distribution="Debian")
    assert "mokutil --import /var/lib/dkms/mok.pub" in " ".join(debian["fix"])
    assert not any("precompiled" in step for step in debian["fix"])


@pytest.mark.parametrize("kwargs", [
    {"enabled": False},
    {"enabled": None},
    {"enabled": True, "module_loaded": True},
    {"enabled": True, "precompiled_signed": True},
    {"enabled": True, "mok_key_enrolled": True},
    {"enabled": True, "kernel_module": False},
])
def test_secure_boot_passes(kwargs):
    assert d.secure_boot_verdict(**kwargs)["ok"] is True


# --- draining k3s nodes -----------------------------------------------------------------------------------

def test_drain_plan():
    assert d.drain_plan(False)["drain"] is False
    server = d.drain_plan(True, local_kubeconfig=True, node_name="gpu1", timeout=120)
    assert server["run_on"] == "self" and server["possible"]
    assert server["argv"] == ["k3s", "kubectl", "drain", "gpu1", "--ignore-daemonsets", "--delete-emptydir-data",
                              "--timeout=120s"]
    assert server["uncordon_argv"] == ["k3s", "kubectl", "uncordon", "gpu1"]
    agent = d.drain_plan(True, delegate="k3s-server-1", node_name="gpu1")
    assert agent["run_on"] == "k3s-server-1"
    stuck = d.drain_plan(True, node_name="gpu1")
    assert stuck["possible"] is False and "nvidia_driver_drain_delegate" in stuck["reason"]
    with pytest.raises(d.DriverError):
        d.drain_plan(True)
