"""Reference deployment "home lab" (a story that upgraded vLLM to serve Qwen3-8B-AWQ on an RTX 3060 k3s
worker, with a DeepSeek-R1 mode beside it): inventories/homelab rendered through the vllm role as
``ansible-playbook`` renders it, compared with what the story states. Each assertion cites the part of
the story it comes from; docs/reference-deployments.md tells the same facts in the project's words."""

import base64
import json

import pytest

from tests.harness.role_render import flag_values, main_container, pod_spec, render, schema_errors

TOKEN = "hf_HomeLabExampleToken01"


@pytest.fixture(scope="module")
def rendered():
    # the Hugging Face token comes from the user's vault in a real run; here as an extra var
    return render("homelab", {"vllm_hf_token": TOKEN})


@pytest.fixture(scope="module")
def deployments(rendered):
    return rendered.by_kind("Deployment")


def served_names(container):
    args = container["args"]
    start = args.index("--served-model-name") + 1
    names = []
    for arg in args[start:]:
        if arg.startswith("--"):
            break
        names.append(arg)
    return names


def test_every_object_validates_and_the_token_stays_secret(rendered):
    assert schema_errors(rendered.manifests) == []
    output = rendered.run.stdout + rendered.run.stderr
    assert TOKEN not in output and base64.b64encode(TOKEN.encode()).decode() not in output
    secret = rendered.by_kind("Secret")["vllm-hf-token"]
    assert base64.b64decode(secret["data"]["token"]).decode() == TOKEN
    env = {e["name"]: e for e in main_container(rendered.by_kind("Deployment")["vllm-ml"])["env"]}
    assert env["HF_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "vllm-hf-token", "key": "token", "optional": True}


def test_ml_mode_serves_qwen3_8b_awq_as_the_story_upgraded_it(deployments):
    ml = main_container(deployments["vllm-ml"])
    # Tasks, 2.1 and 2.2: image vllm/vllm-openai:v0.8.5.post1, model Qwen/Qwen3-8B-AWQ
    assert ml["image"] == "vllm/vllm-openai:v0.8.5.post1"
    flags = flag_values(ml["args"])
    assert flags["--model"] == "Qwen/Qwen3-8B-AWQ"
    # Acceptance criterion 1 (and task 1.3): --enforce-eager, --quantization awq_marlin,
    # --gpu-memory-utilization 0.90, --max-model-len 8192 remain
    assert flags["--enforce-eager"] is True
    assert flags["--quantization"] == "awq_marlin"
    assert float(flags["--gpu-memory-utilization"]) == 0.90
    assert flags["--max-model-len"] == "8192"
    # LiteLLM integration note: vLLM validates the model name, the proxy sends Qwen/Qwen3-8B-AWQ (task 6.3),
    # and task 4.6 confirms /v1/models lists Qwen/Qwen3-8B-AWQ: the id is served, first; the alias beside it
    assert served_names(ml) == ["Qwen/Qwen3-8B-AWQ", "vllm-qwen"]


def test_r1_mode_keeps_its_model_and_tokenizer_on_the_same_image(deployments):
    r1 = main_container(deployments["vllm-r1"])
    # Task 3.1 and 3.2: same image; model casperhansen/deepseek-r1-distill-qwen-7b-awq with a tokenizer override
    assert r1["image"] == "vllm/vllm-openai:v0.8.5.post1"
    flags = flag_values(r1["args"])
    assert flags["--model"] == "casperhansen/deepseek-r1-distill-qwen-7b-awq"
    # Critical implementation details, R1 deployment: explicit tokenizer deepseek-ai/DeepSeek-R1-Distill-Qwen-7B
    assert flags["--tokenizer"] == "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B"
    # Task 5.2: the model is confirmed as casperhansen/deepseek-r1-distill-qwen-7b-awq
    assert served_names(r1)[0] == "casperhansen/deepseek-r1-distill-qwen-7b-awq"
    # Anti-patterns: never remove --enforce-eager (RTX 3060)
    assert flags["--enforce-eager"] is True


def test_the_two_modes_are_the_workers_and_stay_ready_for_a_switch(rendered, deployments):
    # GPU mode script: the two Deployments are scaled between 0 and 1 (now by the gpu-mode switcher, which
    # owns their replicas: the role leaves them out, so a site.yml run never undoes a switch)
    for deployment in deployments.values():
        assert "replicas" not in deployment["spec"]
        assert deployment["metadata"]["annotations"]["baremetal.gpu/replicas-manager"] == "baremetal-gpu-mode"
        # Architecture compliance: Recreate (GPU exclusive access, no rolling updates)
        assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    # ml is the default mode; the modes live in the cluster, where `gpu-mode` reads them (no stale copy on
    # the node: the script's manifests went stale and the operator fell back to kubectl apply)
    configmap = rendered.by_kind("ConfigMap")["gpu-mode-k3s-gpu-worker"]
    book = json.loads(configmap["data"]["modes.json"])
    assert book["default"] == "ml"
    assert {m: spec["workloads"] for m, spec in book["modes"].items()} == {
        "ml": {"vllm-ml": 1}, "r1": {"vllm-r1": 1}, "off": {}}


def test_pods_match_the_architecture_rules(rendered, deployments):
    for deployment in deployments.values():
        spec = pod_spec(deployment)
        main = main_container(deployment)
        # Architecture compliance: namespace ml
        assert deployment["metadata"]["namespace"] == "ml"
        # Labels must include app.kubernetes.io/name: vllm and app.kubernetes.io/part-of: home-lab
        assert deployment["metadata"]["labels"]["app.kubernetes.io/name"] == "vllm"
        assert deployment["metadata"]["labels"]["app.kubernetes.io/part-of"] == "home-lab"
        assert spec["containers"][0] is main
        # GPU resource request nvidia.com/gpu: 1, scheduled on k3s-gpu-worker only
        assert main["resources"]["limits"]["nvidia.com/gpu"] == "1"
        assert spec["nodeSelector"] == {"kubernetes.io/hostname": "k3s-gpu-worker"}
        # Storage: hostPath /var/lib/vllm/huggingface for the model cache, not NFS
        assert {"name": "cache", "hostPath": {"path": "/var/lib/vllm/huggingface", "type": "DirectoryOrCreate"}} \
            in spec["volumes"]
        # Shared memory: emptyDir with medium Memory for /dev/shm
        shm = [v for v in spec["volumes"] if v["name"] == "shm"][0]
        assert shm["emptyDir"]["medium"] == "Memory"
        assert {"name": "shm", "mountPath": "/dev/shm"} in main["volumeMounts"]
        # the k3s worker runs the NVIDIA runtime through k3s's RuntimeClass
        assert spec["runtimeClassName"] == "nvidia"
    # PodDisruptionBudget minAvailable 0 (allows full eviction during node drain)
    pdbs = rendered.by_kind("PodDisruptionBudget")
    assert sorted(pdbs) == ["vllm-ml", "vllm-r1"] and all(p["spec"]["minAvailable"] == 0 for p in pdbs.values())


def test_clients_keep_vllm_api_8000_and_the_traefik_host(rendered, deployments):
    # Critical implementation details: Service vllm-api, ClusterIP, port 8000, selector app: vllm-server;
    # anti-patterns: never change the service name or port (downstream consumers depend on vllm-api:8000)
    (service,) = rendered.by_kind("Service").values()
    assert service["metadata"]["name"] == "vllm-api" and service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"] == [{"name": "http", "port": 8000, "targetPort": "http", "protocol": "TCP"}]
    assert service["spec"]["selector"] == {"app": "vllm-server"}
    for deployment in deployments.values():
        assert deployment["spec"]["template"]["metadata"]["labels"]["app"] == "vllm-server"
        assert main_container(deployment)["ports"][0]["containerPort"] == 8000
    # Ingress vllm.home.jetzinger.com through Traefik (an Ingress of class traefik, see the inventory)
    ingress = rendered.by_kind("Ingress")["vllm-api"]
    assert ingress["spec"]["ingressClassName"] == "traefik"
    (rule,) = ingress["spec"]["rules"]
    assert rule["host"] == "vllm.home.jetzinger.com"
    assert rule["http"]["paths"][0]["backend"]["service"] == {"name": "vllm-api", "port": {"number": 8000}}


def test_probes_let_the_model_load_and_answer_as_soon_as_it_can(deployments):
    ml = main_container(deployments["vllm-ml"])
    startup, readiness = ml["startupProbe"], ml["readinessProbe"]
    # Completion notes: first download ~69 s, from the cache ~20 s (acceptance: within 120 s). A startup
    # probe (the inventory says why it replaces initial delays) allows three first starts ...
    assert startup["httpGet"] == {"path": "/health", "port": "http"}
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 3 * 69
    # ... and readiness follows /health within a second, well under the 20 s cached start
    assert readiness["periodSeconds"] == 1 and readiness["httpGet"]["path"] == "/health"
    # liveness never kills a busy server quickly
    assert ml["livenessProbe"]["periodSeconds"] * ml["livenessProbe"]["failureThreshold"] >= 120
    r1 = main_container(deployments["vllm-r1"])
    # R1 deployment: longer timings (readiness 90 s, up to 210 s; liveness 120 s)
    assert r1["startupProbe"]["periodSeconds"] * r1["startupProbe"]["failureThreshold"] >= 210


def test_the_image_is_pulled_ahead_of_a_switch(rendered):
    # (the inventory's own addition: gpu-mode must not wait for an image pull)
    prepull = rendered.by_kind("DaemonSet")
    assert sorted(prepull) == ["vllm-ml-prepull", "vllm-r1-prepull"]
    spec = prepull["vllm-r1-prepull"]["spec"]["template"]["spec"]
    assert [c["image"] for c in spec["initContainers"]] == ["vllm/vllm-openai:v0.8.5.post1"]
    assert spec["nodeSelector"] == {"kubernetes.io/hostname": "k3s-gpu-worker"}


def test_the_schema_check_is_strict_enough_to_catch_a_typo(deployments):
    broken = dict(deployments["vllm-ml"], spec=dict(deployments["vllm-ml"]["spec"], strategy={"typ": "Recreate"}))
    assert len(schema_errors([broken])) == 1
