"""Unit tests of the nvidia_container_toolkit role's logic (module_utils/container_toolkit.py, its filters)."""

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.baremetal.gpu.plugins.filter.container_toolkit import FilterModule
from ansible_collections.baremetal.gpu.plugins.module_utils import container_toolkit as d

# Output of the real `nvidia-ctk runtime configure --runtime=containerd --dry-run` (toolkit 1.18.0, the
# build the molecule mirror holds), drop-in part.
NVIDIA_CTK_CONTAINERD_V2 = """version = 2

[plugins]

  [plugins."io.containerd.grpc.v1.cri"]

    [plugins."io.containerd.grpc.v1.cri".containerd]
      default_runtime_name = "nvidia"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes]

        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia]
          privileged_without_host_devices = false
          runtime_engine = ""
          runtime_root = ""
          runtime_type = "io.containerd.runc.v2"

          [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.nvidia.options]
            BinaryName = "/usr/bin/nvidia-container-runtime"
"""
# The runtime stanzas k3s's own templates render for detected runtimes (k3s-io/k3s
# pkg/agent/templates): containerd config v1, v2, and v3 (containerd 2).
K3S_V1 = '[plugins.cri.containerd.runtimes."nvidia"]\n  runtime_type = "io.containerd.runc.v2"\n' \
         '[plugins.cri.containerd.runtimes."nvidia".options]\n  BinaryName = "/usr/bin/nvidia-container-runtime"\n'
K3S_V2 = '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes."nvidia"]\n  runtime_type = "io.containerd.runc.v2"\n'
K3S_V3 = "[plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.'nvidia']\n  runtime_type = \"io.containerd.runc.v2\"\n"
K3S_EXPERIMENTAL_ONLY = '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes."nvidia-experimental"]\n'
# Output of the real `nvidia-ctk --quiet cdi list` (1.18.0) over a spec with one GPU.
CDI_LIST = "nvidia.com/gpu=0\nnvidia.com/gpu=GPU-5e0c9f1a-1111-2222-3333-444455556666\nnvidia.com/gpu=all\n"

FILTERS = FilterModule().filters()


def test_package_specs_apt_and_dnf():
    assert d.toolkit_package_specs("Debian", "1.18.0-1") == [
        "nvidia-container-toolkit=1.18.0-1", "nvidia-container-toolkit-base=1.18.0-1",
        "libnvidia-container-tools=1.18.0-1", "libnvidia-container1=1.18.0-1"]
    assert d.toolkit_package_specs("RedHat", "1.17.8-1", ["nvidia-container-toolkit-base"]) == [
        "nvidia-container-toolkit-base-1.17.8-1"]
    assert d.toolkit_package_specs("Debian", "1.18.0~rc.6-1", ["x"]) == ["x=1.18.0~rc.6-1"]


@pytest.mark.parametrize("version", ["1.18.0", "latest", "", "1.18-1"])
def test_package_specs_refuse_unpinned_versions(version):
    with pytest.raises(d.ToolkitError):
        d.toolkit_package_specs("Debian", version)
    with pytest.raises(AnsibleFilterError):
        FILTERS["nvidia_toolkit_package_specs"]("Debian", version)


def test_repo_urls_follow_nvidias_layout_and_mirrors():
    assert d.toolkit_repo_url("Debian", "x86_64") == "https://nvidia.github.io/libnvidia-container/stable/deb/amd64"
    assert d.toolkit_repo_url("Debian", "aarch64", "http://127.0.0.1:8099/") == "http://127.0.0.1:8099/deb/arm64"
    assert d.toolkit_repo_url("RedHat", "aarch64").endswith("/stable/rpm/aarch64")
    with pytest.raises(d.ToolkitError):
        d.toolkit_repo_url("Debian", "ppc64le")


@pytest.mark.parametrize("requested,present,expected", [
    ("auto", {"k3s": True, "containerd": True, "docker": True}, "k3s"),
    ("auto", {"containerd": True, "docker": True}, "containerd"),
    ("auto", {"docker": True}, "docker"),
    ("auto", {}, "none"),
    ("docker", {"k3s": True}, "docker"),
    ("none", {"k3s": True}, "none"),
])
def test_engine_selection(requested, present, expected):
    assert d.select_engine(requested, **present) == expected
    assert FILTERS["nvidia_toolkit_engine"](requested, **present) == expected


def test_unknown_engine_refused():
    with pytest.raises(AnsibleFilterError):
        FILTERS["nvidia_toolkit_engine"]("podman")


@pytest.mark.parametrize("version,supported", [
    ("k3s version v1.33.3+k3s1 (236cbf25)\ngo version go1.24.4\n", True),
    ("v1.29.0+k3s1", True),
    ("v1.28.5+k3s1", True),
    ("v1.28.4+k3s2", False),
    ("v1.27.9+k3s1", True),
    ("v1.27.8+k3s1", False),
    ("v1.26.12+k3s1", True),
    ("v1.26.11+k3s1", False),
    ("v1.25.16+k3s4", False),
    ("no version here", False),
])
def test_k3s_default_runtime_version_gate(version, supported):
    assert d.k3s_supports_default_runtime(version) is supported
    assert FILTERS["k3s_supports_default_runtime"](version) is supported


@pytest.mark.parametrize("config,found", [
    (NVIDIA_CTK_CONTAINERD_V2, True),
    (K3S_V1, True),
    (K3S_V2, True),
    (K3S_V3, True),
    (K3S_EXPERIMENTAL_ONLY, False),
    ("", False),
])
def test_containerd_config_has_nvidia_runtime(config, found):
    assert d.containerd_config_has_nvidia(config) is found


def test_containerd_config_named_runtime():
    assert d.containerd_config_has_nvidia(K3S_EXPERIMENTAL_ONLY, runtime="nvidia-experimental")


def test_cdi_list_parsing_and_coverage():
    names = d.parse_cdi_list("INFO[0000] Found 3 CDI devices\n" + CDI_LIST)
    assert names == CDI_LIST.split()
    gpu0 = {"index": 0, "uuid": "GPU-5e0c9f1a-1111-2222-3333-444455556666"}
    gpu1 = {"index": 1, "uuid": "GPU-ffff"}
    assert d.cdi_missing_gpus(names, [gpu0]) == []
    assert d.cdi_missing_gpus(names, [gpu0, gpu1]) == [gpu1]
    # Listed by UUID only still counts.
    assert d.cdi_missing_gpus(["nvidia.com/gpu=GPU-ffff"], [gpu1]) == []
    assert FILTERS["cdi_missing_gpus"](FILTERS["cdi_device_names"](CDI_LIST), [gpu1]) == [gpu1]
