"""The model catalog of the vllm role: validation, GPU modes, generated args, probe budgets, and what
it hands to the compatibility check (plugins/module_utils/catalog.py). Settings come from the role's
defaults file, the one place they live, as the role passes them."""

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


DEFAULTS = load(ROLE / "defaults" / "main.yml")


def settings(**overrides):
    """The role's knobs (defaults/main.yml) without the prefix, with overrides. ``gpu_nodes`` (its default
    reads the inventory's hosts) is empty unless given."""
    out = catalog.settings_from_vars(DEFAULTS)
    out["gpu_nodes"] = []
    out.update(overrides)
    return out


def node(name, **modes):
    """A GPU node with modes: ``node("w1", ml=["ml"], r1=["r1"])`` (the first mode is the default)."""
    gpu_modes = {}
    for index, (mode, workloads) in enumerate(modes.items()):
        gpu_modes[mode] = {"description": mode, "workloads": workloads, "default": index == 0}
    return {"name": name, "modes": gpu_modes}


def homelab_nodes(homelab):
    """The home lab's one GPU node with the inventory's modes."""
    return [{"name": "k3s-gpu-worker", "modes": homelab["gpu_modes"]}]


def inventory_settings(inventory):
    """Knobs as an inventory sets them over the role's defaults."""
    out = catalog.settings_from_vars(dict(DEFAULTS, **inventory))
    out["gpu_nodes"] = [{"name": "gpu-node", "modes": inventory["gpu_modes"]}] if "gpu_modes" in inventory else []
    return out


def entry(name, **keys):
    keys.setdefault("model", "Qwen/Qwen3-0.6B")
    return dict(name=name, **keys)


def problems_text(entries, **overrides):
    with pytest.raises(catalog.CatalogError) as err:
        catalog.plan(entries, settings(**overrides))
    return str(err.value)


# --- settings: the role's variables, nothing else --------------------------------------------------

def test_a_knob_the_caller_did_not_pass_is_named_not_defaulted():
    knobs = settings()
    del knobs["probe_period_seconds"]
    with pytest.raises(catalog.CatalogError) as err:
        catalog.plan([entry("m")], knobs)
    assert "role variable vllm_probe_period_seconds is not defined" in str(err.value)
    assert catalog.settings_from_vars({"vllm_namespace": "ml", "other": 1, "vllmx": 2}) == {"namespace": "ml"}


# --- argument spec: a typo names the key -----------------------------------------------------------

@pytest.mark.parametrize("bad, named", [
    ({"imagee": "vllm/vllm-openai:v0.8.5.post1"}, "imagee"),
    ({"health": {"kind": "json", "feild": "ready"}}, "feild"),
    ({"service": {"name": "x", "prot": 8000}}, "prot"),
    ({"gpus": "two"}, "gpus"),
    ({"liveness": {"periode_seconds": 60}}, "periode_seconds"),
    ({"pod_affinity": [{"labels": {"app": "x"}}]}, "labels"),
])
def test_argument_spec_names_the_mistyped_key(entry_spec, bad, named):
    errors = catalog.spec_errors([entry("ml", **bad)], entry_spec)
    assert errors, bad
    assert any(named in message for message in errors), errors


def test_argument_spec_accepts_every_reference_deployment(entry_spec):
    inventories = [HOMELAB] + sorted((ROOT / "inventories" / "examples").glob("*/group_vars/all.yml"))
    assert len(inventories) == 5  # the home lab, its hot-standby variant and the three other reference deployments
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
        entry("g", dtype="bf15"),
        entry("h", kv_cache_dtype="fp4"),
        entry("i", health={"kind": "vllm", "exec": "python3"}),
        entry("j", tokenizer="x", args=["--tokenizer", "y"]),
    ])
    assert "entry Bad_Name: name must be a DNS label" in text
    assert "entry a: args must not contain --max-model-len: set the key max_model_len" in text
    assert "entry b: tensor_parallel_size 2 needs at least that many gpus" in text
    assert "entry c: health kind json needs health.field" in text
    assert "entry d: gpu_memory_utilization must be in (0, 1]" in text
    assert "entry e: memory '16 GB' is not a Kubernetes quantity" in text
    # dtypes are the compatibility check's (compat.DTYPES and their aliases), listed in the message
    assert ("entry g: dtype 'bf15' is not one vLLM knows (auto, bfloat16, float16, float32, bf16, float, fp16, "
            "fp32, half)") in text
    assert "entry h: kv_cache_dtype 'fp4' is not one vLLM knows (auto, fp8, fp8_e4m3, fp8_e5m2)" in text
    assert "entry i: health.exec reads a JSON field in the probes: it needs health kind json" in text
    assert "entry j: args must not contain --tokenizer: set the key tokenizer instead" in text


