"""The model catalog of the vllm role: validation, GPU modes, generated args, probe budgets, and what
it hands to the compatibility check (plugins/module_utils/catalog.py)."""

import copy
import pathlib

import pytest
import yaml

from ansible_collections.baremetal.gpu.plugins.module_utils import catalog, compat

ROOT = pathlib.Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles" / "vllm"
HOMELAB = ROOT / "inventories" / "homelab" / "group_vars" / "all.yml"
RTX_3060_NODE = {"driver_version": "570.195.03", "gpus": [{"name": "NVIDIA GeForce RTX 3060", "memory_total_mib": 12288}]}
T4_NODE = {"driver_version": "570.195.03", "gpus": [{"name": "Tesla T4", "memory_total_mib": 15360}]}


def load(path):
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="module")
def entry_spec():
    return load(ROLE / "meta" / "argument_specs.yml")["argument_specs"]["main"]["options"]["vllm_catalog"]["options"]


@pytest.fixture(scope="module")
def homelab():
    return load(HOMELAB)


def settings(**overrides):
    out = dict(catalog.DEFAULT_SETTINGS)
    out.update(overrides)
    return out


def entry(name, **keys):
    keys.setdefault("model", "Qwen/Qwen3-0.6B")
    return dict(name=name, **keys)


def problems_text(entries, **overrides):
    with pytest.raises(catalog.CatalogError) as err:
        catalog.plan(entries, settings(**overrides))
    return str(err.value)


# --- the role's variables agree with each other --------------------------------------------------

def test_settings_defaults_vars_and_argument_spec_agree():
    defaults = load(ROLE / "defaults" / "main.yml")
    mapping = load(ROLE / "vars" / "main.yml")["vllm_settings"]
    knobs = load(ROLE / "meta" / "argument_specs.yml")["argument_specs"]["main"]["options"]
    assert sorted(mapping) == sorted(catalog.DEFAULT_SETTINGS)
    for key, value in catalog.DEFAULT_SETTINGS.items():
        assert mapping[key] == "{{ vllm_%s }}" % key
        assert defaults["vllm_" + key] == value, key
    # every knob of defaults/main.yml is documented in the argument spec with the same default
    for name, value in defaults.items():
        assert name in knobs, "%s is not in meta/argument_specs.yml" % name
        assert knobs[name].get("default") == value, name
    assert sorted(knobs) == sorted(defaults)
    assert knobs["vllm_hf_token"]["no_log"] is True


# --- argument spec: a typo names the key -----------------------------------------------------------

@pytest.mark.parametrize("bad, named", [
    ({"imagee": "vllm/vllm-openai:v0.8.5.post1"}, "imagee"),
    ({"health": {"kind": "json", "feild": "ready"}}, "feild"),
    ({"service": {"name": "x", "prot": 8000}}, "prot"),
    ({"gpus": "two"}, "gpus"),
    ({"dtype": "bf15"}, "dtype"),
])
def test_argument_spec_names_the_mistyped_key(entry_spec, bad, named):
    errors = catalog.spec_errors([entry("ml", **bad)], entry_spec)
    assert errors, bad
    assert any(named in message for message in errors), errors


def test_argument_spec_accepts_every_field_notes_deployment(entry_spec):
    inventories = [HOMELAB] + sorted((ROOT / "inventories" / "examples").glob("*/group_vars/all.yml"))
    assert len(inventories) == 4
    for path in inventories:
        assert catalog.spec_errors(load(path)["vllm_catalog"], entry_spec) == [], path


# --- what an argument spec cannot say --------------------------------------------------------------

def test_every_problem_is_listed_at_once_naming_entry_and_key():
    text = problems_text([
        entry("Bad_Name"),
        entry("a", args=["--max-model-len", "4096"]),
        entry("b", tensor_parallel_size=2, gpus=1),
        entry("c", health={"kind": "json"}),
        entry("d", gpu_memory_utilization=1.5),
        entry("e", memory="16 GB"),
        entry("f", server="custom"),
    ])
    assert "entry Bad_Name: name must be a DNS label" in text
    assert "entry a: args must not contain --max-model-len: set the key max_model_len" in text
    assert "entry b: tensor_parallel_size 2 needs at least that many gpus" in text
    assert "entry c: health kind json needs health.field" in text
    assert "entry d: gpu_memory_utilization must be in (0, 1]" in text
    assert "entry e: memory '16 GB' is not a Kubernetes quantity" in text
    assert "entry f: server custom needs command or args" in text


def test_duplicate_names_and_missing_fallbacks_fail():
    text = problems_text([entry("a", fallback="small"), entry("a")])
    assert "entry a: name is used by more than one entry" in text
    assert "entry a: fallback small is not a catalog entry (known: a, a)" in text
    assert "fallback names the entry itself" in problems_text([entry("a", fallback="a")])


