"""kubectl 1.32, unchanged, against the fake API server (and the kubelet simulator)."""

import json
import os
import subprocess
import time

import pytest


pytestmark = pytest.mark.kubectl

MANIFEST = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: vllm
  labels: {app.kubernetes.io/name: vllm}
spec:
  replicas: 1
  strategy: {type: Recreate}
  selector:
    matchLabels: {app.kubernetes.io/name: vllm}
  template:
    metadata:
      labels: {app.kubernetes.io/name: vllm}
    spec:
      containers:
      - name: vllm
        image: vllm/vllm-openai:v0.8.5.post1
        args: [--model, Qwen/Qwen3-8B-AWQ, --max-model-len, "8192"]
        ports: [{containerPort: 8000, name: http}]
        resources:
          limits: {nvidia.com/gpu: 1}
---
apiVersion: v1
kind: Service
metadata:
  name: vllm-api
spec:
  selector: {app.kubernetes.io/name: vllm}
  ports: [{port: 8000, targetPort: http, name: http}]
"""


@pytest.fixture
def kubectl(kubectl_bin, kubeconfig, tmp_path):
    env = dict(os.environ, KUBECONFIG=kubeconfig, HOME=str(tmp_path))

    def run(*args, check=True, timeout=20):
        result = subprocess.run([kubectl_bin, *args], env=env, capture_output=True, text=True, timeout=timeout,
                                check=False)
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr}")
        return result

    run.env = env
    return run


def test_apply_server_side_rollout_scale_watch_delete(kubectl, kubectl_bin, kubelet, tmp_path):
    manifest = tmp_path / "vllm.yaml"
    manifest.write_text(MANIFEST)
    applied = kubectl("apply", "--server-side", "-f", str(manifest))
    assert applied.stdout.splitlines() == ["deployment.apps/vllm serverside-applied",
                                           "service/vllm-api serverside-applied"]
    rollout = kubectl("rollout", "status", "deployment/vllm", "--timeout=10s")
    assert 'deployment "vllm" successfully rolled out' in rollout.stdout

    deployment = json.loads(kubectl("get", "deployment", "vllm", "-o", "json", "--show-managed-fields").stdout)
    assert deployment["status"]["readyReplicas"] == 1
    assert deployment["metadata"]["managedFields"][0]["manager"] == "kubectl"
    pods = json.loads(kubectl("get", "pods", "-l", "app.kubernetes.io/name=vllm", "-o", "json").stdout)
    assert [p["status"]["phase"] for p in pods["items"]] == ["Running"]
    table = kubectl("get", "pods").stdout.splitlines()
    assert table[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert table[1].split()[1:4] == ["1/1", "Running", "0"]

    assert kubectl("scale", "deployment", "vllm", "--replicas=0").stdout.strip() == "deployment.apps/vllm scaled"
    kubectl("rollout", "status", "deployment/vllm", "--timeout=10s")
    deadline = time.monotonic() + 5
    while kubectl("get", "pods", "-o", "name").stdout.strip() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert kubectl("get", "pods", "-o", "name").stdout.strip() == ""

    watcher = subprocess.Popen([kubectl_bin, "get", "pods", "-w", "--request-timeout=10s"], env=kubectl.env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        time.sleep(0.3)  # let the watch open before the change
        kubectl("scale", "deployment", "vllm", "--replicas=1")
        lines = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            line = watcher.stdout.readline()
            lines.append(line)
            if "1/1" in line and "Running" in line:
                break
    finally:
        watcher.terminate()
        watcher.wait(5)
    states = [line.split()[2] for line in lines if line.startswith("vllm-")]
    assert states[0] == "Pending" and states[-1] == "Running"
    assert "ContainerCreating" in states

    logs = kubectl("logs", "deployment/vllm")
    assert logs.returncode == 0
    kubectl("delete", "-f", str(manifest))
    assert kubectl("get", "deployment,service", "-o", "name").stdout.splitlines() == ["service/kubernetes"]


def test_server_side_apply_conflict_after_kubectl_scale(kubectl, tmp_path):
    manifest = tmp_path / "vllm.yaml"
    manifest.write_text(MANIFEST)
    kubectl("apply", "--server-side", "-f", str(manifest))
    kubectl("scale", "deployment", "vllm", "--replicas=0")
    conflict = kubectl("apply", "--server-side", "-f", str(manifest), check=False)
    assert conflict.returncode != 0
    assert 'conflict with "kubectl" with subresource "scale" using apps/v1: .spec.replicas' in conflict.stderr
    typo = tmp_path / "typo.yaml"
    typo.write_text(MANIFEST.replace("        ports:", "        portz:"))
    rejected = kubectl("apply", "--server-side", "--force-conflicts", "-f", str(typo), check=False)
    assert rejected.returncode != 0
    assert ".spec.template.spec.containers[0].portz: field not declared in schema" in rejected.stderr
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(manifest))
    replicas = kubectl("get", "deployment", "vllm", "-o", "jsonpath={.spec.replicas}").stdout
    assert replicas == "1"


def test_client_side_apply_and_errors(kubectl, tmp_path):
    manifest = tmp_path / "vllm.yaml"
    manifest.write_text(MANIFEST)
    assert "deployment.apps/vllm created" in kubectl("apply", "-f", str(manifest)).stdout
    manifest.write_text(MANIFEST.replace("v0.8.5.post1", "v0.9.0"))
    assert "deployment.apps/vllm configured" in kubectl("apply", "-f", str(manifest)).stdout
    containers = json.loads(kubectl("get", "deployment", "vllm", "-o",
                                    "jsonpath={.spec.template.spec.containers}").stdout)
    assert [(c["name"], c["image"], c["args"]) for c in containers] == [
        ("vllm", "vllm/vllm-openai:v0.9.0", ["--model", "Qwen/Qwen3-8B-AWQ", "--max-model-len", "8192"])]
    missing = kubectl("get", "pod", "nope", check=False)
    assert missing.returncode == 1 and 'pods "nope" not found' in missing.stderr
    invalid = kubectl("create", "configmap", "Bad_Name", check=False)
    assert invalid.returncode == 1 and 'ConfigMap "Bad_Name" is invalid: metadata.name' in invalid.stderr
    # typed `kubectl create` commands send protobuf bodies
    assert kubectl("create", "namespace", "ml").stdout.strip() == "namespace/ml created"
    kubectl("create", "configmap", "catalog", "-n", "ml", "--from-literal=mode=r1")
    kubectl("create", "secret", "generic", "hf", "-n", "ml", "--from-literal=token=abc")
    assert kubectl("get", "configmap", "catalog", "-n", "ml", "-o", "jsonpath={.data.mode}").stdout == "r1"
    assert kubectl("get", "secret", "hf", "-n", "ml", "-o", "jsonpath={.type} {.data.token}").stdout == \
        "Opaque YWJj"
    assert "No resources found in nowhere namespace." in kubectl("get", "pods", "-n", "nowhere").stderr
