"""gpu_facts' parsers on real and hand-written nvidia-smi captures (tests/fixtures/gpu/)."""

import pathlib

import pytest

from ansible_collections.baremetal.gpu.plugins.module_utils import gpu

FIXTURES = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "gpu"
H100 = FIXTURES / "h100-80gb-driver-580.159.04"
RTX3060 = FIXTURES / "rtx3060-12gb-driver-570.195.03"
T4 = FIXTURES / "t4-16gb-driver-535.247.01"


def parse(fixture, with_caps=True):
    caps = gpu.parse_compute_cap_csv((fixture / "compute-cap.csv").read_text()) if with_caps else None
    return gpu.parse_nvidia_smi_xml((fixture / "nvidia-smi-q.xml").read_text(), caps)


def test_h100_capture_matches_its_own_nvidia_smi_table_and_query():
    facts = parse(H100)
    # Cross-check against the other files of the same real capture, not against literals.
    query = (H100 / "query.csv").read_text().splitlines()[1].split(", ")
    table = (H100 / "nvidia-smi.txt").read_text()
    assert facts["driver_version"] == query[3] == "580.159.04"
    assert "CUDA Version: %s" % facts["cuda_driver_version"] in table
    (h100,) = facts["gpus"]
    assert h100["name"] == query[1]
    assert h100["uuid"] == query[2]
    assert "%d MiB" % h100["memory_total_mib"] == query[4]
    assert h100["compute_capability"] == query[5]
    assert h100["persistence_mode"] is (query[6] == "Enabled")
    assert h100["mig_mode"] == query[7].lower()
    assert h100["pci_bus_id"] == query[8]
    assert "%dMiB /  %dMiB" % (h100["memory_used_mib"], h100["memory_total_mib"]) in table
    # reserved + used + free = total, as the driver accounts it
    assert h100["memory_reserved_mib"] + h100["memory_used_mib"] + h100["memory_free_mib"] == h100["memory_total_mib"]
    assert h100["product_brand"] == "NVIDIA" and h100["brand"] == "nvidia"
    assert h100["product_class"] == "datacenter" and h100["forward_compat_capable"] is True
    assert h100["architecture"] == "Hopper"
    assert h100["processes"] == []
    assert facts["gpu_count"] == 1 and facts["driver_installed"] is True and facts["reason"] is None
    assert facts["persistence_mode"] is True


def test_rtx3060_is_a_consumer_card_without_mig_and_with_the_vllm_process():
    facts = parse(RTX3060)
    (card,) = facts["gpus"]
    assert (facts["driver_version"], facts["cuda_driver_version"]) == ("570.195.03", "12.8")
    assert card["name"] == "NVIDIA GeForce RTX 3060"
    assert card["compute_capability"] == "8.6"
    assert card["product_class"] == "consumer" and card["forward_compat_capable"] is False
    assert card["brand"] == "geforce"
    assert card["mig_mode"] is None  # N/A on GeForce
    assert card["persistence_mode"] is False and facts["persistence_mode"] is False
    assert card["memory_total_mib"] == 12288 and card["memory_used_mib"] == 10820
    (proc,) = card["processes"]
    assert proc == {"pid": 48213, "type": "C", "name": "/usr/bin/python3", "used_memory_mib": 10810}


def test_t4_two_processes_share_the_card():
    facts = parse(T4)
    (card,) = facts["gpus"]
    assert card["compute_capability"] == "7.5" and card["architecture"] == "Turing"
    assert card["product_class"] == "datacenter"
    assert [p["pid"] for p in card["processes"]] == [2291, 2417]
    assert sum(p["used_memory_mib"] for p in card["processes"]) <= card["memory_used_mib"]


def test_without_the_compute_cap_query_the_gpu_table_fills_it():
    for fixture, expected in ((H100, "9.0"), (RTX3060, "8.6"), (T4, "7.5")):
        assert parse(fixture, with_caps=False)["gpus"][0]["compute_capability"] == expected


def test_garbage_is_a_clear_error():
    with pytest.raises(ValueError, match="not XML"):
        gpu.parse_nvidia_smi_xml("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver")
    with pytest.raises(ValueError, match="nvidia_smi_log"):
        gpu.parse_nvidia_smi_xml("<other/>")


def test_proc_modules_of_the_hand_written_rtx3060_fixture():
    loaded = gpu.parse_proc_modules((RTX3060 / "proc-modules.txt").read_text())
    assert {"nvidia", "nvidia_uvm", "nvidia_drm", "nvidia_modeset"} <= loaded and "nouveau" not in loaded