def test_duplicate_names_and_missing_fallbacks_fail():
    text = problems_text([entry("a", fallback="small"), entry("a")])
    assert "entry a: name is used by more than one entry" in text
    assert "entry a: fallback small is not a catalog entry (known: a, a)" in text
    assert "fallback names the entry itself" in problems_text([entry("a", fallback="a")])


def test_a_shared_service_must_never_route_to_two_different_models_at_once():
    both_always = [entry("a", service={"name": "api"}), entry("b", service={"name": "api"})]
    assert ("Service api would route to a and b at the same time, which serve different models"
            in problems_text(both_always))
    same_mode = [entry("a", service={"name": "api"}), entry("b", service={"name": "api"})]
    assert "Service api would route to a and b at the same time" in problems_text(
        same_mode, gpu_nodes=[node("w1", x=["a", "b"])])
    other_nodes = [entry("a", service={"name": "api"}), entry("b", service={"name": "api"})]
    assert "Service api would route to a and b at the same time" in problems_text(
        other_nodes, gpu_nodes=[node("w1", x=["a"]), node("w2", x=["b"])])
    other_port = [entry("a", service={"name": "api", "port": 8000}), entry("b", service={"name": "api", "port": 9000})]
    assert "Service api: entries a and b disagree on its port, type or selector" in problems_text(
        other_port, gpu_nodes=[node("w1", x=["a"], y=["b"])])
    other_selector = [entry("a", service={"name": "api", "selector": {"app": "one"}}),
                      entry("b", service={"name": "api", "selector": {"app": "two"}})]
    assert "Service api: entries a and b disagree on its port, type or selector" in problems_text(
        other_selector, gpu_nodes=[node("w1", x=["a"], y=["b"])])
    fine = [entry("a", service={"name": "api"}), entry("b", service={"name": "api"})]
    the_plan = catalog.plan(fine, settings(gpu_nodes=[node("w1", x=["a"], y=["b"])]))
    assert [s["name"] for s in the_plan["services"]] == ["api"]
    assert the_plan["services"][0]["workloads"] == ["a", "b"]
    # replicas of one model on two nodes behind one Service: fine
    replicas = [entry("a", served_model_names=["m"], service={"name": "api"}),
                entry("b", served_model_names=["m"], service={"name": "api"})]
    catalog.plan(replicas, settings(gpu_nodes=[node("w1", x=["a"]), node("w2", x=["b"])]))


def test_bad_gpu_modes_fail_naming_the_node_and_the_mode():
    text = problems_text([entry("ml")], gpu_nodes=[node("w1", ml=["ml", "qwen"])])
    assert "gpu_modes of GPU node w1.ml: workload qwen is not a vllm_catalog entry (known: ml)" in text
    text = problems_text([entry("ml")], gpu_nodes=[node("w1", ml=["ml"]), node("w2", ml=["ml"])])
    assert ("vllm_catalog entry ml is in the modes of two GPU nodes (w1 and w2): a mode-bound entry runs on one "
            "node; give each node its own entry" in text)
    assert "vllm_gpu_nodes must be a list of {name, modes, selector}" in problems_text([entry("ml")], gpu_nodes="x")


def test_claims_shared_by_entries_must_agree():
    text = problems_text([entry("a", cache={"type": "pvc", "claim": "models", "size": "10Gi"}),
                          entry("b", cache={"type": "pvc", "claim": "models", "size": "20Gi"})])
    assert "PersistentVolumeClaim models: entries a and b disagree" in text


