"""What the nvidia_device_plugin module renders (plugins/module_utils/device_plugin.py), held to NVIDIA's
Helm chart (deployments/helm/nvidia-device-plugin/templates/daemonset-device-plugin.yml with an
embedded config map) and to the plugin's configuration format; and how it reads a node's expectation."""

import pytest
import yaml

from ansible_collections.baremetal.gpu.plugins.module_utils import device_plugin as dp

OPTIONS = {"version": "v0.19.3", "name": "nvidia-device-plugin", "namespace": "kube-system",
           "config_map": "nvidia-device-plugin-configs", "runtime_class": "nvidia", "default_config": "default",
           "configs": {"t4-ts2": {"replicas": 2},
                       "shared4": {"replicas": 4, "rename_by_default": True, "fail_requests_greater_than_one": True}}}


def rendered(**overrides):
    options = dict(OPTIONS, **overrides)
    configs = dp.validate_options(options)
    return dict(((m["kind"], m["metadata"]["name"]), m) for m in dp.render(options, configs))


def test_configmap_holds_one_plugin_config_file_per_key():
    config_map = rendered()[("ConfigMap", "nvidia-device-plugin-configs")]
    assert sorted(config_map["data"]) == ["default", "shared4", "t4-ts2"]
    assert yaml.safe_load(config_map["data"]["default"]) == {
        "version": "v1", "flags": {"migStrategy": "none", "failOnInitError": True}}
    assert yaml.safe_load(config_map["data"]["t4-ts2"]) == {
        "version": "v1", "flags": {"migStrategy": "none", "failOnInitError": True},
        "sharing": {"timeSlicing": {"renameByDefault": False, "failRequestsGreaterThanOne": False,
                                    "resources": [{"name": "nvidia.com/gpu", "replicas": 2}]}}}
    assert yaml.safe_load(config_map["data"]["shared4"])["sharing"]["timeSlicing"] == {
        "renameByDefault": True, "failRequestsGreaterThanOne": True,
        "resources": [{"name": "nvidia.com/gpu", "replicas": 4}]}


def test_one_replica_writes_no_sharing_section_because_the_plugin_refuses_fewer_than_two():
    config_map = rendered(configs={"whole": {"replicas": 1}})[("ConfigMap", "nvidia-device-plugin-configs")]
    assert "sharing" not in yaml.safe_load(config_map["data"]["whole"])


def test_daemonset_follows_the_charts_embedded_config_layout():
    objects = rendered()
    spec = objects[("DaemonSet", "nvidia-device-plugin")]["spec"]["template"]["spec"]
    assert spec["runtimeClassName"] == "nvidia"
    assert spec["priorityClassName"] == "system-node-critical"
    assert spec["shareProcessNamespace"] is True
    assert spec["serviceAccountName"] == "nvidia-device-plugin-service-account"
    assert spec["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
    assert {"key": "CriticalAddonsOnly", "operator": "Exists"} in spec["tolerations"]
    (init,) = spec["initContainers"]
    sidecar, plugin = spec["containers"]
    assert init["name"] == "nvidia-device-plugin-init" and init["command"] == ["config-manager"]
    assert sidecar["name"] == "nvidia-device-plugin-sidecar" and sidecar["command"] == ["config-manager"]
    assert plugin["name"] == "nvidia-device-plugin-ctr" and plugin["command"] == ["nvidia-device-plugin"]
    for container in (init, sidecar, plugin):
        assert container["image"] == "nvcr.io/nvidia/k8s-device-plugin:v0.19.3"
    init_env = {e["name"]: e.get("value", e.get("valueFrom")) for e in init["env"]}
    assert init_env == {"ONESHOT": "true", "KUBECONFIG": "", "NODE_NAME": {"fieldRef": {"fieldPath": "spec.nodeName"}},
                        "NODE_LABEL": "nvidia.com/device-plugin.config", "CONFIG_FILE_SRCDIR": "/available-configs",
                        "CONFIG_FILE_DST": "/config/config.yaml", "DEFAULT_CONFIG": "default",
                        "FALLBACK_STRATEGIES": "named,single", "SEND_SIGNAL": "false", "SIGNAL": "",
                        "PROCESS_TO_SIGNAL": ""}
    sidecar_env = {e["name"]: e.get("value") for e in sidecar["env"]}
    assert (sidecar_env["ONESHOT"], sidecar_env["SEND_SIGNAL"], sidecar_env["SIGNAL"],
            sidecar_env["PROCESS_TO_SIGNAL"]) == ("false", "true", "1", "nvidia-device-plugin")
    assert {"name": "CONFIG_FILE", "value": "/config/config.yaml"} in plugin["env"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["available-configs"]["configMap"] == {"name": "nvidia-device-plugin-configs"}
    assert volumes["config"]["emptyDir"] == {}
    assert volumes["kubelet-device-plugins-dir"]["hostPath"] == {"path": "/var/lib/kubelet/device-plugins",
                                                                 "type": "Directory"}
    mounts = {m["name"]: m["mountPath"] for m in plugin["volumeMounts"]}
    assert mounts["kubelet-device-plugins-dir"] == "/var/lib/kubelet/device-plugins"
    assert mounts["config"] == "/config"


def test_rbac_lets_the_config_manager_read_nodes():
    objects = rendered()
    role = objects[("ClusterRole", "nvidia-device-plugin-role")]
    assert role["rules"] == [{"apiGroups": [""], "resources": ["nodes"], "verbs": ["get", "list", "watch"]}]
    binding = objects[("ClusterRoleBinding", "nvidia-device-plugin-role-binding")]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "nvidia-device-plugin-service-account",
                                    "namespace": "kube-system"}]
    assert binding["roleRef"]["name"] == "nvidia-device-plugin-role"
    assert ("ServiceAccount", "nvidia-device-plugin-service-account") in objects


