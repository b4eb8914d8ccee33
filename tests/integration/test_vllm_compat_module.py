"""vllm_compat run the way users run it: ``ansible localhost -m baremetal.gpu.vllm_compat``, the preflight
playbook, and the registry lookup against the harness's local OCI registry (real HTTP, no mocks)."""

import json
import pathlib
import socket

import pytest
import yaml

from tests.harness.ansible_cli import ansible_module, ansible_playbook
from tests.harness.oci_registry import cuda_image_env
from ansible_collections.baremetal.gpu.plugins.module_utils import compat

HOMELAB = {"driver_version": "570.195.03",
           "gpus": [{"name": "NVIDIA GeForce RTX 3060", "compute_capability": "8.6", "memory_total_mib": 12288}]}
H100_535 = {"driver_version": "535.247.01", "gpus": [{"name": "NVIDIA H100 80GB HBM3"}]}
QWEN_AWQ = {"name": "Qwen/Qwen3-8B-AWQ", "quantization": "awq_marlin", "max_model_len": 8192,
            "gpu_memory_utilization": 0.9, "enforce_eager": True}


# --- the module ------------------------------------------------------------------------------------

def test_fail_verdict_fails_the_task_with_reasons_and_fixes():
    result = ansible_module("baremetal.gpu.vllm_compat",
                            {"image": "vllm/vllm-openai:v0.15.1", "node": HOMELAB, "model": QWEN_AWQ})
    assert result["failed"] is True and result["verdict"] == "fail" and result["compatible"] is False
    assert "forward_compat_unsupported" in result["msg"]
    assert "forward compatibility was attempted on non supported HW" in result["msg"]
    (reason,) = [r for r in result["reasons"] if r["severity"] == "fail"]
    assert reason["fix"] and result["image_cuda"] == "12.9.1" and result["driver_cuda"] == "12.8"


def test_fail_on_never_reports_in_check_mode():
    result = ansible_module("baremetal.gpu.vllm_compat",
                            {"image": "vllm/vllm-openai:v0.15.1", "node": HOMELAB, "model": QWEN_AWQ, "fail_on": "never"},
                            check_mode=True)
    assert not result.get("failed") and result["changed"] is False and result["verdict"] == "fail"
    # the same answer as the rules give in-process
    direct = compat.check("vllm/vllm-openai:v0.15.1", HOMELAB, QWEN_AWQ)
    assert result["reasons"] == direct["reasons"] and result["memory"] == direct["memory"]


def test_bad_input_fails_naming_the_field():
    result = ansible_module("baremetal.gpu.vllm_compat", {
        "image": "vllm/vllm-openai:v0.9.2", "node": HOMELAB, "model": dict(QWEN_AWQ, gpu_memory_utilization=1.5)})
    assert result["failed"] is True and "model.gpu_memory_utilization" in result["msg"]
    result = ansible_module("baremetal.gpu.vllm_compat", {
        "image": "vllm/vllm-openai:v0.9.2", "model": QWEN_AWQ,
        "node": {"driver_version": "570.195.03", "gpus": [{"name": "Acme Z9"}]}})
    assert result["failed"] is True and "node.gpus[0]" in result["msg"] and "compute_capability" in result["msg"]


# --- the preflight playbook --------------------------------------------------------------------------

def test_preflight_on_the_local_inventory_passes_and_prints_the_table():
    run = ansible_playbook("preflight.yml")
    assert "k3s-gpu-worker ml         vllm/vllm-openai:v0.8.5.post1            ok" in run.stdout
    assert "k3s-gpu-worker r1         vllm/vllm-openai:v0.8.5.post1            ok" in run.stdout


def test_preflight_fails_on_a_workload_that_would_not_start():
    workloads = [{"name": "ml-new", "image": "vllm/vllm-openai:v0.15.1", "model": "Qwen/Qwen3-8B-AWQ",
                  "quantization": "awq_marlin", "max_model_len": 8192, "enforce_eager": True},
                 {"name": "other", "image": "vllm/vllm-openai:v0.15.1", "model": "Qwen/Qwen3-8B",
                  "nodes": ["some-other-node"]}]
    run = ansible_playbook("preflight.yml", extra_vars={"preflight_workloads": workloads}, check=False)
    assert run.returncode != 0
    assert "forward_compat_unsupported" in run.stdout and "fix: use image vllm/vllm-openai:" in run.stdout
    assert "Preflight failed for ml-new" in run.stdout + run.stderr
    assert "other " not in run.stdout  # assigned to another node only
    report = ansible_playbook("preflight.yml",
                              extra_vars={"preflight_workloads": workloads, "preflight_fail_on": "never"})
    assert "fail    12.9.1/12.8" in report.stdout