# --- GPU modes -------------------------------------------------------------------------------------

def test_mode_bound_entries_are_pinned_and_leave_replicas_to_the_switcher(homelab):
    the_plan = catalog.plan(homelab["vllm_catalog"], settings(gpu_nodes=homelab_nodes(homelab), node_selector={}))
    for w in the_plan["workloads"]:
        assert w["replicas"] is None
        assert w["node"] == "k3s-gpu-worker"
        assert w["node_selector"] == {"kubernetes.io/hostname": "k3s-gpu-worker"}
        assert w["annotations"]["baremetal.gpu/node"] == "k3s-gpu-worker"
        assert w["annotations"]["baremetal.gpu/replicas-manager"] == "baremetal-gpu-mode"
    (book,) = the_plan["gpu_nodes"]
    assert book["configmap"] == "gpu-mode-k3s-gpu-worker"
    assert book["default"] == "ml"
    assert book["modes"] == {
        "ml": {"description": "Qwen/Qwen3-8B-AWQ, also as vllm-qwen", "workloads": {"vllm-ml": 1}},
        "r1": {"description": "casperhansen/deepseek-r1-distill-qwen-7b-awq, also as vllm-r1",
               "workloads": {"vllm-r1": 1}},
        "off": {"description": "no model; the GPU is free for the machine's other GPU work", "workloads": {}}}


def test_a_node_selector_other_than_the_hostname_pins_mode_bound_entries():
    the_plan = catalog.plan([entry("asr"), entry("tts", service={"name": "tts"})], settings(gpu_nodes=[
        dict(node("t4-speech", speech=["asr", "tts"]), selector={"node-type": "gpu"})]))
    assert [w["node_selector"] for w in the_plan["workloads"]] == [{"node-type": "gpu"}] * 2
    assert the_plan["gpu_nodes"][0]["modes"]["speech"]["workloads"] == {"vllm-asr": 1, "vllm-tts": 1}


def test_entries_no_mode_names_always_run_with_their_replicas():
    the_plan = catalog.plan([entry("always", service={"name": "a"}), entry("two", replicas=2, service={"name": "t"}),
                             entry("bound")], settings(gpu_nodes=[node("w1", x=["bound"])]))
    assert [(w["name"], w["replicas"]) for w in the_plan["workloads"]] == [("always", 1), ("two", 2), ("bound", None)]
    assert [w["name"] for w in catalog.plan([entry("off", enabled=False), entry("on")], settings())["workloads"]] == ["on"]


# --- generated values ------------------------------------------------------------------------------

def pairs(args):
    return {args[i]: args[i + 1] for i in range(len(args) - 1) if args[i].startswith("--")}


def test_vllm_flags_come_from_the_keys_in_a_fixed_order():
    w = catalog.plan([entry("m", served_model_names=["Org/Model", "alias"], tokenizer="Org/Tok", dtype="half",
                            gpu_memory_utilization=0.9, max_model_len=4096, max_num_seqs=128, enforce_eager=True,
                            trust_remote_code=True, generation_config={"max_new_tokens": 4096},
                            args=["--seed", "1"])], settings())["workloads"][0]
    assert w["container"]["args"] == [
        "--model", "Qwen/Qwen3-0.6B", "--served-model-name", "Org/Model", "alias", "--host", "0.0.0.0",
        "--port", "8000", "--tokenizer", "Org/Tok", "--dtype", "half", "--gpu-memory-utilization", "0.9",
        "--max-model-len", "4096", "--max-num-seqs", "128", "--enforce-eager", "--trust-remote-code",
        "--override-generation-config", '{"max_new_tokens": 4096}', "--seed", "1"]
    assert w["container"]["name"] == "vllm" and w["container"]["command"] == []
    assert w["annotations"]["baremetal.gpu/served-model-names"] == "Org/Model,alias"