def test_a_config_change_rolls_the_pods_a_label_change_does_not_need_to():
    before = rendered()[("DaemonSet", "nvidia-device-plugin")]["spec"]["template"]["metadata"]["annotations"]
    after = rendered(configs={"t4-ts2": {"replicas": 3}})[("DaemonSet", "nvidia-device-plugin")]
    assert after["spec"]["template"]["metadata"]["annotations"]["checksum/config"] != before["checksum/config"]


def test_mirror_image_default_runtime_and_names():
    objects = rendered(image="registry.lan:5000/nvidia/k8s-device-plugin:v0.19.3", default_runtime_nvidia=True,
                       name="gpu-plugin", namespace="gpu-system")
    ds = objects[("DaemonSet", "gpu-plugin")]
    spec = ds["spec"]["template"]["spec"]
    assert "runtimeClassName" not in spec
    assert {c["image"] for c in spec["containers"] + spec["initContainers"]} == {
        "registry.lan:5000/nvidia/k8s-device-plugin:v0.19.3"}
    assert ds["metadata"]["namespace"] == "gpu-system"
    assert ds["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/name": "nvidia-device-plugin",
                                                     "app.kubernetes.io/instance": "gpu-plugin"}


@pytest.mark.parametrize("overrides, expected", [
    ({"configs": {"ts": {"replicas": 0}}}, "configuration ts: time-slicing replicas must be 1 (no sharing) or more, got 0"),
    ({"configs": {"ts": {"replicas": -2}}}, "got -2"),
    ({"configs": {"ts": {"replicas": "two"}}}, "replicas must be a whole number, got 'two'"),
    ({"configs": {"ts": {"replicas": True}}}, "replicas must be a whole number"),
    ({"configs": {"time slicing": {"replicas": 2}}}, "configuration name 'time slicing' must be a ConfigMap key"),
    ({"configs": {"ts": {"replica": 2}}}, "configuration ts: unknown key(s) replica"),
    ({"version": "0.19.3"}, "version '0.19.3' is not a device plugin release tag"),
    ({"name": "NVIDIA_Plugin"}, "name 'NVIDIA_Plugin' must be a DNS label"),
    ({"node_gpus": {"t4-node": 0}}, "node_gpus[t4-node] must be a whole number of GPUs"),
])
def test_bad_input_is_refused_listing_the_problem(overrides, expected):
    with pytest.raises(dp.DevicePluginError) as err:
        dp.validate_options(dict(OPTIONS, **overrides))
    assert str(err.value).startswith("nvidia_device_plugin cannot continue, nothing was changed: ")
    assert expected in str(err.value)


def node(name, labels, allocatable=None, ready=True):
    return {"metadata": {"name": name, "labels": labels},
            "status": {"allocatable": allocatable or {},
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


CONFIGS = dp.normalize_configs(OPTIONS["configs"])


def test_a_node_expects_its_gpus_times_its_configs_replicas():
    t4 = node("t4-node", {"nvidia.com/gpu.count": "1", "nvidia.com/device-plugin.config": "t4-ts2"},
              {"nvidia.com/gpu": "2"})
    assert dp.node_state(t4, CONFIGS, "default") == {
        "name": "t4-node", "config": "t4-ts2", "replicas": 2, "gpus": 1, "resource": "nvidia.com/gpu",
        "expected": 2, "ready": True, "allocatable": {"nvidia.com/gpu": "2"}, "done": True}
    unlabelled = node("rtx", {"nvidia.com/gpu.count": "2"}, {"nvidia.com/gpu": "1"})
    state = dp.node_state(unlabelled, CONFIGS, "default")
    assert (state["config"], state["expected"], state["done"]) == ("default", 2, False)
    shared = node("big", {"nvidia.com/gpu.count": "2", "nvidia.com/device-plugin.config": "shared4"},
                  {"nvidia.com/gpu.shared": "8"})
    state = dp.node_state(shared, CONFIGS, "default")
    assert (state["resource"], state["expected"], state["done"]) == ("nvidia.com/gpu.shared", 8, True)
    not_ready = node("t4-node", {"nvidia.com/gpu.count": "1"}, {"nvidia.com/gpu": "1"}, ready=False)
    assert dp.node_state(not_ready, CONFIGS, "default")["done"] is False


def test_what_cannot_be_known_is_a_problem_not_a_wait():
    unknown = dp.expectation(node("n1", {"nvidia.com/gpu.count": "1", "nvidia.com/device-plugin.config": "ts9"}),
                             CONFIGS, "default")
    assert "selects device plugin configuration 'ts9'" in unknown["problem"]
    assert "the ConfigMap has only default, shared4, t4-ts2" in unknown["problem"]
    uncounted = dp.expectation(node("n2", {}), CONFIGS, "default")
    assert "node n2 has no nvidia.com/gpu.count label" in uncounted["problem"]
    assert dp.expectation(node("n2", {}), CONFIGS, "default", node_gpus={"n2": 2})["expected"] == 2
