"""Pure logic of the GPU router: the route table (served names and aliases -> mode) and admission (FIFO,
per-mode concurrency, queue bound, requests riding on a switch)."""

import pytest

from ansible_collections.baremetal.gpu.plugins.module_utils.gpu_router.admission import Admission, QueueFull, Ticket
from ansible_collections.baremetal.gpu.plugins.module_utils.gpu_router.routing import Route, RouteTable


def deployment(name, served, load="60"):
    return {"metadata": {"name": name, "annotations": {"baremetal.gpu/served-model-names": served,
                                                       "baremetal.gpu/load-seconds": load}}}


BOOK = {"default": "ml", "modes": {
    "ml": {"workloads": {"vllm-ml": 1}, "standby": {"vllm-r1": 1}},
    "r1": {"workloads": {"vllm-r1": 1}},
    "both": {"workloads": {"vllm-ml": 1, "vllm-small": 1}},
    "off": {"workloads": {}}}}
DEPLOYMENTS = {"vllm-ml": deployment("vllm-ml", "Qwen/Qwen3-8B-AWQ,vllm-qwen", "70"),
               "vllm-r1": deployment("vllm-r1", "deepseek-r1,vllm-r1", "90"),
               "vllm-small": deployment("vllm-small", "small", "10")}


def test_names_and_aliases_resolve_to_the_active_mode_first_then_the_default():
    table = RouteTable(BOOK, DEPLOYMENTS)
    assert table.models() == ["Qwen/Qwen3-8B-AWQ", "deepseek-r1", "small", "vllm-qwen", "vllm-r1"]
    assert table.resolve("vllm-qwen", "r1") == Route("vllm-qwen", "ml", "vllm-ml")  # default mode serves it
    assert table.resolve("vllm-qwen", "both") == Route("vllm-qwen", "both", "vllm-ml")  # no switch needed
    assert table.resolve("small", "ml") == Route("small", "both", "vllm-small")
    assert table.resolve("deepseek-r1", "ml") == Route("deepseek-r1", "r1", "vllm-r1")
    assert table.resolve("gpt-4o", "ml") is None


def test_model_state_and_expected_load():
    table = RouteTable(BOOK, DEPLOYMENTS)
    assert [table.model_state(m, "ml") for m in ("vllm-qwen", "vllm-r1", "small")] == ["loaded", "asleep", "stopped"]
    assert table.model_state("vllm-r1", "r1") == "loaded" and table.model_state("vllm-qwen", "off") == "stopped"
    assert table.expected_load_seconds("both") == 70.0 and table.expected_load_seconds("off") == 0.0


def test_a_deployment_missing_from_the_cluster_serves_nothing():
    table = RouteTable(BOOK, {"vllm-ml": DEPLOYMENTS["vllm-ml"]})
    assert table.models() == ["Qwen/Qwen3-8B-AWQ", "vllm-qwen"]


def test_requests_for_the_active_mode_go_at_once_up_to_the_concurrency_limit():
    admission = Admission({"ml": 2}, queue_size=1)
    first, second, third = Ticket("ml", "a"), Ticket("ml", "b"), Ticket("ml", "c")
    assert admission.offer(first, "ml", None).granted and admission.offer(second, "ml", None).granted
    assert not admission.offer(third, "ml", None).granted
    with pytest.raises(QueueFull):
        admission.offer(Ticket("ml", "d"), "ml", None)
    admission.done(first)
    assert admission.advance("ml", None) == ([third], None)
    assert admission.running("ml") == 2


def test_the_oldest_request_for_another_mode_is_wanted_and_later_ones_for_the_active_mode_wait():
    admission = Admission()
    admission.offer(Ticket("ml", "a"), "ml", None)
    r1 = admission.offer(Ticket("r1", "b"), "ml", None)
    late = admission.offer(Ticket("ml", "c"), "ml", None)
    assert not late.granted and admission.advance("ml", None) == ([], "r1")
    assert admission.advance("ml", "r1") == ([], None)  # nothing moves during a switch
    admission.activated()  # r1 became active: its waiting request goes
    assert admission.advance("r1", None) == ([r1], "ml")


def test_requests_that_waited_during_a_switch_ride_on_it():
    admission = Admission()
    tickets = [admission.offer(Ticket(mode, str(i)), "ml", "r1") for i, mode in enumerate(["ml", "r1", "ml", "r1"])]
    admission.activated()
    granted, wanted = admission.advance("r1", None)
    assert granted == [tickets[1], tickets[3]] and wanted == "ml"
    assert admission.fail_mode("ml") == [tickets[0], tickets[2]] and admission.waiting() == 0
