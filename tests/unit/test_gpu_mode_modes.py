"""GPU modes: the inventory's definitions checked, and the plan of a switch computed from what runs."""

import json

import pytest

from ansible_collections.baremetal.gpu.plugins.module_utils.gpu_mode import modes

CATALOG = {"ml", "r1", "embed"}


def test_inventory_modes_are_normalized_with_off_built_in():
    found, default, problems = modes.normalize_inventory_modes({
        "ml": {"description": "Qwen3-8B AWQ", "default": True, "workloads": ["ml", "embed"]},
        "r1": {"description": "DeepSeek-R1 distill", "workloads": {"r1": 1, "embed": 2}},
    }, CATALOG)
    assert problems == []
    assert default == "ml"
    assert found == {
        "ml": {"description": "Qwen3-8B AWQ", "workloads": {"ml": 1, "embed": 1}},
        "r1": {"description": "DeepSeek-R1 distill", "workloads": {"r1": 1, "embed": 2}},
        "off": {"description": "no model: the GPU is free", "workloads": {}},
    }


@pytest.mark.parametrize("gpu_modes, message", [
    ({"ml": {"default": True, "workloads": ["qwen"]}}, "gpu_modes.ml: workload qwen is not a vllm_catalog entry "
                                                       "(known: embed, ml, r1)"),
    ({"ml": {"workloads": ["ml"]}}, "gpu_modes: mark one mode default: true"),
    ({"ml": {"default": True}, "r1": {"default": True}}, "gpu_modes: more than one default mode (ml and r1)"),
    ({"off": {"default": True, "workloads": ["ml"]}}, "gpu_modes.off: mode off frees the GPU and cannot have workloads"),
    ({"ml": {"default": True, "workloads": {"ml": 0}}}, "gpu_modes.ml.workloads.ml: replicas must be at least 1"),
    ({"ML": {"default": True}}, "gpu_modes.ML: a mode name must be lower case letters, digits and '-'"),
    ({"ml": {"default": True, "workload": ["ml"]}}, "gpu_modes.ml: unknown key(s) workload"),
])
def test_bad_inventory_modes_are_named(gpu_modes, message):
    problems = modes.normalize_inventory_modes(gpu_modes, CATALOG)[2]
    assert any(p.startswith(message) for p in problems), problems


def book():
    return modes.book_from_configmap({"metadata": {"name": "gpu-mode-worker"}, "data": {"modes.json": json.dumps({
        "node": "worker", "namespace": "ml", "default": "ml",
        "modes": {"ml": {"description": "Qwen3", "workloads": {"vllm-ml": 1, "vllm-embed": 1}},
                  "r1": {"description": "R1", "workloads": {"vllm-r1": 1, "vllm-embed": 1}}}})}})


def test_plan_stops_what_leaves_starts_what_comes_and_keeps_what_both_share():
    live = {"vllm-ml": 1, "vllm-embed": 1, "vllm-r1": 0}
    assert modes.plan(book(), "ml", "r1", live) == {
        "from": "ml", "to": "r1", "stop": ["vllm-ml"], "start": {"vllm-r1": 1}, "keep": {"vllm-embed": 1},
        "missing": [], "sleep": [], "wake": {}, "standby_start": [], "keep_asleep": []}


def test_plan_reads_what_runs_not_what_was_recorded():
    # recorded ml, but somebody scaled r1 up by hand: off stops both
    live = {"vllm-ml": 1, "vllm-embed": 1, "vllm-r1": 1}
    assert modes.plan(book(), "ml", "off", live)["stop"] == ["vllm-embed", "vllm-ml", "vllm-r1"]


def test_plan_names_missing_deployments():
    assert modes.plan(book(), "ml", "r1", {"vllm-ml": 1, "vllm-embed": 1})["missing"] == ["vllm-r1"]


def test_unknown_mode_lists_the_valid_ones_with_descriptions():
    with pytest.raises(modes.ModeError) as err:
        modes.check_mode(book(), "r2")
    assert str(err.value) == ("unknown mode 'r2' for node worker; valid modes: ml (default): Qwen3; "
                              "off: no model: the GPU is free; r1: R1")


def test_a_configmap_without_modes_says_to_run_site_yml():
    with pytest.raises(modes.ModeError, match="run site.yml"):
        modes.book_from_configmap({"metadata": {"name": "gpu-mode-worker"}, "data": {}})


# --- hot standby ---------------------------------------------------------------------------------------

def test_standby_workloads_are_normalized_and_checked():
    found, _default, problems = modes.normalize_inventory_modes({
        "ml": {"default": True, "workloads": ["ml"], "standby": ["r1"]},
        "r1": {"workloads": ["r1"], "standby": ["ml"]},
    }, CATALOG)
    assert problems == []
    assert found["ml"] == {"description": "", "workloads": {"ml": 1}, "standby": {"r1": 1}}
    assert "standby" not in found["off"]  # a mode without standby is stored as before


