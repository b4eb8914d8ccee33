"""Sleep-mode (hot standby) entries of the vllm role's catalog: the flags and environment vLLM needs, the
engine port behind an API gate, the pod memory a level-1 sleep needs (checked, with the numbers), the
standby of GPU modes, and what the switcher reads from the Deployment's annotations. Settings come from the
role's defaults file, as the role passes them; expected figures are written out."""

import pathlib

import pytest
import yaml

from ansible_collections.baremetal.gpu.plugins.module_utils import catalog

ROOT = pathlib.Path(__file__).resolve().parents[2]
DEFAULTS = yaml.safe_load((ROOT / "roles" / "vllm" / "defaults" / "main.yml").read_text())
QWEN = {"name": "ml", "model": "Qwen/Qwen3-8B-AWQ", "quantization": "awq_marlin", "max_model_len": 4096,
        "gpu_memory_utilization": 0.85, "enforce_eager": True, "sleep_mode": True}
R1 = {"name": "r1", "model": "casperhansen/deepseek-r1-distill-qwen-7b-awq", "quantization": "awq_marlin",
      "weights_gib": 5.2, "max_model_len": 4096, "gpu_memory_utilization": 0.85, "sleep_mode": True}


def settings(**overrides):
    out = catalog.settings_from_vars(DEFAULTS)
    out["gpu_nodes"] = []
    out.update(overrides)
    return out


def problems_text(entries, **overrides):
    with pytest.raises(catalog.CatalogError) as err:
        catalog.plan(entries, settings(**overrides))
    return str(err.value)


def standby_nodes():
    return [{"name": "worker", "modes": {
        "ml": {"description": "Qwen3", "default": True, "workloads": ["ml"], "standby": ["r1"]},
        "r1": {"description": "R1", "workloads": ["r1"], "standby": ["ml"]}}}]


def test_a_sleep_mode_entry_runs_vllm_on_its_engine_port_behind_the_api_gate():
    w = catalog.plan([dict(QWEN)], settings())["workloads"][0]
    args = w["container"]["args"]
    assert args[args.index("--port") + 1] == "8001" and "--enable-sleep-mode" in args
    assert {"name": "VLLM_SERVER_DEV_MODE", "value": "1"} in w["env"]
    assert (w["container"]["port_name"], w["container"]["port"]) == ("engine", 8001)
    assert w["port"] == 8000 and w["service_port"] == 8000
    assert w["gate"]["command"] == ["python3", "/opt/baremetal-gpu-gate/api_gate.py", "--listen-port", "8000",
                                    "--upstream-port", "8001"]
    assert w["gate"]["image"] == "vllm/vllm-openai:v0.8.5.post1"  # the vLLM image's own python3: nothing to pull
    # the kubelet probes vLLM itself on the engine port; the gate's readiness goes through the gate
    assert w["probes"]["startup"]["httpGet"] == {"path": "/health", "port": "engine"}
    assert w["probes"]["liveness"]["httpGet"]["port"] == "engine"
    assert w["gate"]["readiness"]["httpGet"] == {"path": "/health", "port": "http"}
    assert w["annotations"]["baremetal.gpu/sleep-level"] == "1"
    assert w["annotations"]["baremetal.gpu/engine-port"] == "8001"
    # v0.8.5.post1 keeps about 1.2 GiB per GPU asleep (compat_data.VLLM_SLEEP_RESIDUE)
    assert w["annotations"]["baremetal.gpu/sleep-residue-mib"] == "1229"


def test_an_entry_without_sleep_mode_is_rendered_as_before():
    w = catalog.plan([dict(QWEN, sleep_mode=False)], settings())["workloads"][0]
    args = w["container"]["args"]
    assert args[args.index("--port") + 1] == "8000" and "--enable-sleep-mode" not in args
    assert w["gate"] is None and w["sleep"] is None
    assert not [e for e in w["env"] if e["name"] == "VLLM_SERVER_DEV_MODE"]
    the_plan = catalog.plan([dict(QWEN, sleep_mode=False)], settings())
    assert the_plan["gate_script"] == "" and the_plan["engine_policies"] == []


def test_the_engine_port_is_closed_to_the_cluster_by_a_network_policy():
    the_plan = catalog.plan([dict(QWEN)], settings(engine_allowed_cidrs=["10.0.0.10/32"]))
    (policy,) = the_plan["engine_policies"]
    assert policy["name"] == "vllm-ml-engine"
    assert policy["selector"] == {"app.kubernetes.io/name": "vllm", "app.kubernetes.io/instance": "vllm-ml"}
    assert policy["ingress"] == [{"ports": [{"port": 8000, "protocol": "TCP"}]},
                                 {"from": [{"ipBlock": {"cidr": "10.0.0.10/32"}}],
                                  "ports": [{"port": 8001, "protocol": "TCP"}]}]
    assert the_plan["gate_script"] == "vllm-api-gate"
    assert catalog.plan([dict(QWEN)], settings(engine_network_policy=False))["engine_policies"] == []