def test_a_shared_service_must_never_route_to_two_running_workloads():
    both_always = [entry("a", service={"name": "api"}), entry("b", service={"name": "api"})]
    assert "Service api would route to a and b at the same time (always on)" in problems_text(both_always)
    same_mode = [entry("a", modes=["x"], service={"name": "api"}), entry("b", modes=["x", "y"], service={"name": "api"})]
    assert "Service api would route to a and b at the same time (mode x)" in problems_text(same_mode)
    other_port = [entry("a", modes=["x"], service={"name": "api", "port": 8000}),
                  entry("b", modes=["y"], service={"name": "api", "port": 9000})]
    assert "Service api: entries a and b disagree on its port or type" in problems_text(other_port)
    fine = [entry("a", modes=["x"], service={"name": "api"}), entry("b", modes=["y"], service={"name": "api"})]
    the_plan = catalog.plan(fine, settings(active_mode="x"))
    assert [s["name"] for s in the_plan["services"]] == ["api"]
    assert the_plan["services"][0]["workloads"] == ["a", "b"]


def test_unknown_active_mode_fails_naming_the_known_ones(homelab):
    text = problems_text(homelab["vllm_catalog"], active_mode="r2")
    assert "vllm_active_mode r2 is not a mode of the catalog (known: ml, r1, off)" in text


def test_claims_shared_by_entries_must_agree():
    text = problems_text([entry("a", cache={"type": "pvc", "claim": "models", "size": "10Gi"}),
                          entry("b", cache={"type": "pvc", "claim": "models", "size": "20Gi"})])
    assert "PersistentVolumeClaim models: entries a and b disagree" in text


# --- GPU modes -------------------------------------------------------------------------------------

@pytest.mark.parametrize("mode, replicas", [
    ("ml", {"vllm-ml": 1, "vllm-r1": 0}),
    ("r1", {"vllm-ml": 0, "vllm-r1": 1}),
    ("off", {"vllm-ml": 0, "vllm-r1": 0}),
    ("", {"vllm-ml": 0, "vllm-r1": 0}),
])
def test_the_active_mode_decides_which_entry_owns_the_gpu(homelab, mode, replicas):
    the_plan = catalog.plan(homelab["vllm_catalog"], settings(active_mode=mode))
    assert {w["full_name"]: w["replicas"] for w in the_plan["workloads"]} == replicas
    assert the_plan["modes"] == {"ml": ["ml"], "r1": ["r1"], "off": []}


def test_entries_without_modes_always_run_and_empty_modes_never():
    the_plan = catalog.plan([entry("always", service={"name": "a"}), entry("never", modes=[], service={"name": "n"}),
                             entry("two", replicas=2, modes=["x"])], settings(active_mode="x"))
    assert [(w["name"], w["replicas"]) for w in the_plan["workloads"]] == [("always", 1), ("never", 0), ("two", 2)]
    assert [w["name"] for w in catalog.plan([entry("off", enabled=False), entry("on")], settings())["workloads"]] == ["on"]


# --- generated values ------------------------------------------------------------------------------

def test_home_lab_entries_carry_the_field_notes_image_and_args(homelab):
    the_plan = catalog.plan(homelab["vllm_catalog"], catalog.settings_from_vars(homelab))
    ml, r1 = the_plan["workloads"]
    assert ml["image"] == r1["image"] == "vllm/vllm-openai:v0.8.5.post1"

    def pairs(args):
        return {args[i]: args[i + 1] for i in range(len(args) - 1) if args[i].startswith("--")}

    # field notes 1: --enforce-eager --quantization awq_marlin --gpu-memory-utilization 0.90 --max-model-len 8192
    assert "--enforce-eager" in ml["args"]
    assert pairs(ml["args"])["--quantization"] == "awq_marlin"
    assert float(pairs(ml["args"])["--gpu-memory-utilization"]) == 0.90
    assert pairs(ml["args"])["--max-model-len"] == "8192"
    assert pairs(ml["args"])["--model"] == "Qwen/Qwen3-8B-AWQ"
    assert pairs(ml["args"])["--served-model-name"] == "vllm-qwen"
    assert pairs(r1["args"])["--model"] == "casperhansen/deepseek-r1-distill-qwen-7b-awq"
    assert pairs(r1["args"])["--tokenizer"] == "deepseek-ai/DeepSeek-R1-Distill-Qwen-7B"
    assert ml["service"] == r1["service"] == "vllm-api" and ml["service_port"] == 8000
    assert ml["labels"]["app.kubernetes.io/name"] == "vllm"
    assert ml["labels"]["app.kubernetes.io/part-of"] == "home-lab"
    assert ml["cache"] == {"type": "hostPath", "path": "/var/lib/vllm/huggingface",
                           "mount_path": "/root/.cache/huggingface"}


