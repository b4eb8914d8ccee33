"""The vllm role's Jinja2 templates rendered from the catalog: every deployment of the field notes,
with no template edits, validates against the Kubernetes OpenAPI schema and says what the notes say."""

import base64
import pathlib

import pytest
import yaml

from ansible_collections.baremetal.gpu.plugins.module_utils import catalog

kubernetes_validate = pytest.importorskip("kubernetes_validate")

ROOT = pathlib.Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles" / "vllm"
KUBERNETES_VERSION = "1.32"  # k3s and kubectl of this project
INVENTORIES = {
    "homelab": ROOT / "inventories" / "homelab" / "group_vars" / "all.yml",
    "datacenter-speech": ROOT / "inventories" / "examples" / "datacenter-speech" / "group_vars" / "all.yml",
    "t4-timesliced": ROOT / "inventories" / "examples" / "t4-timesliced" / "group_vars" / "all.yml",
    "workstation-asr-fallback": ROOT / "inventories" / "examples" / "workstation-asr-fallback" / "group_vars" / "all.yml",
}


def render(name, **extra):
    overrides = yaml.safe_load(INVENTORIES[name].read_text())
    overrides.update(extra)
    return catalog.render_role(str(ROLE), overrides)


def by_kind(manifests, kind):
    return {m["metadata"]["name"]: m for m in manifests if m["kind"] == kind}


def container(deployment):
    (main,) = deployment["spec"]["template"]["spec"]["containers"]
    return main