@pytest.mark.parametrize("gpu_modes, message", [
    ({"ml": {"default": True, "workloads": ["ml"], "standby": ["r2"]}},
     "gpu_modes.ml: standby r2 is not a vllm_catalog entry (known: embed, ml, r1)"),
    ({"ml": {"default": True, "workloads": ["ml"], "standby": ["ml"]}},
     "gpu_modes.ml: ml is both a workload (awake) and standby (asleep) of the mode"),
    ({"ml": {"default": True, "workloads": ["ml"]}, "off": {"standby": ["ml"]}},
     "gpu_modes.off: mode off frees the GPU and cannot keep standby workloads"),
    ({"ml": {"default": True, "workloads": ["ml"], "standby": "r1"}},
     "gpu_modes.ml.standby must be a list of catalog entries"),
    ({"ml": {"default": True, "workloads": {"ml": 2}}, "r1": {"workloads": ["r1"], "standby": ["ml"]}},
     "gpu_modes: ml is a standby workload, so it runs one replica"),
])
def test_bad_standby_is_named(gpu_modes, message):
    problems = modes.normalize_inventory_modes(gpu_modes, CATALOG)[2]
    assert any(p.startswith(message) for p in problems), problems


def standby_book():
    return modes.book_from_configmap({"metadata": {"name": "gpu-mode-worker"}, "data": {"modes.json": json.dumps({
        "node": "worker", "namespace": "ml", "default": "ml",
        "modes": {"ml": {"description": "Qwen3", "workloads": {"vllm-ml": 1}, "standby": {"vllm-r1": 1}},
                  "r1": {"description": "R1", "workloads": {"vllm-r1": 1}, "standby": {"vllm-ml": 1}},
                  "solo": {"description": "embeddings only", "workloads": {"vllm-embed": 1}}}})}})


def test_a_switch_between_resident_modes_sleeps_the_active_one_and_wakes_the_target():
    live = {"vllm-ml": 1, "vllm-r1": 1, "vllm-embed": 0}
    got = modes.plan(standby_book(), "ml", "r1", live, asleep={"vllm-r1"})
    assert got["sleep"] == ["vllm-ml"] and got["wake"] == {"vllm-r1": 1}
    assert got["stop"] == [] and got["start"] == {} and got["standby_start"] == [] and got["keep"] == {}


def test_a_first_activation_starts_the_standby_before_the_awake_ones():
    live = {"vllm-ml": 0, "vllm-r1": 0, "vllm-embed": 0}
    got = modes.plan(standby_book(), None, "ml", live)
    assert got["standby_start"] == ["vllm-r1"] and got["start"] == {"vllm-ml": 1} and got["sleep"] == []


def test_an_awake_target_is_cycled_through_sleep_when_its_standby_must_start():
    # ml runs awake (the standby was stopped, e.g. by mode solo before): r1 needs its share to start
    live = {"vllm-ml": 1, "vllm-r1": 0, "vllm-embed": 0}
    got = modes.plan(standby_book(), "ml", "ml", live)
    assert got["standby_start"] == ["vllm-r1"] and got["sleep"] == ["vllm-ml"] and got["wake"] == {"vllm-ml": 1}
    got = modes.plan(standby_book(), "ml", "ml", live, sleepable=["vllm-r1"])
    assert got["stop"] == ["vllm-ml"] and got["start"] == {"vllm-ml": 1} and got["wake"] == {}


def test_a_standby_workload_that_is_awake_is_put_back_to_sleep_and_others_are_stopped():
    live = {"vllm-ml": 1, "vllm-r1": 1, "vllm-embed": 1}
    got = modes.plan(standby_book(), "ml", "ml", live, asleep=set())
    assert got["sleep"] == ["vllm-r1"] and got["keep"] == {"vllm-ml": 1} and got["stop"] == ["vllm-embed"]
    got = modes.plan(standby_book(), "ml", "solo", live, asleep={"vllm-r1"})
    assert got["stop"] == ["vllm-ml", "vllm-r1"] and got["keep"] == {"vllm-embed": 1} and got["start"] == {}


def test_a_standby_workload_that_answers_neither_way_is_restarted_asleep():
    # r1's pod was recreated and cannot start beside ml (it crash-loops): stop it, start it alone, sleep it
    live = {"vllm-ml": 1, "vllm-r1": 1, "vllm-embed": 0}
    got = modes.plan(standby_book(), "ml", "ml", live, asleep=set(), unanswered={"vllm-r1"})
    assert got["stop"] == ["vllm-r1"] and got["standby_start"] == ["vllm-r1"]
    assert got["sleep"] == ["vllm-ml"] and got["wake"] == {"vllm-ml": 1}  # ml asleep while r1 starts
