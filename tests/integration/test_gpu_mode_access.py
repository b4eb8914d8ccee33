"""A GPU node's own access to the cluster (module_utils/gpu_mode/access.py), against the fake API server's
RBAC and service-account tokens: exactly these objects; SUFFICIENT (whole switches with the memory wait, the
CLI's status and list, a failed switch's rollback and diagnosis: the `gpu-mode` command in its own process
"on" the simulated node with the node's kubeconfig, and not one request refused); MINIMAL (the same
credentials refused on another node's objects, on deletes of Deployments, Secrets, other namespaces, scaling
subresources, RBAC); idempotent; revoked by rotation and by removal."""

import base64
import json
import os
import subprocess
import sys

import pytest

from ansible_collections.baremetal.gpu.plugins.module_utils import kube_apply
from ansible_collections.baremetal.gpu.plugins.module_utils.gpu_mode import access, drain
from ansible_collections.baremetal.gpu.plugins.module_utils.gpu_mode.cluster import NodeCluster
from ansible_collections.baremetal.gpu.plugins.module_utils.gpu_mode.switch import switch
from ansible_collections.baremetal.gpu.plugins.module_utils.kube import Kube, KubeError
from tests.harness import gpu_mode_cluster as world
from tests.harness.ansible_cli import ROOT
from tests.harness.gpu_mode_cluster import NAMESPACE, NODE, OTHER_DEPLOYMENT, OTHER_NODE

pytestmark = pytest.mark.slow

NODE_USER = "system:serviceaccount:ml:gpu-mode-k3s-gpu-worker"
CLI = ("import sys; sys.path[:0] = ['.', '.collections']\n"
       "from ansible_collections.baremetal.gpu.plugins.module_utils.gpu_mode.cli import main\nsys.exit(main())\n")

