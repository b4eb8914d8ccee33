"""The gpu_router role for real, after the gpu_mode role, on a GPU node of the simulated home lab: the node is a
local-connection host whose paths are under a temporary directory, and the simulated node's hostPath volumes
show those directories (tests/harness/node_disk.py), so the router's pods start from exactly the files the roles
put there: the gpu_mode role's code, and this role's packages installed offline from the carried wheels. The
router runs isolated in what the vLLM image's Python has (programs/python_module.py): a package missing from
the site directory fails its import. The official `openai` client calls it; a second run changes nothing;
state=absent removes it. The gpu_mode role runs once (its wheel copy dominates the test's time)."""

import re

import pytest
import yaml

from tests.harness import gpu_mode_cluster as world
from tests.harness import node_disk
from tests.harness.ansible_cli import ansible_playbook, kube_env
from tests.harness.gpu_mode_cluster import NAMESPACE, NODE

openai = pytest.importorskip("openai")

pytestmark = pytest.mark.slow

ROUTER = "gpu-router-" + NODE
R1_MODEL = "casperhansen/deepseek-r1-distill-qwen-7b-awq"
PLAY = """---
- name: The switcher, then the router, on the GPU nodes
  hosts: gpu_nodes
  gather_facts: false
  roles:
    - role: baremetal.gpu.gpu_mode
      when: not router_only | default(false) | bool
    - role: baremetal.gpu.gpu_router
"""


@pytest.fixture
def node(kube_api, collection_kube, kubeconfig, tmp_path, fake_nvml_lib):
    with world.simulator(kube_api.url, tmp_path / "cluster") as sim:
        world.apply_homelab(collection_kube)
        root = tmp_path / "node"
        host = {
            "ansible_connection": "local",
            "ansible_python_interpreter": "/usr/bin/python3",
            "gpu_mode_cluster_kubeconfig": kubeconfig,
            "gpu_mode_prefix": str(root / "opt" / "gpu-mode"),
            "gpu_mode_cli_path": str(root / "bin" / "gpu-mode"),
            "gpu_mode_config_file": str(root / "etc" / "gpu-mode.json"),
            "gpu_mode_node_kubeconfig": str(root / "etc" / "gpu-mode.kubeconfig"),
            "gpu_mode_os_packages": [],
            "gpu_mode_become": False,
            "gpu_mode_start_timeout": 60,
            "gpu_mode_health_timeout": 30,
            "gpu_mode_proc_root": str(world.gpu_export(sim) / "proc"),
            "gpu_mode_switch_environment": world.node_env(sim, fake_nvml_lib),
            "gpu_router_prefix": str(root / "opt" / "gpu-router"),
            "gpu_router_replicas": 1,
            "gpu_router_wait_timeout": 60,
            "gpu_router_settings": {"hold_timeout": 60},
            "vllm_namespace": NAMESPACE,
        }
        (root / "bin").mkdir(parents=True)
        # the node's hostPath volumes: the two directories the router's pods mount
        node_disk.share(sim.agents[NODE].host, [root / "opt" / "gpu-mode" / "lib", root / "opt" / "gpu-router" / "site"])
        inventory = tmp_path / "hosts.yml"
        inventory.write_text(yaml.safe_dump({"all": {"children": {"gpu_nodes": {"hosts": {NODE: host}}}}}))
        play = tmp_path / "play.yml"
        play.write_text(PLAY)
        yield {"inventory": inventory, "play": play, "root": root, "kubeconfig": kubeconfig}
    assert not sim.errors, sim.errors


def run_role(node, *args):
    run = ansible_playbook(node["play"], *args, inventory=node["inventory"], env=kube_env(node["kubeconfig"]),
                           timeout=300, check=False)
    out = " ".join((run.stdout + run.stderr).split())
    assert run.returncode == 0, out[-4000:]
    match = re.search(r"%s : ok=\d+ changed=(\d+) unreachable=0 failed=0" % NODE, out)
    assert match, out[-3000:]
    return int(match.group(1)), out


def router_url(kube):
    (pod,) = [p for p in kube.items("v1", "Pod", NAMESPACE, label_selector="app.kubernetes.io/name=gpu-router")
              if not p["metadata"].get("deletionTimestamp")]
    return kube.request("GET", "/fake/v1/podnetwork/%s/8080" % pod["status"]["podIP"])["url"], pod


def test_role_runs_the_router_from_the_nodes_files_then_changes_nothing_then_removes_it(node, collection_kube):
    changed, out = run_role(node)
    assert changed > 0
    site = node["root"] / "opt" / "gpu-router" / "site"
    assert (site / "kubernetes" / "__init__.py").is_file() and (site / "pynvml.py").is_file()
    assert not (site / "aiohttp").exists()  # the image's, not the role's
    deployment = collection_kube.get("apps/v1", "Deployment", ROUTER, NAMESPACE)
    volumes = dict((v["name"], v.get("hostPath", {}).get("path")) for v in deployment["spec"]["template"]["spec"]["volumes"])
    assert volumes["site"] == str(site) and volumes["code"] == str(node["root"] / "opt" / "gpu-mode" / "lib")
    assert deployment["status"]["readyReplicas"] == 1
    for kind, api in (("ServiceAccount", "v1"), ("Service", "v1"), ("PodDisruptionBudget", "policy/v1")):
        assert collection_kube.get(api, kind, "gpu-router" if kind == "Service" else ROUTER, NAMESPACE) is not None

    url, pod = router_url(collection_kube)
    client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=60)
    answer = client.chat.completions.create(model=R1_MODEL, messages=[{"role": "user", "content": "hi"}], max_tokens=4)
    assert answer.model == R1_MODEL and answer.choices[0].message.content
    data = collection_kube.get("v1", "ConfigMap", "gpu-mode-" + NODE, NAMESPACE)["data"]
    assert data["mode"] == "r1"  # switched by the router, with NVML bindings and client from the role's site

    # the router role alone (the gpu_mode role's own test proves its second run changes nothing)
    changed, out = run_role(node, "-e", "router_only=true")
    assert changed == 0, out[-4000:]
    assert router_url(collection_kube)[1]["metadata"]["uid"] == pod["metadata"]["uid"]  # not restarted

    changed, out = run_role(node, "-e", "router_only=true", "-e", "gpu_router_state=absent")
    assert changed > 0
    for kind, api in (("Deployment", "apps/v1"), ("Role", "rbac.authorization.k8s.io/v1"), ("ConfigMap", "v1"),
                      ("ServiceAccount", "v1"), ("PodDisruptionBudget", "policy/v1")):
        assert collection_kube.get(api, kind, ROUTER, NAMESPACE) is None, kind
    assert collection_kube.get("v1", "Service", "gpu-router", NAMESPACE) is None
    assert not (node["root"] / "opt" / "gpu-router").exists()