def test_a_custom_server_runs_its_command_and_args_verbatim():
    w = catalog.plan([entry("tts", server="custom", command=["python3", "-m", "tts"], args=["--port", "8880"],
                            port=8880, health={"kind": "json", "field": "ready"})], settings())["workloads"][0]
    assert w["container"] == {"name": "server", "command": ["python3", "-m", "tts"], "args": ["--port", "8880"],
                              "port_name": "http", "port": 8880,
                              "download_args": ["--repo", "Qwen/Qwen3-0.6B", "--cache-dir", "/root/.cache/huggingface"]}
    assert w["served_model_names"] == [] and w["health"]["models"] is False


def test_a_custom_server_may_keep_its_images_own_command_configured_by_env():
    w = catalog.plan([entry("tts", server="custom", container_name="tts", env={"TTS_BACKEND": "official", "N": 2},
                            port=8880)], settings())["workloads"][0]
    assert w["container"]["name"] == "tts"
    assert w["container"]["command"] == [] and w["container"]["args"] == []
    assert {"name": "TTS_BACKEND", "value": "official"} in w["env"] and {"name": "N", "value": "2"} in w["env"]


def test_model_flag_empty_leaves_the_model_to_the_command():
    w = catalog.plan([entry("asr", command=["qwen-asr-serve", "/models/asr"], model_flag="", model="/models/asr",
                            model_id="Qwen/Qwen3-ASR-1.7B", gpu_memory_utilization=0.45)], settings())["workloads"][0]
    args = w["container"]["args"]
    assert "--model" not in args and args[:2] == ["--served-model-name", "asr"]
    assert args[-2:] == ["--gpu-memory-utilization", "0.45"]
    assert w["compat"]["name"] == "Qwen/Qwen3-ASR-1.7B"


@pytest.mark.parametrize("keys, budget, threshold", [
    ({"load_seconds": 70}, 210, 210),         # home lab ml: 3 x its ~69 s first start, probed every second
    ({"load_seconds": 10}, 120, 120),         # never below the minimum
    ({"load_seconds": 90, "startup_budget_seconds": 300}, 300, 300),
    ({"load_seconds": 120, "probe_period_seconds": 5}, 360, 72),  # a longer period, the same budget
])
def test_startup_probe_budget_comes_from_the_expected_load_time(keys, budget, threshold):
    w = catalog.plan([entry("m", **keys)], settings())["workloads"][0]
    startup = w["probes"]["startup"]
    assert w["probes"]["budget"] == budget
    assert startup["failureThreshold"] == threshold
    assert startup["failureThreshold"] * startup["periodSeconds"] >= budget


def test_probes_default_to_a_one_second_period_on_health_and_a_lenient_liveness():
    probes = catalog.plan([entry("m")], settings())["workloads"][0]["probes"]
    get = {"httpGet": {"path": "/health", "port": "http"}}
    assert probes["readiness"] == dict(get, periodSeconds=1, timeoutSeconds=1, failureThreshold=3)
    # the default load of 120 s x 3, probed every second
    assert probes["startup"] == dict(get, periodSeconds=1, timeoutSeconds=1, failureThreshold=360)
    assert probes["liveness"] == dict(get, periodSeconds=30, timeoutSeconds=10, failureThreshold=5)


def test_liveness_per_entry_or_none():
    longer = catalog.plan([entry("m", liveness={"period_seconds": 60, "failure_threshold": 30})],
                          settings())["workloads"][0]["probes"]["liveness"]
    assert longer == {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 60, "timeoutSeconds": 10,
                      "failureThreshold": 30}
    assert catalog.plan([entry("m", liveness={"enabled": False})], settings())["workloads"][0]["probes"]["liveness"] is None


def test_json_readiness_reads_the_field_inside_the_container():
    w = catalog.plan([entry("tts", server="custom", port=8880, probe_period_seconds=5,
                            health={"kind": "json", "field": "status.ready", "value": True, "exec": "python3"})],
                     settings())["workloads"][0]
    command = w["probes"]["readiness"]["exec"]["command"]
    assert command[:2] == ["python3", "-c"]
    assert command[3:] == ["http://127.0.0.1:8880/health", "status.ready", "true", "5"]
    assert w["probes"]["startup"]["exec"] == w["probes"]["readiness"]["exec"]
    assert w["probes"]["liveness"]["httpGet"] == {"path": "/health", "port": "http"}  # answers at all


