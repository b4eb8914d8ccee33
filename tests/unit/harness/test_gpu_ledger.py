"""The GPU memory ledger: allocations that do not fit fail, memory is freed only after the process exits
(plus the release delay), stuck memory stays, and the fake NVML export says the same."""

import time

import pytest

from tests.harness.gpu_ledger import GpuDevice, GpuLedger, OutOfMemory

MIB = 1024 * 1024


def ledger(tmp_path=None, delay=0.05):
    return GpuLedger("n1", [GpuDevice(0, total_mib=15360, name="Tesla T4", idle_reserved_mib=260)],
                     release_delay=delay, export_dir=tmp_path)


def test_two_servers_that_do_not_fit_cannot_both_allocate():
    gpu = ledger()
    gpu.start_process(100, "python3", gpus=[0])
    gpu.start_process(200, "python3", gpus=[0])
    gpu.allocate(100, 0, int(15360 * 0.9))
    with pytest.raises(OutOfMemory) as err:
        gpu.allocate(200, 0, int(15360 * 0.9))
    assert err.value.free_mib == 15360 - 260 - 13824
    assert "out of memory" in str(err.value)


def test_memory_is_freed_after_exit_plus_release_delay_not_before():
    gpu = ledger(delay=0.2)
    gpu.start_process(100, "python3", gpus=[0])
    gpu.allocate(100, 0, 10000)
    exited = time.monotonic()
    gpu.exit_process(100)
    assert gpu.used_mib(0) == 10000  # the process is gone, its memory is not yet
    assert gpu.wait_until(lambda g: g.used_mib(0) == 0, timeout=2)
    assert gpu.released_at(100) - exited >= 0.19
    assert gpu.processes(0) == []


def test_stuck_memory_stays_after_exit_until_unstuck():
    gpu = ledger(delay=0.01)
    gpu.start_process(100, "python3", gpus=[0])
    gpu.allocate(100, 0, 5000)
    gpu.stick(100)
    gpu.exit_process(100)
    assert not gpu.wait_until(lambda g: g.used_mib(0) == 0, timeout=0.2)
    gpu.stick(100, False)
    assert gpu.used_mib(0) == 0


def test_a_process_may_only_use_the_gpus_its_pod_was_given():
    gpu = GpuLedger("n1", [GpuDevice(0), GpuDevice(1)])
    gpu.start_process(100, "python3", gpus=[1])
    with pytest.raises(ValueError, match="not given GPU 0"):
        gpu.allocate(100, 0, 10)


def test_export_is_what_the_fake_nvml_reads_and_maps_pids_to_pods(tmp_path):
    gpu = ledger(tmp_path, delay=0.01)
    gpu.start_process(4242, "python3", pod_uid="1234-abcd", container="vllm", container_id="c0ffee", gpus=[0])
    gpu.allocate(4242, 0, 3963)
    text = (tmp_path / "nvml.txt").read_text()
    assert "gpu0.memory %d %d %d %d" % (15360 * MIB, 260 * MIB, (15360 - 260 - 3963) * MIB, 3963 * MIB) in text
    assert "gpu0.proc 4242 %d python3" % (3963 * MIB) in text
    assert (tmp_path / "proc" / "4242" / "cgroup").read_text() == "0::/kubepods/burstable/pod1234-abcd/c0ffee\n"
    gpu.exit_process(4242)
    assert not (tmp_path / "proc" / "4242").exists()  # gone from /proc at once...
    assert "gpu0.proc 4242" in (tmp_path / "nvml.txt").read_text()  # ...while NVML still shows its memory
    assert gpu.wait_until(lambda g: g.used_mib(0) == 0, timeout=2)
    assert "gpu0.proc" not in (tmp_path / "nvml.txt").read_text()


def test_claim_grows_on_every_gpu_of_a_tensor_parallel_pod_and_fails_on_the_short_one():
    from tests.harness.gpu_ledger import GpuClaim

    gpu = GpuLedger("n1", [GpuDevice(0, total_mib=16384), GpuDevice(1, total_mib=16384)])
    gpu.start_process(1, "other", gpus=[1])
    gpu.allocate(1, 1, 8000)
    gpu.start_process(2, "python3", gpus=[0, 1])
    claim = GpuClaim(gpu, 2, [0, 1])
    assert claim.free_mib() == 16384 - 250 - 8000
    with pytest.raises(OutOfMemory) as err:
        claim.set_each(int(16384 * 0.9))
    assert err.value.index == 1
    claim.set_each(7000)
    assert gpu.used_mib(0) == 7000 and gpu.used_mib(1) == 15000 and claim.used_by_me_mib() == 7000


def test_from_profile_builds_the_products_devices():
    gpu = GpuLedger.from_profile("n1", "Tesla-T4", count=2)
    assert sorted(gpu.devices) == [0, 1]
    t4 = gpu.devices[1]
    assert (t4.name, t4.total_mib, t4.idle_reserved_mib, tuple(t4.cc)) == ("Tesla T4", 15360, 260, (7, 5))
    assert gpu.free_mib(0) == 15360 - 260
