"""The home lab's hot-standby variant (inventories/examples/homelab-standby) rendered through the vllm role as
``ansible-playbook`` renders it: every object validates against the Kubernetes schemas, the client path
(Service, Ingress) reaches only the API gate, vLLM's engine port is closed to the cluster, the modes keep
the other model in standby, and each pod's memory holds a level-1 sleeper's weights."""

import json

import pytest

from tests.harness.role_render import pod_spec, render, schema_errors


@pytest.fixture(scope="module")
def rendered():
    return render("homelab-standby")


def test_every_object_validates(rendered):
    assert schema_errors(rendered.manifests) == []


def test_clients_reach_only_the_api_gate(rendered):
    (service,) = rendered.by_kind("Service").values()
    assert service["spec"]["ports"] == [{"name": "http", "port": 8000, "targetPort": "http", "protocol": "TCP"}]
    (ingress,) = rendered.by_kind("Ingress").values()
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "vllm-api", "port": {"number": 8000}}
    for name, deployment in rendered.by_kind("Deployment").items():
        containers = dict((c["name"], c) for c in pod_spec(deployment)["containers"])
        # the port named http (what the Service targets) is the gate's; vLLM's own is "engine"
        assert [p["name"] for p in containers["api-gate"]["ports"]] == ["http"], name
        assert [(p["name"], p["containerPort"]) for p in containers["vllm"]["ports"]] == [("engine", 8001)], name
        assert {"name": "VLLM_SERVER_DEV_MODE", "value": "1"} in containers["vllm"]["env"]
        assert "--enable-sleep-mode" in containers["vllm"]["args"]
        # the gate runs the role's script from its ConfigMap, with the vLLM image's python3
        assert containers["api-gate"]["image"] == containers["vllm"]["image"] == "vllm/vllm-openai:v0.8.5.post1"
    assert "def client_route(" in rendered.by_kind("ConfigMap")["vllm-api-gate"]["data"]["api_gate.py"]
    for name, policy in rendered.by_kind("NetworkPolicy").items():
        assert policy["spec"]["policyTypes"] == ["Ingress"]
        assert policy["spec"]["ingress"] == [{"ports": [{"port": 8000, "protocol": "TCP"}]}], name


def test_each_mode_keeps_the_other_model_asleep_and_each_pod_holds_its_weights(rendered):
    book = json.loads(rendered.by_kind("ConfigMap")["gpu-mode-k3s-gpu-worker"]["data"]["modes.json"])
    assert book["modes"]["ml"]["workloads"] == {"vllm-ml": 1} and book["modes"]["ml"]["standby"] == {"vllm-r1": 1}
    assert book["modes"]["r1"]["workloads"] == {"vllm-r1": 1} and book["modes"]["r1"]["standby"] == {"vllm-ml": 1}
    assert "standby" not in book["modes"]["off"]
    for deployment in rendered.by_kind("Deployment").values():
        (vllm,) = [c for c in pod_spec(deployment)["containers"] if c["name"] == "vllm"]
        # 16 GiB holds 5.7 GiB (ml) or 5.2 GiB (r1) of weights plus the server's 4 GiB
        assert vllm["resources"]["requests"]["memory"] == "16Gi"
        assert deployment["metadata"]["annotations"]["baremetal.gpu/sleep-level"] == "1"
        assert deployment["metadata"]["annotations"]["baremetal.gpu/sleep-residue-mib"] == "1229"
