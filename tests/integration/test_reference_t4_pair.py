"""Reference deployment "T4 speech pair on EKS" (a guide to Qwen3 ASR and TTS sharing one time-sliced T4
on a Karpenter Spot node, with EFS weights and one ALB): inventories/examples/t4-timesliced rendered
through the vllm role as ``ansible-playbook`` renders it, compared with the guide. Each assertion cites
the part of the guide it comes from."""

import json

import pytest

from ansible_collections.baremetal.gpu.plugins.module_utils import compat
from tests.harness.role_render import main_container, pod_spec, render, schema_errors


@pytest.fixture(scope="module")
def rendered():
    return render("t4-timesliced")


@pytest.fixture(scope="module")
def deployments(rendered):
    return rendered.by_kind("Deployment")


def test_every_object_validates_in_the_guides_namespace(rendered):
    assert schema_errors(rendered.manifests) == []
    # step 2: namespace hosthree
    assert {m["metadata"].get("namespace") for m in rendered.manifests if m["kind"] != "Namespace"} == {"hosthree"}
    # deployment files: qwen3-asr and qwen3-tts Deployments (troubleshooting: deployment/qwen3-asr, qwen3-tts)
    assert sorted(rendered.by_kind("Deployment")) == ["qwen3-asr", "qwen3-tts"]