@pytest.mark.parametrize("inventory", sorted(INVENTORIES))
def test_every_manifest_validates_against_the_openapi_schema(inventory):
    manifests = render(inventory, vllm_hf_token="hf_example_token", vllm_prepull=True)[1]
    assert manifests
    for manifest in manifests:
        try:
            kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = "/".join(map(str, exc.path))
            pytest.fail("%s %s: %s at %s" % (manifest["kind"], manifest["metadata"]["name"], exc.message, where))
    labels = {"app.kubernetes.io/name", "app.kubernetes.io/part-of", "app.kubernetes.io/managed-by"}
    for manifest in manifests:
        assert labels <= set(manifest["metadata"]["labels"]), manifest["metadata"]["name"]
        assert manifest["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "baremetal-gpu"


def test_the_validator_catches_a_broken_manifest():
    manifests = render("homelab")[1]
    broken = by_kind(manifests, "Deployment")["vllm-ml"]
    broken["spec"]["strategy"]["typ"] = "Recreate"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_home_lab_manifests_match_the_hand_written_ones():
    manifests = render("homelab")[1]
    kinds = ["Namespace", "Service", "Ingress", "Deployment", "PodDisruptionBudget", "Deployment", "PodDisruptionBudget"]
    assert [m["kind"] for m in manifests] == kinds
    service = by_kind(manifests, "Service")["vllm-api"]
    assert service["metadata"]["namespace"] == "ml"
    assert service["spec"]["ports"] == [{"name": "http", "port": 8000, "targetPort": "http", "protocol": "TCP"}]
    assert service["spec"]["selector"] == {"app.kubernetes.io/name": "vllm", "baremetal.gpu/service": "vllm-api"}
    ingress = by_kind(manifests, "Ingress")["vllm-api"]
    assert ingress["spec"]["ingressClassName"] == "traefik"
    deployments = by_kind(manifests, "Deployment")
    assert {n: d["spec"]["replicas"] for n, d in deployments.items()} == {"vllm-ml": 1, "vllm-r1": 0}
    ml = deployments["vllm-ml"]
    pod = ml["spec"]["template"]["spec"]
    assert ml["spec"]["strategy"] == {"type": "Recreate"}
    assert pod["runtimeClassName"] == "nvidia"
    assert pod["volumes"] == [
        {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "2Gi"}},
        {"name": "cache", "hostPath": {"path": "/var/lib/vllm/huggingface", "type": "DirectoryOrCreate"}},
    ]
    main = container(ml)
    assert main["image"] == "vllm/vllm-openai:v0.8.5.post1"
    assert main["resources"]["limits"] == {"nvidia.com/gpu": "1"}
    assert {"name": "shm", "mountPath": "/dev/shm"} in main["volumeMounts"]
    assert main["startupProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    startup = main["startupProbe"]["periodSeconds"] * main["startupProbe"]["failureThreshold"]
    assert startup >= 3 * 69  # the ~69 s first start, with margin
    liveness = main["livenessProbe"]["periodSeconds"] * main["livenessProbe"]["failureThreshold"]
    assert liveness >= 120  # lenient: a busy server is not killed
    assert ml["metadata"]["annotations"]["baremetal.gpu/modes"] == "ml"
    assert ml["metadata"]["annotations"]["baremetal.gpu/served-model-names"] == "vllm-qwen"
    pdbs = by_kind(manifests, "PodDisruptionBudget")
    assert all(p["spec"]["minAvailable"] == 0 for p in pdbs.values())
    assert pdbs["vllm-ml"]["spec"]["selector"]["matchLabels"] == ml["spec"]["selector"]["matchLabels"]
    # the PDB and Deployment selectors do not overlap between the two modes
    assert pdbs["vllm-ml"]["spec"]["selector"] != pdbs["vllm-r1"]["spec"]["selector"]
    assert not any(m["kind"] == "Secret" for m in manifests)  # no token, no Secret


def test_the_hf_token_goes_into_a_secret_the_pods_reference():
    manifests = render("homelab", vllm_hf_token="hf_example_token")[1]
    secret = by_kind(manifests, "Secret")["vllm-hf-token"]
    assert base64.b64decode(secret["data"]["token"]).decode() == "hf_example_token"
    env = {e["name"]: e for e in container(by_kind(manifests, "Deployment")["vllm-ml"])["env"]}
    assert env["HF_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "vllm-hf-token", "key": "token", "optional": True}
    assert "hf_example_token" not in yaml.safe_dump(by_kind(manifests, "Deployment"))


def test_datacenter_asr_on_two_gpus_and_tts_with_its_bootstrap():
    manifests = render("datacenter-speech")[1]
    deployments = by_kind(manifests, "Deployment")
    asr = deployments["vllm-asr"]
    main = container(asr)
    assert main["resources"]["limits"]["nvidia.com/gpu"] == "2"
    args = main["args"]
    for flag, value in (("--tensor-parallel-size", "2"), ("--max-model-len", "4096"), ("--max-num-seqs", "128"),
                        ("--dtype", "bfloat16"), ("--port", "8005"), ("--model", "/models/Qwen3-ASR-1.7B")):
        assert args[args.index(flag) + 1] == value
    assert "--trust-remote-code" in args
    terms = asr["spec"]["template"]["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert terms["nodeSelectorTerms"] == [{"matchExpressions": [{"key": "memorysize", "operator": "In", "values": ["32GB"]}]}]
    assert {"name": "HF_HUB_OFFLINE", "value": "1"} in main["env"]
    ingresses = by_kind(manifests, "Ingress")
    assert {n: i["spec"]["rules"][0]["host"] for n, i in ingresses.items()} == {
        "asr": "asr.speech.example.com", "tts": "tts.speech.example.com"}
    assert {i["spec"]["ingressClassName"] for i in ingresses.values()} == {"nginx"}
    assert by_kind(manifests, "Service")["asr"]["spec"]["ports"][0]["port"] == 8005
    tts = container(deployments["vllm-tts"])
    assert tts["image"] == "vllm/vllm-openai:v0.14.0"
    assert tts["command"][:2] == ["/bin/bash", "-c"] and tts["command"][-1] == "/models/Qwen3-TTS-12Hz-1.7B-CustomVoice"
    assert tts["args"][tts["args"].index("--dtype") + 1] == "float16"
    assert not any(e["name"] == "HF_HUB_OFFLINE" for e in tts["env"])  # its installs need the network


def test_t4_pair_shares_one_gpu_with_a_custom_image_json_health_and_checked_weights():
    the_plan, manifests = render("t4-timesliced")
    deployments = by_kind(manifests, "Deployment")
    asr, tts = container(deployments["vllm-asr"]), container(deployments["vllm-tts"])
    assert asr["image"] == "qwenllm/qwen3-asr:latest"
    assert asr["command"] == ["qwen-asr-serve", "/models/Qwen3-ASR-1.7B"]
    assert asr["resources"] == {"requests": {"cpu": "1", "memory": "6Gi"}, "limits": {"nvidia.com/gpu": "1"}}
    assert asr["args"][asr["args"].index("--gpu-memory-utilization") + 1] == "0.45"
    assert tts["ports"] == [{"name": "http", "containerPort": 8880, "protocol": "TCP"}]
    assert tts["args"] == [] and tts["command"][:3] == ["python3", "-m", "tts_api"]
    tts_workload = [w for w in the_plan["workloads"] if w["name"] == "tts"][0]
    assert tts_workload["health"] == {"kind": "json", "path": "/health", "field": "ready", "value": True, "models": False}
    claim = by_kind(manifests, "PersistentVolumeClaim")["speech-models"]
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    for deployment in deployments.values():
        spec = deployment["spec"]["template"]["spec"]
        (init,) = spec["initContainers"]
        assert init["command"] == ["python3", "/opt/baremetal-gpu/check_weights.py"]
        assert init["args"][init["args"].index("--local-dir") + 1].startswith("/models/")
        assert {"name": "cache", "persistentVolumeClaim": {"claimName": "speech-models"}} in spec["volumes"]
        assert spec["nodeSelector"] == {"kubernetes.io/hostname": "t4-node"}
    script = by_kind(manifests, "ConfigMap")["vllm-weights-check"]["data"]["check_weights.py"]
    assert script == (ROLE / "files" / "check_weights.py").read_text()
    prepull = by_kind(manifests, "DaemonSet")
    assert sorted(prepull) == ["vllm-asr-prepull", "vllm-tts-prepull"]
    images = [c["image"] for c in prepull["vllm-tts-prepull"]["spec"]["template"]["spec"]["initContainers"]]
    assert images == ["registry.example.com/speech/qwen3-tts-api:1.0.3", "qwenllm/qwen3-asr:latest"]


def test_fallback_is_ready_behind_the_same_service_and_name():
    the_plan, manifests = render("workstation-asr-fallback")
    deployments = by_kind(manifests, "Deployment")
    assert {n: d["spec"]["replicas"] for n, d in deployments.items()} == {"vllm-asr": 1, "vllm-asr-small": 0}
    assert deployments["vllm-asr"]["metadata"]["annotations"]["baremetal.gpu/fallback"] == "vllm-asr-small"
    assert list(by_kind(manifests, "Service")) == ["asr"]
    names = [w["served_model_names"] for w in the_plan["workloads"]]
    assert names == [["asr"], ["asr"]]
    switched = render("workstation-asr-fallback", vllm_active_mode="asr-small")[0]
    assert [w["replicas"] for w in switched["workloads"]] == [0, 1]