def test_a_custom_server_runs_its_command_and_args_verbatim():
    w = catalog.plan([entry("tts", server="custom", command=["python3", "-m", "tts"], args=["--port", "8880"],
                            port=8880, health={"kind": "json", "field": "ready"})], settings())["workloads"][0]
    assert w["command"] == ["python3", "-m", "tts"] and w["args"] == ["--port", "8880"]
    assert w["served_model_names"] == [] and w["health"]["models"] is False
    assert w["container"] == "server"


def test_model_flag_empty_leaves_the_model_to_the_command():
    w = catalog.plan([entry("asr", command=["qwen-asr-serve", "/models/asr"], model_flag="", model="/models/asr",
                            model_id="Qwen/Qwen3-ASR-1.7B", gpu_memory_utilization=0.45)], settings())["workloads"][0]
    assert "--model" not in w["args"] and w["args"][:2] == ["--served-model-name", "asr"]
    assert w["args"][-2:] == ["--gpu-memory-utilization", "0.45"]
    assert w["compat"]["name"] == "Qwen/Qwen3-ASR-1.7B"


@pytest.mark.parametrize("keys, budget, threshold", [
    ({"load_seconds": 70}, 210, 42),          # home lab ml: 3 x its ~69 s first start
    ({"load_seconds": 10}, 120, 24),          # never below the minimum
    ({"load_seconds": 90, "startup_budget_seconds": 300}, 300, 60),
])
def test_startup_probe_budget_comes_from_the_expected_load_time(keys, budget, threshold):
    w = catalog.plan([entry("m", **keys)], settings())["workloads"][0]
    assert w["probes"]["startup"]["budget"] == budget
    assert w["probes"]["startup"]["failure_threshold"] * w["probes"]["startup"]["period"] >= budget
    assert w["probes"]["startup"]["failure_threshold"] == threshold


def test_download_turns_the_server_offline_and_needs_a_model_id_for_local_paths():
    w = catalog.plan([entry("m", download=True)], settings())["workloads"][0]
    assert {"name": "HF_HUB_OFFLINE", "value": "1"} in w["env"]
    assert w["download_args"] == ["--repo", "Qwen/Qwen3-0.6B", "--cache-dir", "/root/.cache/huggingface"]
    assert "download of the local path /models/x needs model_id" in problems_text(
        [entry("m", download=True, model="/models/x")])
    assert "download needs a cache" in problems_text([entry("m", download=True, cache={"type": "none"})])


def test_format_number_writes_what_a_person_types():
    assert [catalog.format_number(v) for v in (0.9, 0.85, 8192, 0.45, 1.0)] == ["0.9", "0.85", "8192", "0.45", "1"]


# --- the compatibility check reads catalog entries -----------------------------------------------

def test_each_home_lab_entry_feeds_vllm_compat_and_fits_the_rtx_3060(homelab):
    the_plan = catalog.plan(homelab["vllm_catalog"], catalog.settings_from_vars(homelab))
    for w in the_plan["workloads"]:
        assert set(w["compat"]) >= {"name", "quantization", "max_model_len", "gpu_memory_utilization", "params_b",
                                    "weights_gib", "num_layers", "num_kv_heads", "head_dim", "enforce_eager"}
        result = compat.check(w["image"], RTX_3060_NODE, w["compat"])
        assert result["verdict"] == "ok", (w["name"], result["reasons"])


def test_the_t4_entries_use_float16_which_the_t4_needs():
    t4 = load(ROOT / "inventories" / "examples" / "t4-timesliced" / "group_vars" / "all.yml")
    for w in catalog.plan(t4["vllm_catalog"], catalog.settings_from_vars(t4))["workloads"]:
        codes = {r["code"]: r["severity"] for r in compat.check(w["image"], T4_NODE, w["compat"])["reasons"]}
        assert codes.get("dtype_unsupported") is None, w["name"]
        bf16 = dict(w["compat"], dtype="bfloat16")
        codes = {r["code"]: r["severity"] for r in compat.check(w["image"], T4_NODE, bf16)["reasons"]}
        assert codes["dtype_unsupported"] == "fail", w["name"]


def test_plan_does_not_modify_the_catalog(homelab):
    before = copy.deepcopy(homelab["vllm_catalog"])
    catalog.plan(homelab["vllm_catalog"], catalog.settings_from_vars(homelab))
    assert homelab["vllm_catalog"] == before