# The Role, written out by hand from what the switcher's code sends (not from access.rules).
EXPECTED_RULES = [
    {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["gpu-mode-k3s-gpu-worker"],
     "verbs": ["get", "patch"]},
    {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "resourceNames": ["gpu-mode-k3s-gpu-worker"],
     "verbs": ["get", "update"]},
    {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
    {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["list", "watch"]},
    {"apiGroups": ["apps"], "resources": ["deployments"], "resourceNames": ["vllm-ml", "vllm-r1"],
     "verbs": ["get", "patch"]},
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch", "patch", "delete"]},
    {"apiGroups": [""], "resources": ["pods/proxy", "services/proxy"], "verbs": ["get"]},
    {"apiGroups": [""], "resources": ["services"], "verbs": ["get"]},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["list"]},
    {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
]


def grant(admin, node=NODE, **options):
    return access.ensure(admin, node, NAMESPACE, admin.api.configuration.host, **options)


class GpuNode:
    """The simulated GPU node as its switcher sees it: the node's kubeconfig, the collection's client built
    from it (in this process), and the `gpu-mode` command run as its own process "on" the node (NVML is the
    stand-in library reading the node's GPU ledger, /proc the ledger's export)."""

    def __init__(self, sim, admin, fake_nvml_lib, tmp_path):
        self.kubeconfig = tmp_path / "node.kubeconfig"
        self.kubeconfig.write_text(grant(admin)["kubeconfig"])
        self.kube = Kube.from_params({"kubeconfig": str(self.kubeconfig)})
        config = tmp_path / "gpu-mode.json"
        config.write_text(json.dumps({"node": NODE, "namespace": NAMESPACE, "kubeconfig": str(self.kubeconfig),
                                      "proc_root": str(world.gpu_export(sim) / "proc")}))
        self.env = dict(os.environ, GPU_MODE_CONFIG=str(config), **world.node_env(sim, fake_nvml_lib))

    def gpu_mode(self, *args, timeout=120):
        run = subprocess.run([sys.executable, "-c", CLI, *args], cwd=ROOT, env=self.env, capture_output=True,
                             text=True, timeout=timeout, check=False)
        return run.returncode, run.stdout, run.stderr


def start_cluster(kube_api, admin, tmp_path, crashing_models=()):
    sim = world.simulator(kube_api.url, tmp_path / "cluster", crashing_models)
    sim.start()
    world.apply_homelab(admin)
    return sim


@pytest.fixture
def homelab(kube_api, collection_kube, tmp_path):
    sim = start_cluster(kube_api, collection_kube, tmp_path)
    yield collection_kube
    sim.stop()
    assert not sim.errors, sim.errors


@pytest.fixture
def node_kube(homelab, tmp_path):
    """The collection's client built from the kubeconfig the node gets (as the CLI and the module build it)."""
    path = tmp_path / "node.kubeconfig"
    path.write_text(grant(homelab)["kubeconfig"])
    kube = Kube.from_params({"kubeconfig": str(path)})
    yield kube
    kube.close()


def live(admin, api_version, kind, name):
    return admin.get(api_version, kind, name, NAMESPACE)


def test_exactly_these_objects_and_a_second_run_changes_nothing(homelab):
    first = grant(homelab)
    assert first["changed"] is True
    assert sorted((o["kind"], o["name"], o["action"]) for o in first["objects"]) == [
        ("Role", "gpu-mode-k3s-gpu-worker", "created"), ("RoleBinding", "gpu-mode-k3s-gpu-worker", "created"),
        ("Secret", "gpu-mode-k3s-gpu-worker-token", "created"),
        ("ServiceAccount", "gpu-mode-k3s-gpu-worker", "created")]
    role = live(homelab, "rbac.authorization.k8s.io/v1", "Role", "gpu-mode-k3s-gpu-worker")
    assert role["rules"] == EXPECTED_RULES
    binding = live(homelab, "rbac.authorization.k8s.io/v1", "RoleBinding", "gpu-mode-k3s-gpu-worker")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": "gpu-mode-k3s-gpu-worker"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "gpu-mode-k3s-gpu-worker", "namespace": "ml"}]
    secret = live(homelab, "v1", "Secret", "gpu-mode-k3s-gpu-worker-token")
    assert secret["type"] == "kubernetes.io/service-account-token"
    assert secret["metadata"]["annotations"]["kubernetes.io/service-account.name"] == "gpu-mode-k3s-gpu-worker"

    config = json.loads(first["kubeconfig"])
    token = base64.b64decode(secret["data"]["token"]).decode()
    assert config["users"][0]["user"] == {"token": token}
    cluster = config["clusters"][0]["cluster"]
    assert cluster["server"] == homelab.api.configuration.host
    root_ca = live(homelab, "v1", "ConfigMap", "kube-root-ca.crt")["data"]["ca.crt"]
    assert base64.b64decode(cluster["certificate-authority-data"]).decode() == root_ca
    assert config["contexts"][0]["context"]["namespace"] == "ml"

    again = grant(homelab)
    assert again["changed"] is False
    assert set(o["action"] for o in again["objects"]) == {"unchanged"}
    assert again["kubeconfig"] == first["kubeconfig"]


def test_the_vllm_roles_prune_never_takes_a_nodes_access_away(homelab):
    grant(homelab)
    manifests = json.loads(world.homelab_manifests())
    pruned = kube_apply.prune(homelab, manifests, [NAMESPACE], kinds=kube_apply.PRUNE_KINDS + (
        ("v1", "ServiceAccount"), ("rbac.authorization.k8s.io/v1", "Role"),
        ("rbac.authorization.k8s.io/v1", "RoleBinding")))
    assert [p["name"] for p in pruned if p["name"].startswith("gpu-mode-")] == []
    assert live(homelab, "v1", "Secret", "gpu-mode-k3s-gpu-worker-token") is not None


def test_whole_switches_status_and_list_work_with_the_nodes_credentials_alone(
        kube_api, collection_kube, fake_nvml_lib, tmp_path):
    sim = start_cluster(kube_api, collection_kube, tmp_path)
    try:
        node = GpuNode(sim, collection_kube, fake_nvml_lib, tmp_path)
        denials = world.Denials(kube_api)
        for mode, line in (("ml", "(none) -> ml switched"), ("r1", "ml -> r1 switched"), ("off", "r1 -> off switched"),
                           ("ml", "off -> ml switched"), ("ml", "already in mode ml and serving")):
            code, out, err = node.gpu_mode(mode)
            assert code == 0 and line in out, out + err
        ml = live(collection_kube, "apps/v1", "Deployment", "vllm-ml")
        ml_pods = NodeCluster(collection_kube, NAMESPACE, NODE).pods(ml)
        assert len(ml_pods) == 1
        # the drain reads vLLM's in-flight gauges through the pod proxy (a refusal would read as "drained")
        assert drain.in_flight(node.kube, ml_pods, 8000) == {ml_pods[0]["metadata"]["name"]: 0}
        # a failed start's diagnosis shows the last log lines (kube_diagnosis), read with these credentials too
        assert node.kube.logs(NAMESPACE, ml_pods[0]["metadata"]["name"], "vllm", tail=5)
        code, out, err = node.gpu_mode("status")
        assert code == 0 and out.splitlines()[0] == "node k3s-gpu-worker  mode ml (default)", out + err
        assert "GPU 0 NVIDIA GeForce RTX 3060:" in out and "ml/" + ml_pods[0]["metadata"]["name"] in out
        code, out, err = node.gpu_mode("list")
        assert code == 0 and [line.split()[:4] for line in out.splitlines()[1:4]] == [
            ["ml", "*", "*", "ok"], ["off", "ok", "-", "no"], ["r1", "ok", "vllm-r1", "casperhansen/deepseek-r1-distill-qwen-7b-awq,"]], out
        lease = live(collection_kube, "coordination.k8s.io/v1", "Lease", "gpu-mode-k3s-gpu-worker")
        assert lease["spec"]["leaseTransitions"] >= 1
        node.kube.close()
        assert denials.of(NODE_USER) == []
    finally:
        sim.stop()
    assert not sim.errors, sim.errors


def test_a_failed_switch_rolls_back_and_explains_itself_with_the_nodes_credentials(
        kube_api, collection_kube, fake_nvml_lib, tmp_path):
    sim = start_cluster(kube_api, collection_kube, tmp_path,
                        crashing_models=("casperhansen/deepseek-r1-distill-qwen-7b-awq",))
    try:
        node = GpuNode(sim, collection_kube, fake_nvml_lib, tmp_path)
        denials = world.Denials(kube_api)
        assert node.gpu_mode("ml")[0] == 0
        code, out, err = node.gpu_mode("r1")
        node.kube.close()
    finally:
        sim.stop()
    assert not sim.errors, sim.errors
    assert code == 1, out + err  # rolled back: the previous mode serves again
    # the diagnosis read the crashed pod's state and events with the node's credentials
    assert "exited with code 1" in err and "rolled back to mode ml" in err, err
    assert "event: Normal Started: Started container vllm" in err, err
    assert "forbidden" not in err.lower(), err
    assert denials.of(NODE_USER) == []
    assert collection_kube.get("v1", "ConfigMap", "gpu-mode-k3s-gpu-worker", NAMESPACE)["data"]["mode"] == "ml"


def refused(call):
    with pytest.raises(KubeError) as err:
        call()
    return err.value.status


def apply_replicas(kube, name, namespace=NAMESPACE, replicas=1):
    return kube.apply({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": namespace},
                       "spec": {"replicas": replicas}}, field_manager="baremetal-gpu-mode")


def test_the_same_credentials_are_refused_everything_else(kube_api, homelab, node_kube, collection_kube):
    grant(homelab, node=OTHER_NODE)  # worker2's own access, Lease included once it switches
    assert node_kube.get("v1", "ConfigMap", "gpu-mode-" + NODE, NAMESPACE) is not None  # the credentials work
    collection_kube.apply({"apiVersion": "apps/v1", "kind": "Deployment",
                           "metadata": {"name": "vllm-ml", "namespace": "default"},
                           "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "x"}},
                                    "template": {"metadata": {"labels": {"app": "x"}},
                                                 "spec": {"containers": [{"name": "x", "image": "busybox",
                                                                          "command": ["true"]}]}}}},
                          field_manager="test")
    lease_path = node_kube.path("coordination.k8s.io/v1", "Lease", NAMESPACE, "gpu-mode-" + OTHER_NODE)
    checks = {
        "read another node's modes": lambda: node_kube.request(
            "GET", node_kube.path("v1", "ConfigMap", NAMESPACE, "gpu-mode-" + OTHER_NODE)),
        "record a mode for another node": lambda: node_kube.apply(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "gpu-mode-" + OTHER_NODE,
                                                                   "namespace": NAMESPACE},
             "data": {"mode": "off"}}, field_manager="baremetal-gpu-mode"),
        "read another node's lock": lambda: node_kube.request("GET", lease_path),
        "take another node's lock": lambda: node_kube.request("PUT", lease_path, body={
            "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": "gpu-mode-" + OTHER_NODE, "namespace": NAMESPACE},
            "spec": {"holderIdentity": "intruder"}}),
        "scale another node's Deployment": lambda: apply_replicas(node_kube, OTHER_DEPLOYMENT),
        "scale its own Deployment through the scale subresource": lambda: node_kube.request(
            "PATCH", node_kube.path("apps/v1", "Deployment", NAMESPACE, "vllm-ml", "scale"),
            body={"spec": {"replicas": 2}}, content_type="application/merge-patch+json"),
        "delete its own Deployment": lambda: node_kube.request(
            "DELETE", node_kube.path("apps/v1", "Deployment", NAMESPACE, "vllm-ml")),
        "create a Deployment": lambda: node_kube.request(
            "POST", node_kube.path("apps/v1", "Deployment", NAMESPACE), body={
                "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "miner"}}),
        "scale a Deployment of another namespace": lambda: apply_replicas(node_kube, "vllm-ml", "default"),
        "list Secrets": lambda: node_kube.request("GET", node_kube.path("v1", "Secret", NAMESPACE)),
        "read its own token Secret": lambda: node_kube.request(
            "GET", node_kube.path("v1", "Secret", NAMESPACE, "gpu-mode-k3s-gpu-worker-token")),
        "read the Hugging Face token": lambda: node_kube.request(
            "GET", node_kube.path("v1", "Secret", NAMESPACE, "vllm-hf-token")),
        "exec into a pod": lambda: node_kube.request("POST", node_kube.path("v1", "Pod", NAMESPACE, "any", "exec")),
        "grant itself more": lambda: node_kube.request(
            "POST", node_kube.path("rbac.authorization.k8s.io/v1", "RoleBinding", NAMESPACE), body={
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": {"name": "more"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "admin"},
                "subjects": [{"kind": "ServiceAccount", "name": "gpu-mode-k3s-gpu-worker", "namespace": "ml"}]}),
        "list nodes": lambda: node_kube.request("GET", "/api/v1/nodes"),
        "list pods of another namespace": lambda: node_kube.request("GET", node_kube.path("v1", "Pod", "default")),
    }
    denials = world.Denials(kube_api)
    statuses = dict((what, refused(call)) for what, call in checks.items())
    assert statuses == dict((what, 403) for what in checks)
    assert len(denials.of(NODE_USER)) == len(checks)  # the recorder the sufficiency tests rely on sees refusals
    assert live(collection_kube, "apps/v1", "Deployment", OTHER_DEPLOYMENT)["spec"]["replicas"] == 0
    # switching another node with these credentials stops at its first read
    with pytest.raises(KubeError) as err:
        switch(node_kube, NAMESPACE, OTHER_NODE, "other", memory_wait=False)
    assert err.value.status == 403


def test_rotation_and_removal_revoke_the_token(homelab, tmp_path):
    old = tmp_path / "old.kubeconfig"
    old.write_text(grant(homelab)["kubeconfig"])
    rotated = grant(homelab, rotate=True)
    assert [o["action"] for o in rotated["objects"] if o["kind"] == "Secret"] == ["rotated"]
    new = tmp_path / "new.kubeconfig"
    new.write_text(rotated["kubeconfig"])

    def status_with(path):
        kube = Kube.from_params({"kubeconfig": str(path)})
        try:
            return kube.call("GET", "/api/v1/namespaces/ml/configmaps/gpu-mode-k3s-gpu-worker")[0]
        finally:
            kube.close()

    assert (status_with(old), status_with(new)) == (401, 200)
    removed = access.remove(homelab, NODE, NAMESPACE)
    assert removed["changed"] is True
    assert status_with(new) == 401
    for api_version, kind, name in (("v1", "ServiceAccount", "gpu-mode-k3s-gpu-worker"),
                                    ("rbac.authorization.k8s.io/v1", "Role", "gpu-mode-k3s-gpu-worker"),
                                    ("rbac.authorization.k8s.io/v1", "RoleBinding", "gpu-mode-k3s-gpu-worker"),
                                    ("v1", "Secret", "gpu-mode-k3s-gpu-worker-token")):
        assert live(homelab, api_version, kind, name) is None
    assert access.remove(homelab, NODE, NAMESPACE)["changed"] is False


def test_a_node_without_modes_in_the_cluster_gets_a_clear_error(kube_api, collection_kube):
    with pytest.raises(access.AccessError) as err:
        access.ensure(collection_kube, "worker9", NAMESPACE, kube_api.url)
    assert "ConfigMap ml/gpu-mode-worker9 does not exist" in str(err.value)
    assert "vllm role" in str(err.value)


ROLE_ACCESS_PLAY = """---
- name: The gpu_mode role's cluster side for one node
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Node access
      ansible.builtin.include_role:
        name: baremetal.gpu.gpu_mode
        tasks_from: access
      vars:
        gpu_mode_node: k3s-gpu-worker
        gpu_mode_namespace: ml
"""

BARE_MODULE_PLAY = """---
- name: The module from a task that forgot no_log
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Node access, printed
      baremetal.gpu.gpu_mode_access:
        node: k3s-gpu-worker
"""


def test_through_ansible_the_token_never_shows_and_a_second_run_changes_nothing(homelab, kubeconfig, tmp_path):
    from tests.harness.ansible_cli import ansible_playbook, kube_env

    play = tmp_path / "access.yml"
    play.write_text(ROLE_ACCESS_PLAY)
    first = ansible_playbook(play, "-vvv", "--diff", env=kube_env(kubeconfig))
    secret = live(homelab, "v1", "Secret", "gpu-mode-k3s-gpu-worker-token")
    token = base64.b64decode(secret["data"]["token"]).decode()
    output = first.stdout + first.stderr
    assert token not in output and secret["data"]["token"] not in output
    assert "certificate-authority-data" not in output  # no part of the kubeconfig is printed
    assert "- Role gpu-mode-k3s-gpu-worker created" in output  # what changed is shown
    again = ansible_playbook(play, env=kube_env(kubeconfig))
    assert "localhost : ok=3 changed=0" in " ".join(again.stdout.split()), again.stdout[-2000:]

    bare = tmp_path / "bare.yml"
    bare.write_text(BARE_MODULE_PLAY)
    refused_run = ansible_playbook(bare, "-vvv", env=kube_env(kubeconfig), check=False)
    output = refused_run.stdout + refused_run.stderr
    assert refused_run.returncode != 0
    assert "this task returns the node's credentials (a kubeconfig with its token): set no_log: true" in output
    assert token not in output
