"""The k3s_gpu_worker role's decisions (plugins/module_utils/k3s.py): release strings, checksums,
architectures, server URLs, GPU labels, taints, config.yaml content and the refusals."""

import pytest

from ansible_collections.baremetal.gpu.plugins.filter.k3s import FilterModule
from ansible_collections.baremetal.gpu.plugins.module_utils import k3s

SHA = "0123456789abcdef" * 4
RTX_3060 = {"driver_version": "570.195.03", "cuda_driver_version": "12.8",
            "gpus": [{"index": 0, "name": "NVIDIA GeForce RTX 3060", "compute_capability": "8.6",
                      "memory_total_mib": 12288, "architecture": "Ampere"}]}
TWO_T4 = {"driver_version": "535.247.01", "cuda_driver_version": "12.2",
          "gpus": [{"index": i, "name": "Tesla T4", "compute_capability": "7.5", "memory_total_mib": 15360,
                    "architecture": "Turing"} for i in (0, 1)]}


def settings(**overrides):
    base = {"state": "present", "role": "server", "architecture": "x86_64", "version": "v1.32.5+k3s1",
            "sha256": SHA, "release_url": "https://github.com/k3s-io/k3s/releases/download", "binary_url": "",
            "binary_src": "", "server_url": "", "token_set": False, "token_file": "/etc/rancher/k3s/token",
            "node_name": "k3s-gpu-worker", "gpu_labels": True, "node_labels": {}, "device_plugin_config": "",
            "node_taints": [], "kubelet_args": [], "default_runtime": "", "config_extra": {}, "require_gpu": True}
    base.update(overrides)
    return base


def problems_of(**overrides):
    with pytest.raises(k3s.K3sError) as err:
        k3s.plan(settings(**overrides), RTX_3060)
    return str(err.value)


@pytest.mark.parametrize("version, parsed", [
    ("v1.32.5+k3s1", (1, 32, 5)),
    ("v1.28.15+k3s2", (1, 28, 15)),
    ("v1.33.0-rc2+k3s1", (1, 33, 0)),
    ("1.32.5+k3s1", None),
    ("v1.32.5", None),
    ("v1.32+k3s1", None),
    ("stable", None),
    ("latest", None),
    ("", None),
])
def test_release_strings(version, parsed):
    assert k3s.parse_release(version) == parsed


@pytest.mark.parametrize("mib, gb", [(12288, 12), (15360, 16), (16384, 16), (12282, 12), (81559, 80),
                                     (23028, 24), (11264, 11), (10240, 10), (143771, 141), (46068, 48)])
def test_nominal_memory_size_of_a_gpu(mib, gb):
    assert k3s.nominal_gb(mib) == gb


def test_labels_of_the_home_lab_rtx_3060():
    assert k3s.gpu_labels(RTX_3060) == {
        "nvidia.com/gpu.present": "true",
        "nvidia.com/gpu.count": "1",
        "nvidia.com/gpu.product": "NVIDIA-GeForce-RTX-3060",
        "nvidia.com/gpu.memory": "12288",
        "memorysize": "12GB",
        "nvidia.com/gpu.family": "ampere",
        "nvidia.com/gpu.compute.major": "8",
        "nvidia.com/gpu.compute.minor": "6",
        "nvidia.com/cuda.driver.major": "570",
        "nvidia.com/cuda.driver.minor": "195",
        "nvidia.com/cuda.driver.rev": "03",
        "nvidia.com/cuda.runtime.major": "12",
        "nvidia.com/cuda.runtime.minor": "8",
    }


def test_memorysize_is_the_nodes_total_as_the_datacenter_chart_selects_it():
    # Two 16 GB GPUs: the ASR chart's node affinity is memorysize In [32GB].
    labels = k3s.gpu_labels(TWO_T4)
    assert labels["memorysize"] == "32GB"
    assert labels["nvidia.com/gpu.count"] == "2"
    assert labels["nvidia.com/gpu.product"] == "Tesla-T4"
    assert k3s.gpu_labels({"gpus": []}) == {}


def test_overrides_replace_and_drop_derived_labels():
    labels, problems = k3s.node_labels(RTX_3060, {"memorysize": "16GB", "nvidia.com/gpu.family": None,
                                                  "site": "lab"}, device_plugin_config="ts2")
    assert problems == []
    assert labels["memorysize"] == "16GB" and labels["site"] == "lab"
    assert "nvidia.com/gpu.family" not in labels
    assert labels["nvidia.com/device-plugin.config"] == "ts2"