# --- registry lookup (offline: false) -----------------------------------------------------------------

def lookup(**extra):
    return dict({"insecure": True, "timeout": 5}, **extra)


@pytest.mark.registry
def test_registry_config_overrides_the_data(oci_registry):
    # Two tags whose CUDA the collection's data knows (v0.9.2: 12.8.1, v0.11.1: 12.9.1), pushed with the
    # other CUDA base: the image's own CUDA_VERSION and NVIDIA_REQUIRE_CUDA must win over the data.
    oci_registry.push_image("vllm/vllm-openai", "v0.9.2", env=cuda_image_env("12.9.1"))
    oci_registry.push_image("vllm/vllm-openai", "v0.11.1", env=cuda_image_env("12.8.1"))
    newer = "%s/vllm/vllm-openai:v0.9.2" % oci_registry.address
    offline = compat.check(newer, HOMELAB, QWEN_AWQ)
    assert offline["image_cuda"] == "12.8.1" and offline["verdict"] == "ok"  # what the data says
    online = compat.check(newer, HOMELAB, QWEN_AWQ, offline=False, registry=lookup())
    info = online["image"]
    assert info["source"] == "registry" and info["confidence"] == "confirmed"
    assert online["image_cuda"] == "12.9.1" and info["digest"].startswith("sha256:")
    assert info["nvidia_require_cuda"].startswith("cuda>=12.9 ")
    # the branches come from the image's own NVIDIA_REQUIRE_CUDA, which lists R570 (the data's 12.8 list does not)
    assert info["forward_compat_branches"] == [535, 550, 560, 565, 570]
    assert [r["code"] for r in online["reasons"] if r["severity"] == "fail"] == ["forward_compat_unsupported"]

    older = "%s/vllm/vllm-openai:v0.11.1" % oci_registry.address
    assert compat.check(older, HOMELAB, QWEN_AWQ)["verdict"] == "fail"  # the data: CUDA 12.9.1 on a 12.8 driver
    relabelled = compat.check(older, HOMELAB, QWEN_AWQ, offline=False, registry=lookup())
    assert relabelled["image_cuda"] == "12.8.1" and relabelled["image"]["source"] == "registry"
    assert relabelled["verdict"] == "ok", relabelled["reasons"]


@pytest.mark.registry
def test_registry_knows_images_the_data_does_not(oci_registry):
    env = {"CUDA_VERSION": "12.6.3", "NVIDIA_REQUIRE_CUDA": "cuda>=12.6 brand=tesla,driver>=535,driver<536"}
    oci_registry.push_image("acme/asr-server", "1.0", env=env)
    image = "%s/acme/asr-server:1.0" % oci_registry.address
    offline = compat.check(image, H100_535, {"name": "Qwen/Qwen3-ASR-1.7B", "max_model_len": 4096})
    assert "unknown_image" in [r["code"] for r in offline["reasons"]] and offline["image_cuda"] is None
    online = compat.check(image, H100_535, {"name": "Qwen/Qwen3-ASR-1.7B", "max_model_len": 4096},
                          offline=False, registry=lookup())
    assert online["image_cuda"] == "12.6.3"
    (reason,) = [r for r in online["reasons"] if r["code"] == "driver_too_old"]
    # a tesla-brand card on R535 is covered by the image's own list; the H100 reports brand "nvidia"
    assert reason["severity"] == "fail" and "R535" in reason["message"]


@pytest.mark.registry
def test_registry_mirror_and_cache(oci_registry, tmp_path):
    opts = lookup(registry_mirrors={"docker.io": "http://%s" % oci_registry.address}, cache_dir=str(tmp_path))
    first = compat.resolve_image("vllm/vllm-openai:v0.12.0", offline=False, registry=opts)[0]
    second = compat.resolve_image("vllm/vllm-openai:v0.12.0", offline=False, registry=opts)[0]
    assert first["source"] == second["source"] == "registry"
    assert first["cached"] is False and second["cached"] is True and first["cuda"] == second["cuda"]


def test_unreachable_registry_falls_back_to_the_data_with_a_warning():
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    image = "127.0.0.1:%d/vllm/vllm-openai:v0.8.5.post1" % port
    result = compat.check(image, HOMELAB, QWEN_AWQ, offline=False, registry={"insecure": True, "timeout": 2})
    assert result["verdict"] == "warn" and result["image"]["source"] == "data"
    (reason,) = [r for r in result["reasons"] if r["code"] == "unknown_image"]
    assert reason["severity"] == "warn" and "registry lookup" in reason["message"] and "12.4.1" in reason["message"]