def test_a_level_1_pod_whose_memory_cannot_hold_the_weights_is_refused_with_the_numbers():
    text = problems_text([dict(QWEN, memory="8Gi")])
    # Qwen3-8B-AWQ: 5.7 GiB of weights (5837 MiB) + 4 GiB for the server = 9933 MiB > 8192
    assert ("vllm_catalog entry ml: sleep_level 1 copies the weights (5837 MiB) to pinned host RAM: memory 8Gi "
            "(8192 MiB) must hold them plus 4 GiB for the server, 9933 MiB: set memory: 10Gi, or sleep_level: 2") in text
    text = problems_text([dict(QWEN, memory="12Gi", memory_limit="9Gi")])
    assert "memory_limit 9Gi (9216 MiB) must hold them" in text and "memory 12Gi" not in text
    catalog.plan([dict(QWEN, memory="8Gi", sleep_level=2, image="vllm/vllm-openai:v0.10.2")], settings())


def test_level_1_needs_the_weights_size_and_level_2_a_release_that_can_reload():
    assert "give weights_gib (or params_b)" in problems_text([dict(QWEN, model="Org/Unknown-7B")])
    text = problems_text([dict(QWEN, sleep_level=2)])
    assert "sleep_level 2 drops the weights and vLLM 0.8.5.post1 cannot reload them (no /collective_rpc before " \
           "0.10.2)" in text
    assert "predates the sleep endpoints" in problems_text([dict(QWEN, image="vllm/vllm-openai:v0.8.4")])


@pytest.mark.parametrize("changes, message", [
    ({"engine_port": 8000}, "engine_port 8000 must differ from port"),
    ({"server": "custom"}, "sleep_mode is vLLM's (--enable-sleep-mode): it needs server: vllm"),
    ({"env": {"VLLM_SERVER_DEV_MODE": "0"}}, "env must not set VLLM_SERVER_DEV_MODE"),
    ({"args": ["--enable-sleep-mode"]}, "args must not contain --enable-sleep-mode: set the key sleep_mode"),
    ({"sleep_mode": False, "sleep_level": 2}, "sleep_level and sleep_residue_mib need sleep_mode: true"),
])
def test_bad_sleep_mode_entries_are_named(changes, message):
    assert message in problems_text([dict(QWEN, **changes)])


def test_modes_keep_sleep_mode_entries_in_standby_and_refuse_others():
    the_plan = catalog.plan([dict(QWEN), dict(R1)], settings(gpu_nodes=standby_nodes()))
    (book,) = the_plan["gpu_nodes"]
    assert book["modes"]["ml"] == {"description": "Qwen3", "workloads": {"vllm-ml": 1}, "standby": {"vllm-r1": 1}}
    assert book["modes"]["r1"]["standby"] == {"vllm-ml": 1}
    assert [w["replicas"] for w in the_plan["workloads"]] == [None, None]  # both mode-bound: the switcher's
    text = problems_text([dict(QWEN), dict(R1, sleep_mode=False)], gpu_nodes=standby_nodes())
    assert "vllm_catalog entry r1 is kept in standby (mode ml of node worker) but cannot sleep: set sleep_mode: true" \
        in text


def test_the_compatibility_annotation_carries_the_sleep_level_and_the_pods_memory():
    w = catalog.plan([dict(QWEN, memory="16Gi", memory_limit="20Gi")], settings())["workloads"][0]
    assert w["compat"]["sleep_mode"] is True and w["compat"]["sleep_level"] == 1
    assert w["compat"]["host_memory_mib"] == 20480  # the limit, when there is one
    assert w["compat"]["host_overhead_mib"] == 4096


def test_quantities_in_mib():
    assert catalog.quantity_mib("16Gi") == 16384
    assert catalog.quantity_mib("16G") == pytest.approx(15258.79, abs=0.01)
    assert catalog.quantity_mib("1073741824") == 1024
    assert catalog.quantity_mib("") is None


def test_the_sleepers_kept_beside_an_entry_while_it_is_awake():
    modes = standby_nodes()[0]["modes"]
    (r1,) = catalog.standby_beside("ml", modes, [dict(QWEN), dict(R1)], "vllm/vllm-openai:v0.8.5.post1")
    assert r1["name"] == "r1" and r1["image"] == "vllm/vllm-openai:v0.8.5.post1"
    assert r1["model"]["sleep_mode"] is True and r1["model"]["name"] == "casperhansen/deepseek-r1-distill-qwen-7b-awq"
    assert catalog.standby_beside("ml", {"ml": {"default": True, "workloads": ["ml"]}}, [dict(QWEN)], "x") == []
