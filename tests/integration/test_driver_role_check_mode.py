"""ansible-playbook --check runs of the nvidia_driver role against this machine with faked OS facts.

Ubuntu's and RHEL's archives and NVIDIA's repositories are not reachable here, and no Ubuntu or RHEL
container image can be built, so their paths run in check mode on localhost with the distribution
facts overridden on the command line. The package-manager tasks (tag nvidia_driver_packages) are
skipped: apt cannot resolve Ubuntu package names here and dnf does not exist on Debian. What runs is
real: the plan module reading this machine's dpkg database and /proc, the refusals, the repository
file, pin and blacklist contents (as --diff shows them), the key download request against a local
HTTP server, and the reboot decision. Nothing is written (check mode), which the tests assert too.
"""

import functools
import http.server
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLAY = """
- name: Run the nvidia_driver role with faked facts
  hosts: localhost
  gather_facts: true
  roles:
    - role: baremetal.gpu.nvidia_driver
"""
UBUNTU_2404 = {"ansible_distribution": "Ubuntu", "ansible_distribution_version": "24.04",
               "ansible_distribution_major_version": "24", "ansible_os_family": "Debian",
               "ansible_kernel": "6.8.0-45-generic", "ansible_architecture": "x86_64"}
UBUNTU_2204 = dict(UBUNTU_2404, ansible_distribution_version="22.04", ansible_distribution_major_version="22",
                   ansible_kernel="5.15.0-126-generic")
ROCKY_9 = {"ansible_distribution": "Rocky", "ansible_distribution_version": "9.4",
           "ansible_distribution_major_version": "9", "ansible_os_family": "RedHat",
           "ansible_kernel": "5.14.0-427.13.1.el9_4.x86_64", "ansible_architecture": "x86_64"}
# /proc/driver/nvidia/version as the H100 machine wrote it (tests/fixtures/gpu/.../README.md).
H100_PROC_VERSION = ROOT / "tests" / "fixtures" / "gpu" / "h100-80gb-driver-580.159.04" / "proc-driver-nvidia-version.txt"
WRITTEN = ["/etc/apt/preferences.d/baremetal-gpu-nvidia-driver.pref",
           "/etc/apt/sources.list.d/baremetal-gpu-nvidia-cuda.sources",
           "/etc/modprobe.d/blacklist-nouveau.conf"]

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def nothing_written_before():
    existing = [path for path in WRITTEN if os.path.exists(path)]
    if existing:
        pytest.skip("this machine already has files the role writes: %s" % existing)
    yield
    assert [path for path in WRITTEN if os.path.exists(path)] == [], "check mode wrote files"


class Recorder(http.server.SimpleHTTPRequestHandler):
    requests = []

    def do_HEAD(self):  # noqa: N802 (http.server's naming)
        Recorder.requests.append(("HEAD", self.path))
        super().do_HEAD()

    def do_GET(self):  # noqa: N802
        Recorder.requests.append(("GET", self.path))
        super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture
def mirror(tmp_path):
    """A local HTTP server laid out like NVIDIA's CUDA repositories (only the key file)."""
    root = tmp_path / "mirror"
    key = root / "repos" / "ubuntu2204" / "x86_64" / "3bf863cc.pub"
    key.parent.mkdir(parents=True)
    key.write_text("-----BEGIN PGP PUBLIC KEY BLOCK-----\n(served for the check-mode HEAD request)\n")
    Recorder.requests = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             functools.partial(Recorder, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield "http://127.0.0.1:%d/repos" % server.server_address[1]
    server.shutdown()
    server.server_close()


def run_role(tmp_path, extra, skip_tags=("nvidia_driver_packages", "nvidia_driver_persistenced")):
    play = tmp_path / "play.yml"
    play.write_text(PLAY)
    extra = dict(extra, ansible_python_interpreter=sys.executable)
    argv = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c", "local",
            "--check", "--diff", "-e", json.dumps(extra), str(play)]
    if skip_tags:
        argv += ["--skip-tags", ",".join(skip_tags)]
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
               ANSIBLE_NOCOLOR="1", ANSIBLE_LOCAL_TEMP=str(tmp_path / "ansible-tmp"))
    proc = subprocess.run(argv, cwd=str(ROOT), env=env, capture_output=True, text=True, timeout=240, check=False)
    try:
        data = json.loads(proc.stdout)
    except ValueError:
        pytest.fail("ansible-playbook printed no JSON (rc %s): %s %s"
                    % (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:]))
    return proc.returncode, Run(data)