@pytest.mark.registry
def test_registry_lookup_through_ansible(oci_registry):
    result = ansible_module("baremetal.gpu.vllm_compat", {
        "image": "%s/vllm/vllm-openai:v0.8.5.post1" % oci_registry.address, "node": H100_535,
        "model": {"name": "Qwen/Qwen3-8B", "max_model_len": 8192}, "offline": False,
        "registry": {"insecure": True, "timeout": 5}, "fail_on": "never"})
    assert result["image"]["source"] == "registry", json.dumps(result["reasons"])
    assert result["image_cuda"] == result["image"]["cuda"]


@pytest.mark.registry
def test_token_auth_anonymous_and_with_credentials(oci_registry_auth):
    public = "%s/vllm/vllm-openai:v0.15.1" % oci_registry_auth.address
    anonymous = compat.check(public, HOMELAB, QWEN_AWQ, offline=False, registry={"insecure": True, "timeout": 5})
    assert anonymous["image"]["source"] == "registry"
    private = "%s/private/vllm-openai:v0.15.1" % oci_registry_auth.address
    denied = compat.check(private, HOMELAB, QWEN_AWQ, offline=False, registry={"insecure": True, "timeout": 5})
    assert denied["image"]["source"] == "data" and denied["verdict"] == "warn"
    assert "registry lookup" in [r for r in denied["reasons"] if r["code"] == "unknown_image"][0]["message"]
    allowed = compat.check(private, HOMELAB, QWEN_AWQ, offline=False, registry={
        "insecure": True, "timeout": 5, "username": oci_registry_auth.username, "password": oci_registry_auth.password})
    assert allowed["image"]["source"] == "registry" and allowed["image_cuda"] == anonymous["image_cuda"]
    assert allowed["verdict"] == "fail"  # a CUDA 12.9 image on the RTX 3060's 570 driver


# --- hot standby ---------------------------------------------------------------------------------------

def test_the_module_judges_an_awake_share_beside_a_sleeper():
    r1 = {"name": "casperhansen/deepseek-r1-distill-qwen-7b-awq", "quantization": "awq_marlin", "weights_gib": 5.2,
          "max_model_len": 4096, "gpu_memory_utilization": 0.85}
    node = dict(HOMELAB, gpus=[dict(HOMELAB["gpus"][0], memory_used_mib=250)])
    result = ansible_module("baremetal.gpu.vllm_compat", {
        "image": "vllm/vllm-openai:v0.8.5.post1", "node": node, "fail_on": "never",
        "model": dict(QWEN_AWQ, max_model_len=4096, sleep_mode=True), "standby": [
            {"name": "r1", "image": "vllm/vllm-openai:v0.8.5.post1", "model": r1}]})
    # 0.90 x 12288 = 11059 MiB wanted; 12288 - 250 in use - 1229 kept by r1 asleep = 10809 free
    reason = [r for r in result["reasons"] if r["code"] == "gpu_memory_oversubscribed"][0]
    assert "r1 (asleep, 1229 MiB)" in reason["message"] and result["standby"][0]["residue_mib"] == 1229


def test_preflight_judges_each_workload_beside_what_its_modes_keep_asleep():
    gpu = {"name": "NVIDIA GeForce RTX 3060", "compute_capability": "8.6", "memory_total_mib": 12288,
           "memory_used_mib": 250}
    facts = {"driver_version": "570.195.03", "gpus": [gpu]}
    local = {"ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}",
             "preflight_node_facts": facts}
    inventory = pathlib.Path(__file__).resolve().parents[2] / "inventories" / "examples" / "homelab-standby"
    run = ansible_playbook("preflight.yml", inventory=str(inventory), extra_vars=local)
    assert "k3s-gpu-worker ml         vllm/vllm-openai:v0.8.5.post1            ok" in run.stdout
    assert "k3s-gpu-worker r1         vllm/vllm-openai:v0.8.5.post1            ok" in run.stdout
    # the same inventory with ml at 0.90: awake beside r1 asleep, it no longer fits the 12 GiB GPU
    catalog = yaml.safe_load((inventory / "group_vars" / "all.yml").read_text())["vllm_catalog"]
    catalog[0]["gpu_memory_utilization"] = 0.9
    run = ansible_playbook("preflight.yml", inventory=str(inventory), check=False,
                           extra_vars=dict(local, vllm_catalog=catalog))
    assert run.returncode != 0
    assert "k3s-gpu-worker ml         vllm/vllm-openai:v0.8.5.post1            fail" in run.stdout
    assert "fix: gpu_memory_utilization: 0.87 (or lower the others" in run.stdout