def test_kernel_module_facts_read_a_proc_tree(tmp_path):
    (tmp_path / "driver" / "nvidia").mkdir(parents=True)
    (tmp_path / "driver" / "nvidia" / "version").write_text((H100 / "proc-driver-nvidia-version.txt").read_text())
    (tmp_path / "modules").write_text("nouveau 2691072 0 - Live 0x0\nnvidia_uvm 1 0 - Live 0x0\n")
    facts = gpu.kernel_module_facts(str(tmp_path))
    assert facts["loaded"] is True
    assert facts["version"] == "580.159.04" and facts["flavor"] == "open" and facts["architecture"] == "x86_64"
    assert facts["nouveau_loaded"] is True
    assert facts["modules"] == ["nouveau", "nvidia_uvm"]
    empty = gpu.kernel_module_facts(str(tmp_path / "missing"))
    assert empty == {"loaded": False, "version": None, "flavor": None, "architecture": None, "nouveau_loaded": False,
                     "modules": []}


@pytest.mark.parametrize("name, key, cc, klass", [
    ("NVIDIA GeForce RTX 3060", "rtx 3060", "8.6", "consumer"),
    ("NVIDIA GeForce RTX 3060 Ti", "rtx 3060 ti", "8.6", "consumer"),
    ("Tesla T4", "t4", "7.5", "datacenter"),
    ("NVIDIA A100-SXM4-80GB", "a100 sxm4 80gb", "8.0", "datacenter"),
    ("NVIDIA H100 80GB HBM3", "h100 80gb hbm3", "9.0", "datacenter"),
    ("NVIDIA RTX A6000", "rtx a6000", "8.6", "workstation"),
    ("Tesla V100-SXM2-32GB", "v100 sxm2 32gb", "7.0", "datacenter"),
])
def test_gpu_table_lookup(name, key, cc, klass):
    assert gpu.normalize_gpu_name(name) == key
    entry = gpu.lookup_gpu(name)
    assert entry["compute_capability"] == cc and entry["class"] == klass
    assert gpu.product_class(None, name) == klass


def test_specific_skus_win_over_families():
    assert gpu.lookup_gpu("NVIDIA GeForce RTX 3060 Ti")["memory_mib"] == 8192
    assert gpu.lookup_gpu("NVIDIA GeForce RTX 3060")["memory_mib"] == 12288
    assert gpu.lookup_gpu("NVIDIA A100-PCIE-40GB")["memory_mib"] == 40960
    assert gpu.lookup_gpu("Some Future GPU") is None


def test_brands_map_to_the_container_runtime_names():
    assert gpu.brand_key("GeForce") == "geforce"
    assert gpu.brand_key("NVIDIA RTX") == "nvidiartx"
    assert gpu.brand_key("Tesla") == "tesla"
    assert gpu.brand_key("N/A") is None
    # brand decides the class before the name does: a GeForce-branded card is consumer
    assert gpu.product_class("geforce", "Tesla T4") == "consumer"
    assert gpu.product_class("unknown", "Tesla T4") == "datacenter"


def test_cuda_version_integers():
    assert gpu.cuda_version_from_int(13000) == "13.0"
    assert gpu.cuda_version_from_int(12080) == "12.8"
    assert gpu.cuda_version_from_int(12020) == "12.2"
    assert gpu.cuda_version_from_int(None) is None


def test_compare_facts_reports_each_differing_field():
    a = parse(RTX3060)
    b = parse(RTX3060)
    assert gpu.compare_facts(a, b, volatile_tolerance_mib=0) == []
    b["gpus"][0]["uuid"] = "GPU-other"
    b["gpus"][0]["memory_used_mib"] += 3
    b["driver_version"] = "570.1"
    diffs = gpu.compare_facts(a, b, volatile_tolerance_mib=2)
    assert {d["field"] for d in diffs} == {"driver_version", "gpus[0].uuid", "gpus[0].memory_used_mib"}
    assert {d["field"] for d in gpu.compare_facts(a, b)} == {"driver_version", "gpus[0].uuid"}


def test_gather_rejects_an_unknown_backend():
    with pytest.raises(ValueError, match="backend"):
        gpu.gather(backend="cuda")


def test_compare_facts_allows_the_backends_one_mib_of_rounding_on_fixed_memory_figures():
    from ansible_collections.baremetal.gpu.plugins.module_utils.gpu import compare_facts

    def facts(reserved, total=143771):
        return {"gpus": [{"index": 0, "memory_reserved_mib": reserved, "memory_total_mib": total}]}

    # the H200 of 2026-12-02: NVML 644,939,776 bytes (615 MiB floored), nvidia-smi -q -x "616 MiB"
    assert compare_facts(facts(615), facts(616)) == []
    assert compare_facts(facts(615), facts(618)) == [
        {"field": "gpus[0].memory_reserved_mib", "left": 615, "right": 618}]
    assert compare_facts(facts(615), facts(615, total=143000)) == [
        {"field": "gpus[0].memory_total_mib", "left": 143771, "right": 143000}]