def test_json_probe_script_exits_zero_only_when_the_field_has_the_value(tmp_path):
    """The probe's script, run as the kubelet runs it (a separate Python), against a real HTTP server."""
    import http.server
    import subprocess
    import sys
    import threading

    bodies = {"/loading": b'{"status": "initializing", "ready": false}', "/up": b'{"status": "healthy", "ready": true}',
              "/nested": b'{"engine": {"ready": true}}', "/text": b"ok"}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the stdlib's name
            body = bodies.get(self.path)
            self.send_response(200 if body else 404)
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = "http://127.0.0.1:%d" % server.server_address[1]

    def probe(path, field, value):
        return subprocess.run([sys.executable, "-c", catalog.JSON_PROBE_SCRIPT, base + path, field, value, "2"],
                              capture_output=True, timeout=30, check=False).returncode

    try:
        assert probe("/up", "ready", "true") == 0
        assert probe("/up", "status", '"healthy"') == 0
        assert probe("/nested", "engine.ready", "true") == 0
        assert probe("/loading", "ready", "true") == 1        # answers 200, but not ready
        assert probe("/missing", "ready", "true") == 1        # 404
        assert probe("/text", "ready", "true") == 1           # not JSON
        assert probe("/up", "absent", "true") == 1            # no such field
    finally:
        server.shutdown()
    closed = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    port = closed.server_address[1]
    closed.server_close()
    assert subprocess.run([sys.executable, "-c", catalog.JSON_PROBE_SCRIPT, "http://127.0.0.1:%d/up" % port,
                           "ready", "true", "2"], capture_output=True, timeout=30, check=False).returncode == 1


def test_placement_runtime_class_and_pod_affinity():
    w = catalog.plan([entry("tts", runtime_class="", node_selector={"node-type": "gpu"},
                            node_affinity=[{"key": "memorysize", "values": ["16GB"]}],
                            pod_affinity=[{"match_labels": {"app": "asr"}},
                                          {"match_labels": {"tier": "speech"}, "required": False, "weight": 10,
                                           "topology_key": "topology.kubernetes.io/zone"}],
                            prepull=True)],
                     settings(node_selector={"pool": "gpu"}))["workloads"][0]
    assert w["runtime_class"] == ""  # the entry's empty string wins over vllm_runtime_class nvidia
    assert w["node_selector"] == {"pool": "gpu", "node-type": "gpu"}
    assert w["affinity"] == {
        "nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "memorysize", "operator": "In", "values": ["16GB"]}]}]}},
        "podAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": {"app": "asr"}}, "topologyKey": "kubernetes.io/hostname"}],
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 10, "podAffinityTerm": {"labelSelector": {"matchLabels": {"tier": "speech"}},
                                                   "topologyKey": "topology.kubernetes.io/zone"}}]}}
    # the pre-pull pods follow the node placement only, not the model server's pod affinity
    assert w["prepull"]["affinity"] == {"nodeAffinity": w["affinity"]["nodeAffinity"]}
    assert catalog.plan([entry("m")], settings())["workloads"][0]["runtime_class"] == "nvidia"


def test_a_custom_service_selector_labels_every_pod_behind_it():
    the_plan = catalog.plan([entry("ml", service={"name": "vllm-api", "selector": {"app": "vllm-server"}}),
                             entry("r1", service={"name": "vllm-api", "selector": {"app": "vllm-server"}})],
                            settings(gpu_nodes=[node("w1", ml=["ml"], r1=["r1"])]))
    (service,) = the_plan["services"]
    assert service["selector"] == {"app": "vllm-server"}
    assert all(w["pod_labels"]["app"] == "vllm-server" for w in the_plan["workloads"])
    # the Deployments still select their own pods only
    assert [w["selector"]["app.kubernetes.io/instance"] for w in the_plan["workloads"]] == ["vllm-ml", "vllm-r1"]
    default = catalog.plan([entry("m")], settings())["services"][0]["selector"]
    assert default == {"app.kubernetes.io/name": "vllm", "baremetal.gpu/service": "vllm-m"}