class Run:
    def __init__(self, data):
        self.data = data
        self.tasks = [(t["task"]["name"].split(" : ", 1)[-1], t["hosts"].get("localhost", {}))
                      for p in data["plays"] for t in p["tasks"]]
        self.stats = data["stats"]["localhost"]

    def results(self, name):
        return [result for task, result in self.tasks if task == name]

    def result(self, name):
        found = [r for r in self.results(name) if not r.get("skipped")]
        assert found, "task %r did not run; ran: %s" % (name, [t for t, r in self.tasks if not r.get("skipped")])
        return found[0]

    def ran(self, name):
        return any(not r.get("skipped") for r in self.results(name))

    def failures(self):
        return [(task, r.get("msg")) for task, r in self.tasks if r.get("failed")]

    def after(self, name):
        diff = self.result(name)["diff"]
        diff = diff[0] if isinstance(diff, list) else diff
        return diff["after"]


def test_ubuntu_2404_distro_open_module(tmp_path):
    rc, run = run_role(tmp_path, dict(UBUNTU_2404, nvidia_driver_branch="580"))
    assert rc == 0, run.failures()
    plan = run.result("Read the node's driver state")
    assert plan["packages"] == ["nvidia-headless-580-server-open", "nvidia-utils-580-server"]
    assert plan["build_packages"] == ["linux-headers-6.8.0-45-generic", "dkms"]
    assert plan["plan"]["action"] == "install"
    assert "Pin: version 580.*" in run.after("Pin the driver packages to the branch")
    assert "blacklist nouveau" in run.after("Blacklist nouveau (the initramfs picks up /etc/modprobe.d)")
    # Ubuntu's own archive needs no extra repository; Debian's non-free file is for Debian only.
    assert not run.ran("Configure Debian's contrib, non-free and non-free-firmware components")
    assert not run.ran("Configure NVIDIA's CUDA repository")
    # Nothing was installed in check mode, so nothing is loaded and no reboot is decided.
    assert run.result("Decide whether the node needs a reboot")["ansible_facts"]["nvidia_driver_reboot_decision"][
        "required"] is False


def test_ubuntu_2204_cuda_repository_from_a_mirror(tmp_path, mirror):
    rc, run = run_role(tmp_path, dict(UBUNTU_2204, nvidia_driver_branch="570", nvidia_driver_source="cuda",
                                      nvidia_driver_open_kernel_module=False, nvidia_driver_cuda_repo_base=mirror))
    assert rc == 0, run.failures()
    plan = run.result("Read the node's driver state")
    assert plan["packages"] == ["cuda-drivers-570"]
    sources = run.after("Configure the CUDA repository")
    assert "URIs: %s/ubuntu2204/x86_64/\n" % mirror in sources
    assert "Suites: /\n" in sources
    assert "Signed-By: /etc/apt/keyrings/baremetal-gpu-nvidia-cuda.asc" in sources
    assert ("HEAD", "/repos/ubuntu2204/x86_64/3bf863cc.pub") in Recorder.requests
    assert "Pin: version 570.*" in run.after("Pin the driver packages to the branch")


def test_ubuntu_precompiled_modules_skip_dkms(tmp_path):
    rc, run = run_role(tmp_path, dict(UBUNTU_2404, nvidia_driver_branch="580", nvidia_driver_ubuntu_precompiled=True))
    assert rc == 0, run.failures()
    plan = run.result("Read the node's driver state")
    assert "linux-modules-nvidia-580-server-open-6.8.0-45-generic" in plan["packages"]
    assert plan["build_packages"] == []


