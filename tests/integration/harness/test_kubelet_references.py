"""References checked like a node checks them: Secrets and ConfigMaps (volumes and env), PVCs (scheduler and
provisioner), RuntimeClass handlers; and the volumes a container's program reads. Time scale 0.05."""

import pytest

from tests.harness.kubelet import KubeletSimulator, NodeSpec
from tests.harness.kubelet.testing import (container, messages, pod, ready, status_of, waiting_reason, wait_for)

SCALE = 0.05


@pytest.fixture
def sim(kube_api):
    with KubeletSimulator(kube_api.url, time_scale=SCALE) as simulator:
        yield simulator
    assert not simulator.errors, simulator.errors


def sleeper(**extra):
    return container(command=["sh", "-c", "sleep infinity"], **extra)


def test_a_missing_secret_volume_keeps_the_pod_container_creating(kube_api, sim):
    kube_api.create(pod("mounts", sleeper(volumeMounts=[{"name": "token", "mountPath": "/token"}]),
                        volumes=[{"name": "token", "secret": {"secretName": "hf"}}]))
    wait_for(lambda: 'MountVolume.SetUp failed for volume "token" : secret "hf" not found' in
             messages(kube_api, "FailedMount", about="mounts"), what="FailedMount")
    waiting = kube_api.get("Pod", "mounts")
    assert waiting["status"]["phase"] == "Pending" and waiting_reason(waiting) == "ContainerCreating"
    kube_api.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "hf"}, "data": {"token": "aGY="}})
    wait_for(lambda: ready(kube_api.get("Pod", "mounts")), what="running once the secret exists")


def test_env_from_a_missing_key_is_a_create_container_config_error(kube_api, sim):
    kube_api.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, "data": {"a": "1"}})
    missing = {"name": "MODEL", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "model"}}}
    optional = {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "absent", "key": "t", "optional": True}}}
    kube_api.create(pod("strict", sleeper(env=[missing])))
    kube_api.create(pod("lenient", sleeper(env=[optional, {"name": "A", "valueFrom": {"configMapKeyRef": {
        "name": "settings", "key": "a"}}}])))
    wait_for(lambda: ready(kube_api.get("Pod", "lenient")), what="optional reference skipped")
    strict = wait_for(lambda: waiting_reason(kube_api.get("Pod", "strict")) == "CreateContainerConfigError" and
                      kube_api.get("Pod", "strict"), what="CreateContainerConfigError")
    assert status_of(strict)["state"]["waiting"]["message"] == "couldn't find key model in ConfigMap default/settings"
    wait_for(lambda: "Error: couldn't find key model in ConfigMap default/settings" in
             messages(kube_api, "Failed", about="strict"), what="Failed event")


def test_a_missing_or_unbindable_pvc_keeps_the_pod_pending(kube_api, sim):
    claim = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "cache"},
             "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "10Gi"}}}}
    kube_api.create(pod("cached", sleeper(volumeMounts=[{"name": "cache", "mountPath": "/cache"}]),
                        volumes=[{"name": "cache", "persistentVolumeClaim": {"claimName": "cache"}}]))
    pending = wait_for(lambda: kube_api.get("Pod", "cached")["status"].get("conditions"), what="unschedulable")
    assert pending[0]["message"] == ('0/1 nodes are available: persistentvolumeclaim "cache" not found. preemption: '
                                     '0/1 nodes are available: 1 Preemption is not helpful for scheduling.')
    manual = dict(claim, metadata={"name": "manual"}, spec=dict(claim["spec"], storageClassName="manual"))
    kube_api.create(manual)
    kube_api.create(pod("unbound", sleeper(),
                        volumes=[{"name": "m", "persistentVolumeClaim": {"claimName": "manual"}}]))
    unbound = wait_for(lambda: kube_api.get("Pod", "unbound")["status"].get("conditions"), what="unbound")
    assert unbound[0]["message"].startswith("0/1 nodes are available: 1 pod has unbound immediate "
                                            "PersistentVolumeClaims.")
    kube_api.create(claim)  # local-path, WaitForFirstConsumer: bound once the pod is scheduled
    wait_for(lambda: ready(kube_api.get("Pod", "cached")), what="running once the claim exists")
    bound = kube_api.get("PersistentVolumeClaim", "cache")
    assert bound["spec"]["storageClassName"] == "local-path" and bound["status"]["phase"] == "Bound"
    assert kube_api.get("PersistentVolume", bound["spec"]["volumeName"])["spec"]["claimRef"]["name"] == "cache"


def test_a_runtime_class_whose_handler_the_node_lacks_fails_sandbox_creation(kube_api):
    # a node without the NVIDIA runtime (no GPU, or the container toolkit not installed) and without kata;
    # RuntimeClass nvidia is k3s's own (its packaged runtimes), kata is made here
    kube_api.create({"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass", "metadata": {"name": "kata"},
                     "handler": "kata"})
    nodes = [NodeSpec(name="bare", gpus=0)]
    with KubeletSimulator(kube_api.url, nodes=nodes, time_scale=SCALE) as sim:
        kube_api.create(pod("kata", sleeper(), runtimeClassName="kata"))
        kube_api.create(pod("gpu", sleeper(), runtimeClassName="nvidia"))
        for name, handler in (("kata", "kata"), ("gpu", "nvidia")):
            wait_for(lambda n=name, h=handler: "Failed to create pod sandbox: rpc error: code = Unknown desc = failed "
                     f'to get sandbox runtime: no runtime for "{h}" is configured' in
                     messages(kube_api, "FailedCreatePodSandBox", about=n), what=f"{name}: no runtime")
            stuck = kube_api.get("Pod", name)
            assert stuck["status"]["phase"] == "Pending" and "podIP" not in stuck["status"]
        assert not sim.errors


def test_programs_read_configmap_keys_and_share_empty_dirs(kube_api, sim):
    kube_api.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "conf"},
                     "data": {"model.yaml": "name: qwen\n", "other": "x"}})
    reader = container("reader", command=["sh", "-c", "cat /etc/app/model.yaml /shared/note; sleep infinity"],
                       volumeMounts=[{"name": "conf", "mountPath": "/etc/app"},
                                     {"name": "shared", "mountPath": "/shared"}])
    writer = container("writer", command=["sh", "-c", "echo written > /shared/note"],
                       volumeMounts=[{"name": "shared", "mountPath": "/shared"}])
    kube_api.create(pod("files", reader, initContainers=[writer],
                        volumes=[{"name": "conf", "configMap": {"name": "conf", "items": [{"key": "model.yaml",
                                                                                          "path": "model.yaml"}]}},
                                 {"name": "shared", "emptyDir": {}}]))
    wait_for(lambda: ready(kube_api.get("Pod", "files")), what="running")
    assert sim.record_of("default", "files", "reader").current_logs() == ["name: qwen", "written"]