def test_no_runtime_class_and_placement_that_survives_a_spot_replacement(deployments):
    for deployment in deployments.values():
        spec = pod_spec(deployment)
        # prerequisites: the EKS GPU NodePool and the NVIDIA device plugin only; no RuntimeClass is named
        assert "runtimeClassName" not in spec
        # verification: GPU nodes carry node-type=gpu (kubectl get node -l node-type=gpu); Karpenter brings up
        # Spot instances, whose names change: placement by label, never by host name
        assert spec["nodeSelector"] == {"node-type": "gpu"}
        assert "kubernetes.io/hostname" not in json.dumps(spec["nodeSelector"])
        # step 5 and verification: both pods on the same node (deploy TTS after ASR to avoid a different node)
        (term,) = spec["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        assert term["topologyKey"] == "kubernetes.io/hostname"
        both = [d["spec"]["template"]["metadata"]["labels"] for d in deployments.values()]
        assert all(term["labelSelector"]["matchLabels"].items() <= labels.items() for labels in both)
        # time-slicing: each pod asks for one of the two virtual GPUs
        assert main_container(deployment)["resources"]["limits"] == {"nvidia.com/gpu": "1"}
        # resource allocation: 1 CPU and 6Gi requested by each container
        assert main_container(deployment)["resources"]["requests"] == {"cpu": "1", "memory": "6Gi"}


def test_weights_on_efs_downloaded_and_checked_by_an_init_container(rendered, deployments):
    # step 3: an EFS StorageClass and the claim qwen3-models-pvc, read-write-many, shared model storage
    claim = rendered.by_kind("PersistentVolumeClaim")["qwen3-models-pvc"]
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    assert claim["spec"]["storageClassName"] == "efs-sc"
    paths = {"qwen3-asr": ("Qwen/Qwen3-ASR-1.7B", "/models/Qwen3-ASR-1.7B"),
             # model download table: the TTS weights are at /models/Qwen3-TTS-CustomVoice on EFS
             "qwen3-tts": ("Qwen/Qwen3-TTS-12Hz-1.7B-CustomVoice", "/models/Qwen3-TTS-CustomVoice")}
    for name, deployment in deployments.items():
        spec = pod_spec(deployment)
        assert {"name": "cache", "persistentVolumeClaim": {"claimName": "qwen3-models-pvc"}} in spec["volumes"]
        # troubleshooting: kubectl logs <pod> -c model-downloader (the init container that downloads)
        (init,) = spec["initContainers"]
        assert init["name"] == "model-downloader"
        repo, local = paths[name]
        # model download: from Hugging Face into EFS; the init container checks every shard and config.json
        assert init["args"] == ["--repo", repo, "--cache-dir", "/models", "--local-dir", local]
        assert init["command"] == ["python3", "/opt/baremetal-gpu/check_weights.py"]
    script = rendered.by_kind("ConfigMap")["weights-check"]["data"]["check_weights.py"]
    assert "config.json" in script and "model.safetensors.index.json" in script


def test_asr_runs_the_official_server_with_the_guides_settings(rendered, deployments):
    asr = main_container(deployments["qwen3-asr"])
    # ASR image: qwenllm/qwen3-asr:latest; start command qwen-asr-serve /models/Qwen3-ASR-1.7B
    assert asr["image"] == "qwenllm/qwen3-asr:latest"
    assert asr["command"] == ["qwen-asr-serve", "/models/Qwen3-ASR-1.7B"]
    # troubleshooting: kubectl logs deployment/qwen3-asr -c asr; kubectl get pods -l app=qwen3-asr
    assert asr["name"] == "asr"
    assert deployments["qwen3-asr"]["spec"]["template"]["metadata"]["labels"]["app"] == "qwen3-asr"
    args = asr["args"]
    # resource allocation: gpu_memory_utilization=0.45, max_model_len=4096; components: port 8000
    assert args[args.index("--gpu-memory-utilization") + 1] == "0.45"
    assert args[args.index("--max-model-len") + 1] == "4096"
    assert args[args.index("--port") + 1] == "8000"
    # API usage: clients send -F model=/models/Qwen3-ASR-1.7B: that name must be served
    names = args[args.index("--served-model-name") + 1:args.index("--host")]
    assert names[0] == "/models/Qwen3-ASR-1.7B" and "Qwen/Qwen3-ASR-1.7B" in names
    # known limits: the T4 is compute capability 7.5, no bf16 in vLLM
    assert args[args.index("--dtype") + 1] == "float16"
    # first deploy: model load and CUDA graph capture 3-5 min: the startup probe allows more
    assert asr["startupProbe"]["periodSeconds"] * asr["startupProbe"]["failureThreshold"] >= 5 * 60


def test_tts_keeps_its_images_command_and_reads_ready_from_the_body(deployments):
    tts = main_container(deployments["qwen3-tts"])
    # TTS image: the community FastAPI service (ECR qwen3-tts:latest), port 8880, its own start command
    assert tts["image"].endswith(".amazonaws.com/qwen3-tts:latest")
    assert "command" not in tts and "args" not in tts
    assert tts["ports"] == [{"name": "http", "containerPort": 8880, "protocol": "TCP"}]
    # resource allocation: TTS_BACKEND=official, TTS_DTYPE=bfloat16; the weights where the guide put them
    env = {e["name"]: e.get("value") for e in tts["env"]}
    assert env["TTS_BACKEND"] == "official" and env["TTS_DTYPE"] == "bfloat16"
    assert env["TTS_MODEL_NAME"] == "/models/Qwen3-TTS-CustomVoice"
    # verification: /health answers "status": "healthy", "ready": true; troubleshooting: "initializing"
    # while the model loads. The startup and readiness probes read the field with the image's python3.
    for probe in (tts["startupProbe"], tts["readinessProbe"]):
        command = probe["exec"]["command"]
        assert command[0] == "python3"
        assert command[3:6] == ["http://127.0.0.1:8880/health", "ready", "true"]
    assert tts["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}


def test_tts_liveness_outlasts_the_longest_generation(deployments):
    tts = main_container(deployments["qwen3-tts"])
    liveness = tts["livenessProbe"]
    # generation: up to ~11 min of speech at a real-time factor of ~2.16 (about 24 min of inference), long
    # texts ~10 min, single-threaded: /health does not answer meanwhile, so liveness must wait longer
    longest_inference_s = 11 * 60 * 2.16
    assert liveness["periodSeconds"] * liveness["failureThreshold"] > longest_inference_s
    # known limits: readiness fails during a long inference and the ALB takes it back afterwards
    assert tts["readinessProbe"]["failureThreshold"] * tts["readinessProbe"]["periodSeconds"] < 60


def test_one_alb_with_a_port_per_service(rendered):
    services = rendered.by_kind("Service")
    # verification: port-forward svc/qwen3-asr-service 8000:80 and svc/qwen3-tts-service 8880:80
    assert services["qwen3-asr-service"]["spec"]["ports"][0]["port"] == 80
    assert services["qwen3-tts-service"]["spec"]["ports"][0]["port"] == 80
    ingresses = rendered.by_kind("Ingress")
    # architecture: ALB ingress group qwen3-speech, :8000 to ASR and :8880 to TTS
    listeners = {}
    for name, ingress in ingresses.items():
        annotations = ingress["metadata"]["annotations"]
        assert ingress["spec"]["ingressClassName"] == "alb"
        assert annotations["alb.ingress.kubernetes.io/group.name"] == "qwen3-speech"
        (port,) = json.loads(annotations["alb.ingress.kubernetes.io/listen-ports"])
        (rule,) = ingress["spec"]["rules"]
        listeners[port["HTTP"]] = rule["http"]["paths"][0]["backend"]["service"]["name"]
    assert listeners == {8000: "qwen3-asr-service", 8880: "qwen3-tts-service"}


def test_the_two_budgets_fit_one_t4(rendered):
    # overview: the two models share one T4 by time-slicing, no memory isolation; ASR ~3.87 GiB at 0.45,
    # TTS ~3.90 GiB. The preflight of the ASR counts the TTS's memory next to it.
    node = {"driver_version": "535.247.01", "gpus": [{"name": "Tesla T4", "memory_total_mib": 15360}]}
    asr = [w for w in rendered.plan["workloads"] if w["name"] == "qwen3-asr"][0]
    result = compat.check(asr["image"], node, asr["compat"], colocated=[{"name": "qwen3-tts", "memory_mib": 3994}])
    assert "gpu_memory_oversubscribed" not in [r["code"] for r in result["reasons"]]
    crowded = compat.check(asr["image"], node, asr["compat"], colocated=[{"name": "other", "memory_mib": 9000}])
    assert "gpu_memory_oversubscribed" in [r["code"] for r in crowded["reasons"]]