def test_rocky_9_cuda_module_stream(tmp_path):
    # yum_repository needs /etc/yum.repos.d, which a Debian machine lacks: the repository tasks are
    # skipped here (tag nvidia_driver_repo); the plan and the dracut configuration still run.
    rc, run = run_role(tmp_path, dict(ROCKY_9, nvidia_driver_branch="580", nvidia_driver_source="cuda"),
                       skip_tags=("nvidia_driver_repo", "nvidia_driver_packages", "nvidia_driver_persistenced"))
    assert rc == 0, run.failures()
    plan = run.result("Read the node's driver state")
    assert plan["packages"] == ["@nvidia-driver:580-open"]
    assert plan["build_packages"][0] == "kernel-devel-5.14.0-427.13.1.el9_4.x86_64"
    assert plan["cuda_repo"]["url"].endswith("/rhel9/x86_64/")
    assert plan["cuda_repo"]["key_url"].endswith("/rhel9/x86_64/D42D0685.pub")
    assert 'omit_drivers+=" nouveau "' in run.after("Keep nouveau out of the initramfs")


def test_rocky_9_distro_source_fails_naming_the_fix(tmp_path):
    rc, run = run_role(tmp_path, dict(ROCKY_9, nvidia_driver_branch="580"))
    assert rc != 0
    assert "nvidia_driver_source: cuda" in run.result(
        "Fail when the wanted branch cannot be installed from the chosen source")["msg"]
    assert run.stats["changed"] == 0


def test_unsupported_os_fails_first(tmp_path):
    rc, run = run_role(tmp_path, dict(UBUNTU_2404, ansible_distribution_version="20.04",
                                      ansible_distribution_major_version="20"))
    assert rc != 0
    message = run.result("Read the node's driver state")["msg"]
    assert "Ubuntu 20.04 (x86_64) is not supported" in message and "Ubuntu 24.04" in message
    assert run.stats["changed"] == 0


def proc_with_the_h100_driver(tmp_path):
    """A directory laid out like /proc with the H100 machine's driver loaded (the role's internal test seam)."""
    proc = tmp_path / "proc"
    (proc / "driver" / "nvidia").mkdir(parents=True)
    (proc / "driver" / "nvidia" / "version").write_text(H100_PROC_VERSION.read_text())
    return str(proc)


def test_other_loaded_branch_is_refused_before_any_change(tmp_path):
    rc, run = run_role(tmp_path, dict(UBUNTU_2404, nvidia_driver_branch="570",
                                      __nvidia_driver_proc_root=proc_with_the_h100_driver(tmp_path)), skip_tags=())
    assert rc != 0
    refusal = run.result("Refuse to change the driver branch under running workloads")
    assert "Driver branch 580 is loaded but branch 570" in refusal["msg"]
    assert run.stats["changed"] == 0
    assert not run.ran("Pin the driver packages to the branch")


def test_verify_only_with_the_loaded_branch_changes_nothing(tmp_path):
    # gpu_facts needs a real GPU: the verification itself runs on the H100 (tests/device/run_driver_verify.sh).
    rc, run = run_role(tmp_path, dict(UBUNTU_2404, nvidia_driver_branch="580", nvidia_driver_verify_only=True,
                                      __nvidia_driver_proc_root=proc_with_the_h100_driver(tmp_path)),
                       skip_tags=("nvidia_driver_verify",))
    assert rc == 0, run.failures()
    plan = run.result("Read the node's driver state")
    assert plan["plan"]["action"] == "adopt"  # no driver package on this machine: as after a runfile install
    # the loaded driver as gpu_facts' kernel-module code reads it from the (test) /proc
    assert plan["loaded"] == {"version": "580.159.04", "branch": "580", "kernel_module_type": "open",
                              "architecture": "x86_64"}
    assert plan["nouveau_loaded"] is False
    assert plan["gpus"] == [] and plan["gpu_reason"]  # no GPU on this machine: gpu_facts' code says why
    assert plan["reboot"]["required"] is False
    assert run.stats["changed"] == 0
    assert not run.ran("Install, hold and load the driver")