def test_a_plan_for_a_server():
    plan = k3s.plan(settings(node_taints=["nvidia.com/gpu=present:NoSchedule"], kubelet_args=["max-pods=250"],
                             config_extra={"disable": ["traefik"]}, device_plugin_config="default"), RTX_3060)
    assert plan["service"] == "k3s" and plan["unit_type"] == "notify" and plan["command"] == "server"
    assert plan["binary_url"] == "https://github.com/k3s-io/k3s/releases/download/v1.32.5+k3s1/k3s"
    assert plan["sha256"] == SHA
    config = plan["config"]
    assert config["node-name"] == "k3s-gpu-worker"
    assert "memorysize=12GB" in config["node-label"]
    assert "nvidia.com/device-plugin.config=default" in config["node-label"]
    assert config["node-label"] == sorted(config["node-label"])
    assert config["node-taint"] == ["nvidia.com/gpu=present:NoSchedule"]
    assert config["kubelet-arg"] == ["max-pods=250"]
    assert config["disable"] == ["traefik"]
    assert config["write-kubeconfig-mode"] == "0600"
    assert "server" not in config and "token-file" not in config and "default-runtime" not in config


def test_a_plan_for_an_arm64_agent():
    plan = k3s.plan(settings(role="agent", architecture="aarch64", server_url="https://10.0.0.1",
                             token_set="True", default_runtime="nvidia", version="v1.28.5+k3s1"), RTX_3060)
    assert plan["service"] == "k3s-agent" and plan["unit_type"] == "exec"
    assert plan["binary_url"].endswith("/v1.28.5+k3s1/k3s-arm64")
    assert (plan["server_host"], plan["server_port"]) == ("10.0.0.1", 6443)
    assert plan["config"]["server"] == "https://10.0.0.1:6443"
    assert plan["config"]["token-file"] == "/etc/rancher/k3s/token"
    assert plan["config"]["default-runtime"] == "nvidia"


def test_the_filter_wraps_the_plan():
    plan = FilterModule().filters()["k3s_worker_plan"](settings(), RTX_3060)
    assert plan["service"] == "k3s"


@pytest.mark.parametrize("overrides, expected", [
    ({"version": "stable"}, "'stable' is not a k3s release string"),
    ({"sha256": "abc"}, "k3s_gpu_worker_sha256 must be the sha256 of the file, 64 hexadecimal digits"),
    ({"sha256": "g" * 64}, "64 hexadecimal digits"),
    ({"architecture": "armv7l"}, "architecture 'armv7l' is not supported by k3s_gpu_worker"),
    ({"role": "agent", "server_url": "https://10.0.0.1:6443"}, "an agent needs the cluster's join token"),
    ({"role": "agent", "server_url": "10.0.0.1:6443", "token_set": True},
     "'10.0.0.1:6443' is not a k3s server URL"),
    ({"node_labels": {"node-role.kubernetes.io/worker": "true"}},
     "a node may not set label node-role.kubernetes.io/worker on itself"),
    ({"node_labels": {"owner": "Jane Doe"}}, "values are at most 63 characters"),
    ({"node_taints": ["gpu=yes:NoEvict"]}, "effect 'NoEvict'"),
    ({"node_taints": ["gpu"]}, "'gpu' is not key=value:Effect"),
    ({"kubelet_args": ["--max-pods 250"]}, "is not name=value"),
    ({"default_runtime": "nvidia", "version": "v1.28.5+k3s1"}, "needs k3s v1.29.0+k3s1 or later on a server"),
    ({"default_runtime": "nvidia", "version": "v1.27.8+k3s1", "role": "agent",
      "server_url": "https://s:6443", "token_set": True}, "needs a k3s release with the default-runtime option"),
    ({"default_runtime": "crun"}, "only '' (k3s's own runc) or 'nvidia'"),
    ({"config_extra": {"token": "x", "data-dir": "/srv"}}, "sets data-dir, token, which the role manages"),
    ({"device_plugin_config": "time slicing"}, "device plugin config name 'time slicing'"),
    ({"node_name": "GPU_1"}, "'GPU_1' is not a valid node name"),
    ({"airgap_images_url": "https://m/images.zip", "airgap_images_sha256": SHA}, "must be a .tar, .tar.gz or .tar.zst"),
    ({"airgap_images_src": "/srv/k3s-airgap-images-amd64.tar.zst"}, "k3s_gpu_worker_airgap_images_sha256 must be"),
])
def test_bad_input_is_refused_with_a_message_that_names_it(overrides, expected):
    message = problems_of(**overrides)
    assert message.startswith("k3s_gpu_worker cannot continue, nothing was changed: ")
    assert expected in message


def test_every_problem_is_listed_at_once():
    message = problems_of(version="latest", sha256="", architecture="ppc64le")
    assert "'latest' is not a k3s release string" in message
    assert "k3s_gpu_worker_sha256 must be" in message
    assert "architecture 'ppc64le'" in message


def test_a_node_without_gpus_is_refused_unless_allowed():
    with pytest.raises(k3s.K3sError) as err:
        k3s.plan(settings(), {"gpus": [], "reason": "NVML reports no GPU"})
    assert "no NVIDIA GPU is visible on this node (NVML reports no GPU)" in str(err.value)
    plan = k3s.plan(settings(require_gpu="false"), {"gpus": []})
    assert "node-label" not in plan["config"]


def test_absent_needs_no_version_nor_checksum():
    plan = k3s.plan({"state": "absent", "role": "agent", "architecture": "x86_64", "version": "", "sha256": ""})
    assert plan == {"state": "absent", "role": "agent", "service": "k3s-agent", "arch": "amd64"}
