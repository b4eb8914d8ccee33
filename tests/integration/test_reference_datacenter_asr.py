"""Reference deployment "datacenter speech recognition" (a plan that added a Qwen3-ASR-1.7B service to a
vLLM Helm chart): the asr entry of inventories/examples/datacenter-speech rendered through the vllm role
as ``ansible-playbook`` renders it, compared with the plan's values, and the preflight on the plan's own
image. Each assertion cites the part of the plan it comes from."""

import pathlib

import pytest
import yaml

from tests.harness.ansible_cli import ansible_playbook
from tests.harness.role_render import INVENTORIES, flag_values, main_container, pod_spec, render, schema_errors

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def rendered():
    return render("datacenter-speech")


@pytest.fixture(scope="module")
def asr(rendered):
    return rendered.by_kind("Deployment")["local-llm-asr"]


def test_every_object_validates(rendered):
    assert schema_errors(rendered.manifests) == []


def test_the_values_of_the_asr_service(asr):
    main = main_container(asr)
    # TODO 1, values: replicaCount 1; model path /models/Qwen3-ASR-1.7B, name Qwen/Qwen3-ASR-1.7B
    assert asr["spec"]["replicas"] == 1
    flags = flag_values(main["args"])
    assert flags["--model"] == "/models/Qwen3-ASR-1.7B"
    assert main["args"][main["args"].index("--served-model-name") + 1] == "Qwen/Qwen3-ASR-1.7B"
    # resources.limits nvidia.com/gpu: 2 (deliverables: 2x GPU)
    assert main["resources"]["limits"]["nvidia.com/gpu"] == "2"
    # extraArgs: --tensor-parallel-size 2 --gpu-memory-utilization 0.9 --max-model-len 4096
    # --max-num-seqs 128 --trust-remote-code --dtype bfloat16
    assert flags["--tensor-parallel-size"] == "2"
    assert flags["--gpu-memory-utilization"] == "0.9"
    assert flags["--max-model-len"] == "4096"
    assert flags["--max-num-seqs"] == "128"
    assert flags["--trust-remote-code"] is True
    assert flags["--dtype"] == "bfloat16"
    # service.port 8005: the server listens there
    assert flags["--port"] == "8005"
    assert main["ports"] == [{"name": "http", "containerPort": 8005, "protocol": "TCP"}]
    # image configuration: pullPolicy IfNotPresent (the tag is the inventory's written difference, below)
    assert main["imagePullPolicy"] == "IfNotPresent"
    # acceptance criteria, helm template: the Deployment contains the vllm-api container
    assert main["name"] == "vllm-api"
    # no forced aligner (guardrails: do not add Forced Aligner configuration)
    assert not any("aligner" in arg.lower() for arg in main["args"])


def test_placement_on_the_32gb_nodes(asr):
    # affinity: nodeAffinity required, memorysize In [32GB]
    assert pod_spec(asr)["affinity"] == {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": "memorysize", "operator": "In", "values": ["32GB"]}]}]}}}


def test_service_selector_port_and_ingress_host(rendered, asr):
    service = rendered.by_kind("Service")["local-llm-asr"]
    # acceptance criteria: the Service has port 8005 and selector app: custom-chart, service: asr
    assert service["spec"]["ports"][0]["port"] == 8005
    assert service["spec"]["selector"] == {"app": "custom-chart", "service": "asr"}
    labels = asr["spec"]["template"]["metadata"]["labels"]
    assert labels["app"] == "custom-chart" and labels["service"] == "asr"
    # TODO 1, ingress: host asr.aggpf.gpu-k8s.cloudcore-tu.net, path / (Prefix) to the asr service
    (rule,) = rendered.by_kind("Ingress")["local-llm-asr"]["spec"]["rules"]
    assert rule["host"] == "asr.aggpf.gpu-k8s.cloudcore-tu.net"
    (path,) = rule["http"]["paths"]
    assert path["path"] == "/" and path["pathType"] == "Prefix"
    assert path["backend"]["service"] == {"name": "local-llm-asr", "port": {"number": 8005}}


def test_the_plans_image_predates_qwen3_asr_and_the_preflight_says_so():
    # Image configuration: vllm/vllm-openai:v0.12.0, taken to support Qwen3-ASR natively. vLLM serves the
    # architecture from 0.16.0: run the preflight on the plan's own image and read its table.
    inventory = yaml.safe_load((INVENTORIES["datacenter-speech"] / "group_vars" / "all.yml").read_text())
    as_planned = [dict(e, image="vllm/vllm-openai:v0.12.0") if e["name"] == "asr" else e
                  for e in inventory["vllm_catalog"]]
    assert inventory["vllm_catalog"][0]["image"] == "vllm/vllm-openai:v0.16.0"  # what the inventory uses instead
    node = {"driver_installed": True, "driver_version": "580.95.05",
            "gpus": [{"name": "NVIDIA A100-SXM4-40GB"}, {"name": "NVIDIA A100-SXM4-40GB"}]}
    local = {"preflight_node_facts": node, "preflight_fail_on": "never", "ansible_connection": "local",
             "ansible_python_interpreter": "{{ ansible_playbook_python }}"}
    run = ansible_playbook(ROOT / "preflight.yml", "--limit", "gpu-32gb-01.dc.example.com",
                           inventory=INVENTORIES["datacenter-speech"], extra_vars=dict(local, vllm_catalog=as_planned))
    rows = [line for line in run.stdout.splitlines() if "gpu-32gb-01" in line and " asr " in line]
    assert len(rows) == 1, run.stdout[-3000:]
    assert "vllm/vllm-openai:v0.12.0" in rows[0] and " warn " in rows[0] and "vllm_too_old" in rows[0]
    assert "fix: use vllm/vllm-openai:v0.16.0 or newer" in run.stdout
    fixed = ansible_playbook(ROOT / "preflight.yml", "--limit", "gpu-32gb-01.dc.example.com",
                             inventory=INVENTORIES["datacenter-speech"], extra_vars=local)
    rows = [line for line in fixed.stdout.splitlines() if "gpu-32gb-01" in line and " asr " in line]
    assert len(rows) == 1 and "vllm/vllm-openai:v0.16.0" in rows[0] and "vllm_too_old" not in rows[0], rows
