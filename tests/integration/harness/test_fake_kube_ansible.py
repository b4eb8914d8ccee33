"""kubernetes.core (which users run beside this collection; its own modules do not need it) against the fake API
server and kubelet simulator."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml


ROOT = Path(__file__).resolve().parents[3]
PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"

DEPLOYMENT = {
    "apiVersion": "apps/v1", "kind": "Deployment",
    "metadata": {"name": "vllm", "namespace": "ml", "labels": {"app.kubernetes.io/name": "vllm"}},
    "spec": {"replicas": 1, "strategy": {"type": "Recreate"},
             "selector": {"matchLabels": {"app.kubernetes.io/name": "vllm"}},
             "template": {"metadata": {"labels": {"app.kubernetes.io/name": "vllm"}},
                          "spec": {"containers": [{"name": "vllm", "image": "vllm/vllm-openai:v0.8.5.post1",
                                                   "resources": {"limits": {"nvidia.com/gpu": 1}}}]}}},
}
CONFIGMAP = {"apiVersion": "v1", "kind": "ConfigMap",
             "metadata": {"name": "catalog", "namespace": "ml", "labels": {"app.kubernetes.io/name": "vllm"}},
             "data": {"mode": "ml"}}


def play(kubeconfig):
    k8s = {"kubeconfig": kubeconfig}
    tasks = [
        {"name": "Apply the deployment and wait until it is ready", "register": "applied", "kubernetes.core.k8s": {
            **k8s, "state": "present", "apply": True, "wait": True, "wait_sleep": 1, "wait_timeout": 20,
            "definition": DEPLOYMENT}},
        {"name": "Server-side apply a configmap twice", "register": "ssa", "loop": [1, 2],
         "kubernetes.core.k8s": {**k8s, "state": "present", "definition": CONFIGMAP, "apply": True,
                                 "server_side_apply": {"field_manager": "baremetal-gpu", "force_conflicts": False}}},
        {"name": "Find objects by label", "register": "found", "kubernetes.core.k8s_info": {
            **k8s, "kind": "ConfigMap", "namespace": "ml", "label_selectors": ["app.kubernetes.io/name=vllm"]}},
        {"name": "Scale to zero and wait", "register": "scaled", "kubernetes.core.k8s_scale": {
            **k8s, "kind": "Deployment", "name": "vllm", "namespace": "ml", "replicas": 0, "wait": True,
            "wait_sleep": 1, "wait_timeout": 20}},
        {"name": "Delete the deployment and wait until it is gone", "register": "deleted",
         "kubernetes.core.k8s": {**k8s, "state": "absent", "api_version": "apps/v1", "kind": "Deployment",
                                 "name": "vllm", "namespace": "ml", "wait": True, "wait_sleep": 1}},
        {"name": "Check what the modules reported", "ansible.builtin.assert": {"that": [
            "applied.changed",
            "applied.result.status.readyReplicas == 1",
            "applied.result.status.observedGeneration == applied.result.metadata.generation",
            "ssa.results[0].changed",
            "not ssa.results[1].changed",
            "found.resources | map(attribute='metadata.name') | list == ['catalog']",
            "scaled.changed",
            "scaled.result.spec.replicas == 0",
            "scaled.result.status.replicas is not defined",
            "deleted.changed",
        ]}},
    ]
    return [{"name": "kubernetes.core against the fake cluster", "hosts": "localhost", "gather_facts": False,
             "vars": {"ansible_python_interpreter": "{{ ansible_playbook_python }}"}, "tasks": tasks}]


@pytest.mark.slow
def test_kubernetes_core_modules(kube_api, kubeconfig, kubelet, tmp_path):
    kube_api.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ml"}})
    playbook = tmp_path / "play.yml"
    playbook.write_text(yaml.safe_dump(play(kubeconfig), sort_keys=False))
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_LOCALHOST_WARNING="false",
               ANSIBLE_INVENTORY_UNPARSED_WARNING="false", HOME=str(tmp_path))
    result = subprocess.run([str(PLAYBOOK), "-i", "localhost,", "-c", "local", str(playbook)], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=180, check=False)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "failed=0" in result.stdout
    catalog = kube_api.get("ConfigMap", "catalog", "ml")
    assert [(m["manager"], m["operation"]) for m in catalog["metadata"]["managedFields"]] == [
        ("baremetal-gpu", "Apply")]
    assert not kube_api.list("Deployment", "ml") and not kube_api.list("ReplicaSet", "ml")
    assert not kube_api.list("Pod", "ml")
