"""plugins/module_utils/site.py: which workloads the preflight checks on which node, the endpoints that
serve after a run, and the summary's lines. Expected values are written out here."""

import pytest

from ansible_collections.baremetal.gpu.plugins.module_utils import site

CATALOG = [
    {"name": "ml", "model": "Qwen/Qwen3-8B-AWQ"},
    {"name": "r1", "model": "casperhansen/deepseek-r1-distill-qwen-7b-awq"},
    {"name": "asr", "model": "Qwen/Qwen3-ASR-1.7B"},
    {"name": "old", "model": "Qwen/Qwen3-8B", "enabled": False},
    {"name": "pinned", "model": "Qwen/Qwen3-4B-AWQ", "nodes": ["b"]},
]
HOSTVARS = {
    "a": {"gpu_modes": {"ml": {"workloads": ["ml"], "default": True}, "r1": {"workloads": {"r1": 1}}}},
    "b": {"gpu_modes": {"speech": {"workloads": ["asr"]}}, "gpu_node_name": "node-b"},
    "c": {},
}


def names(entries):
    return [e["name"] for e in entries]


def test_a_node_checks_its_own_mode_bound_entries_and_the_unbound_ones():
    assert names(site.node_workloads(CATALOG, "a", ["a", "b", "c"], HOSTVARS)) == ["ml", "r1"]
    assert names(site.node_workloads(CATALOG, "b", ["a", "b", "c"], HOSTVARS)) == ["asr", "pinned"]
    assert names(site.node_workloads(CATALOG, "c", ["a", "b", "c"], HOSTVARS)) == []


def test_unbound_entries_run_everywhere_and_a_mapping_catalog_is_read():
    catalog = {"x": {"model": "Qwen/Qwen3-8B"}, "y": {"model": "Qwen/Qwen3-4B", "enabled": False}}
    assert names(site.node_workloads(catalog, "c", ["c"], {"c": {}})) == ["x"]


def test_a_bad_catalog_is_refused_naming_it():
    with pytest.raises(site.SiteError, match="workload 1 is not a mapping"):
        site.node_workloads([{"name": "a"}, "b"], "a", [], {})


def test_stage_times_run_from_one_start_to_the_next():
    clock = {"preflight": 100.0, "driver": 110.5, "vllm": 130.0}
    assert site.stage_times(clock, 131.0) == [("preflight", 10.5), ("NVIDIA driver", 19.5), ("vllm", 1.0)]


def test_gpu_node_names_and_active_modes():
    hostvars = {"a": {"site_gpu_ready": True, "gpu_mode_switch": {"outcome": "unchanged", "to": "r1"}},
                "b": {"site_gpu_ready": False, "gpu_node_name": "node-b",
                      "gpu_mode_switch": {"outcome": "rolled back", "to": "ml"}}}
    assert site.gpu_node_names(["a", "b"], hostvars) == ["a"]
    assert site.active_modes(["a", "b"], hostvars) == {"a": "r1"}


PLAN = {
    "gpu_nodes": [{"node": "a", "modes": {"ml": {"workloads": {"vllm-ml": 1}}, "r1": {"workloads": {"vllm-r1": 1}},
                                          "off": {"workloads": {}}}}],
    "services": [{"name": "vllm-api", "ingress": {"host": "vllm.example"}}, {"name": "vllm-asr", "ingress": None}],
    "workloads": [
        {"name": "ml", "full_name": "vllm-ml", "namespace": "ml", "service": "vllm-api", "service_port": 8000,
         "served_model_names": ["Qwen/Qwen3-8B-AWQ", "vllm-qwen"], "replicas": None, "health": {"kind": "vllm"}},
        {"name": "r1", "full_name": "vllm-r1", "namespace": "ml", "service": "vllm-api", "service_port": 8000,
         "served_model_names": ["r1"], "replicas": None, "health": {"kind": "vllm"}},
        {"name": "asr", "full_name": "vllm-asr", "namespace": "ml", "service": "vllm-asr", "service_port": 8005,
         "served_model_names": [], "replicas": 1, "health": {"kind": "vllm"}},
        {"name": "spare", "full_name": "vllm-spare", "namespace": "ml", "service": "vllm-spare", "service_port": 8006,
         "served_model_names": [], "replicas": 0, "health": {"kind": "vllm"}},
    ],
}


def test_the_endpoints_serving_are_the_active_mode_and_the_always_on_ones():
    served = site.serving_endpoints(PLAN, {"a": "r1"})
    assert [(e["name"], e["service"], e["port"], e["ingress_hosts"]) for e in served] == [
        ("r1", "vllm-api", 8000, ["vllm.example"]), ("asr", "vllm-asr", 8005, [])]
    assert [e["name"] for e in site.serving_endpoints(PLAN, {"a": "off"})] == ["asr"]
    assert [e["name"] for e in site.serving_endpoints(PLAN, {})] == ["asr"]


def test_the_summary_says_node_driver_gpus_k3s_mode_skips_endpoints_and_times():
    node = site.node_report("a", {
        "preflight_facts": {"driver_version": "570.195.03",
                            "gpus": [{"name": "NVIDIA GeForce RTX 3060", "memory_total_mib": 12288}]},
        "k3s_gpu_worker_node": {"version": "v1.32.5+k3s1", "role": "agent"},
        "gpu_modes": {"ml": {}, "r1": {}},
        "gpu_mode_switch": {"from": None, "to": "ml", "outcome": "switched"},
        "site_skip": {"container_toolkit": "not here"}})
    lines = site.summary_lines([node], site.serving_endpoints(PLAN, {"a": "ml"}), {"preflight": 0.0, "vllm": 5.0},
                               125.0, simulated="a test")
    assert lines == [
        "SIMULATED: a test",
        "node a (inventory host a)",
        "  driver:  570.195.03 (branch 570)",
        "  GPUs:    1x NVIDIA GeForce RTX 3060 12288 MiB",
        "  k3s:     v1.32.5+k3s1 agent",
        "  modes:   ml, off, r1",
        "  active:  ml (activated: none -> ml)",
        "  skipped: container_toolkit: not here",
        "endpoint ml: ml/vllm-api:8000 (Qwen/Qwen3-8B-AWQ, vllm-qwen); ingress http://vllm.example/",
        "endpoint asr: ml/vllm-asr:8005",
        "time: preflight 5.0 s, vllm 2 min 00 s; total 2 min 05 s",
    ]


def test_a_node_without_driver_or_modes_says_so():
    node = site.node_report("c", {"preflight_facts": {"reason": "no NVIDIA driver", "gpus": []}})
    lines = site.summary_lines([node], [], {}, 0.0)
    assert "  driver:  not loaded (no NVIDIA driver)" in lines
    assert "  GPUs:    none seen (no NVIDIA driver)" in lines
    assert "  active:  -" in lines and "  k3s:     -" in lines