def test_download_turns_the_server_offline_and_needs_a_model_id_for_local_paths():
    w = catalog.plan([entry("m", download=True, env={"SERVER_ONLY": "1"})], settings())["workloads"][0]
    assert {"name": "HF_HUB_OFFLINE", "value": "1"} in w["env"]
    assert w["container"]["download_args"] == ["--repo", "Qwen/Qwen3-0.6B", "--cache-dir", "/root/.cache/huggingface"]
    assert [e["name"] for e in w["download_env"]] == ["HF_TOKEN", "HF_HOME", "HF_HUB_ENABLE_HF_TRANSFER"]
    assert w["download_container"] == "weights"
    assert "download of the local path /models/x needs model_id" in problems_text(
        [entry("m", download=True, model="/models/x")])
    assert "download needs a cache" in problems_text([entry("m", download=True, cache={"type": "none"})])


def test_format_number_writes_what_a_person_types():
    assert [catalog.format_number(v) for v in (0.9, 0.85, 8192, 0.45, 1.0)] == ["0.9", "0.85", "8192", "0.45", "1"]


# --- the compatibility check reads catalog entries -----------------------------------------------

def test_each_home_lab_entry_feeds_vllm_compat_and_fits_the_rtx_3060(homelab):
    the_plan = catalog.plan(homelab["vllm_catalog"], inventory_settings(homelab))
    for w in the_plan["workloads"]:
        assert set(w["compat"]) >= {"name", "quantization", "max_model_len", "gpu_memory_utilization", "params_b",
                                    "weights_gib", "num_layers", "num_kv_heads", "head_dim", "enforce_eager"}
        result = compat.check(w["image"], RTX_3060_NODE, w["compat"])
        assert result["verdict"] == "ok", (w["name"], result["reasons"])


def test_the_t4_speech_recognition_uses_float16_which_the_t4_needs():
    t4 = load(ROOT / "inventories" / "examples" / "t4-timesliced" / "group_vars" / "all.yml")
    workloads = {w["name"]: w for w in catalog.plan(t4["vllm_catalog"], inventory_settings(t4))["workloads"]}
    asr = workloads["qwen3-asr"]
    codes = {r["code"]: r["severity"] for r in compat.check(asr["image"], T4_NODE, asr["compat"])["reasons"]}
    assert "dtype_unsupported" not in codes
    bf16 = dict(asr["compat"], dtype="bfloat16")
    codes = {r["code"]: r["severity"] for r in compat.check(asr["image"], T4_NODE, bf16)["reasons"]}
    assert codes["dtype_unsupported"] == "fail"
    # The text-to-speech service is PyTorch, not vLLM: it runs its checkpoint's bf16 (emulated on a T4,
    # slowly). The check, written for vLLM, says so as a warning, never a failure.
    tts = workloads["qwen3-tts"]
    codes = {r["code"]: r["severity"] for r in compat.check(tts["image"], T4_NODE, tts["compat"])["reasons"]}
    assert codes["dtype_unsupported"] == "warn"


def test_compat_model_is_what_vllm_compat_takes():
    assert catalog.compat_model({"name": "asr", "model": "/models/Qwen3-ASR-1.7B", "model_id": "Qwen/Qwen3-ASR-1.7B",
                                 "dtype": "float16", "max_model_len": 4096, "enforce_eager": False, "port": 8000,
                                 "quantization": ""}) == {
        "name": "Qwen/Qwen3-ASR-1.7B", "dtype": "float16", "max_model_len": 4096}


def test_plan_does_not_modify_the_catalog(homelab):
    before = copy.deepcopy(homelab["vllm_catalog"])
    catalog.plan(homelab["vllm_catalog"], inventory_settings(homelab))
    assert homelab["vllm_catalog"] == before
