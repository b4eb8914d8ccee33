"""The fake vLLM's GPU memory through the node's ledger: CUDA context, vLLM's start-up checks and failures
per release, its share of the GPU, SIGTERM and the grace period.

Device figures are the ledger's PROFILES (RTX 3060: 12288 MiB, 250 reserved, cc 8.6; T4: 15360 MiB, 260
reserved, cc 7.5); model figures the fake's own table (Qwen3-8B-AWQ: 5.7 GiB of weights = 5836 MiB, 36 layers
x 8 KV heads x 128 x 2 (K, V) x 2 bytes = 147456 bytes of KV cache per token). Expected numbers are worked
out by hand next to each assertion.
"""

import time

import pytest

from tests.harness.fake_vllm.client import wait_for

FAST = 0.01
CONTEXT = 500  # MiB, the fake's CUDA context


def failure(server):
    """The ValueError / torch error line of a failed start."""
    assert server.wait_exit(5) == 1 and server.state == "crashed"
    return next(line.split("] ", 1)[1] for line in server.logs()
                if line.startswith("ERROR") and ("Error:" in line or "Error " in line))


def test_start_creates_the_context_then_grows_to_its_share(fake_vllm, gpu_node):
    node = gpu_node("NVIDIA-GeForce-RTX-3060")
    claim = node.claim()
    server = fake_vllm(model="Qwen/Qwen3-8B-AWQ", max_model_len=8192, gpu=claim, load_seconds=100,
                       time_scale=FAST, version="0.15.1")
    wait_for(lambda: node.used_mib() > 0)
    assert node.used_mib() == CONTEXT  # context first; weights come during the load
    assert server.wait_healthy(5)
    # 0.9.1+: context + ceil(0.9 x 12288 MiB) -> 500 + 11059 MiB (the KV cache fills the share, whole MiB)
    assert node.used_mib() == 500 + 11059
    assert server.listen_ports == (8000,) and server.poll() is None


def test_before_0_9_1_the_share_includes_what_others_use(fake_vllm, gpu_node):
    node = gpu_node("NVIDIA-GeForce-RTX-3060")
    other = node.claim(name="other")
    node.ledger.allocate(other.pid, 0, 1000)
    server = fake_vllm(model="Qwen/Qwen3-8B-AWQ", max_model_len=8192, gpu=node.claim(), version="0.8.5.post1")
    assert server.wait_healthy(5)
    # the device is filled up to 0.9 x 12288 = 11059.2 MiB, reserved and the other process included:
    # 11059.2 - 250 - 1000 = 9809 MiB for this server
    assert node.ledger.process(server.gpu.pid).usage[0] == 9809


@pytest.mark.parametrize("version,product,utilization,expected", [
    # T4: the first holds 500 + 0.9 x 15360 = 14324 MiB; the second, after its own context, finds
    # 15360 - 260 - 14324 - 500 = 276 MiB = 0.27 GiB free and wants 0.9 x 15 GiB = 13.5 GiB
    ("0.15.1", "Tesla-T4", 0.9, "Free memory on device cuda:0 (0.27/15.0 GiB) on startup is less than desired GPU "
                                "memory utilization (0.9, 13.5 GiB)."),
    # RTX 3060 (0.9.2 runs its V1 engine there): 500 + ceil(0.8 x 12288) = 10330 MiB held; the second finds
    # 12288 - 250 - 10330 - 500 = 1208 MiB = 1.18 GiB and wants 0.8 x 12 GiB = 9.6 GiB
    ("0.9.2", "NVIDIA-GeForce-RTX-3060", 0.8, "Free memory on device (1.18/12.0 GiB) on startup is less than "
                                              "desired GPU memory utilization (0.8, 9.6 GiB)."),
])
def test_second_server_that_does_not_fit_fails_with_vllms_free_memory_error(fake_vllm, gpu_node, version, product,
                                                                            utilization, expected):
    node = gpu_node(product)
    options = dict(model="Qwen/Qwen3-8B-AWQ", max_model_len=4096, version=version,
                   gpu_memory_utilization=utilization)
    first = fake_vllm(gpu=node.claim(), **options)
    assert first.wait_healthy(5)
    second = fake_vllm(gpu=node.claim(), **options)
    assert failure(second) == "ValueError: " + expected + " Decrease GPU memory utilization or reduce GPU memory " \
                                                          "used by other processes."
    assert "RuntimeError: Engine core initialization failed." in second.logs()[-1]
    assert first.poll() is None


def test_0_8_5_has_no_free_memory_check_and_dies_of_cuda_oom_loading_weights(fake_vllm, gpu_node):
    node = gpu_node("Tesla-T4")
    first = fake_vllm(model="Qwen/Qwen3-8B-AWQ", max_model_len=4096, gpu=node.claim(), version="0.8.5.post1")
    assert first.wait_healthy(5)
    held = node.ledger.process(first.gpu.pid).usage[0]
    assert held == 13824 - 260  # 0.9 x 15360, less the reserved memory
    second = fake_vllm(model="Qwen/Qwen3-8B-AWQ", max_model_len=4096, gpu=node.claim(), version="0.8.5.post1")
    message = failure(second)
    assert message.startswith("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate ")
    # free: 15360 - 260 - 13564 - 500 = 1036 MiB; the first process holds 13564 MiB = 13.25 GiB
    assert "GPU 0 has a total capacity of 15.00 GiB of which " in message
    assert "Process %d has 13.25 GiB memory in use." % first.gpu.pid in message
    assert "Including non-PyTorch memory, this process has " in message
    assert message.endswith("(https://pytorch.org/docs/stable/notes/cuda.html#environment-variables)")


def test_no_memory_for_even_the_cuda_context(fake_vllm, gpu_node):
    node = gpu_node("Tesla-T4")
    hog = node.claim(name="hog")
    node.ledger.allocate(hog.pid, 0, 15360 - 260 - 100)
    server = fake_vllm(gpu=node.claim())
    assert failure(server) == "RuntimeError: CUDA error: out of memory"


@pytest.mark.parametrize("version,expected", [
    ("0.15.1", "ValueError: To serve at least one request with the models's max seq len (40960), (5.62 GiB KV cache "
               "is needed, which is larger than the available KV cache memory (4.1 GiB). Based on the available "
               "memory, the estimated maximum model length is 29856. Try increasing `gpu_memory_utilization` or "
               "decreasing `max_model_len` when initializing the engine. See "
               "https://docs.vllm.ai/en/latest/configuration/conserving_memory/ for more details."),
    ("0.29.0", "ValueError: To serve at least one request with the model's max seq len (40960), (5.62 GiB KV cache "
               "is needed, which is larger than the available KV cache memory (4.1 GiB). Based on the available "
               "memory, the estimated maximum model length is 29856. Try increasing `gpu_memory_utilization` (which "
               "also controls CPU memory on the CPU backend) or decreasing `max_model_len` when initializing the "
               "engine. See https://docs.vllm.ai/en/latest/configuration/conserving_memory/ for more details."),
    ("0.9.2", "ValueError: To serve at least one request with the models's max seq len (40960), (5.62 GiB KV cache "
              "is needed, which is larger than the available KV cache memory (4.10 GiB). Based on the available "
              "memory, the estimated maximum model length is 29856. Try increasing `gpu_memory_utilization` or "
              "decreasing `max_model_len` when initializing the engine."),
])
def test_kv_cache_too_small_for_max_model_len(fake_vllm, gpu_node, version, expected):
    # RTX 3060 at 0.9: ceil(0.9 x 12288 MiB) = 11059.2 MiB for weights (5836), activations (1024) and the KV
    # cache: 4199.2 MiB = 4.10 GiB. One 40960-token request needs 40960 x 147456 bytes = 5.625 GiB ("5.62",
    # rounded half to even). 4199.2 MiB hold 1866 whole blocks of 16 tokens (16 x 147456 bytes = 2.25 MiB
    # each): the estimate is 1866 x 16 = 29856 tokens.
    node = gpu_node("NVIDIA-GeForce-RTX-3060")
    server = fake_vllm(model="Qwen/Qwen3-8B-AWQ", max_model_len=40960, gpu=node.claim(), version=version)
    assert failure(server) == expected


def test_old_kv_cache_message_on_the_v0_engine_below_compute_capability_8(fake_vllm, gpu_node):
    # 0.8.5 falls back to the V0 engine on a T4 (cc 7.5). At 0.6: 9216 MiB - 260 reserved - 500 context - 5836
    # weights - 1024 activations = 1596 MiB of KV cache = 709 blocks of 16 tokens x 147456 bytes = 11344 tokens.
    node = gpu_node("Tesla-T4")
    server = fake_vllm(model="Qwen/Qwen3-8B-AWQ", max_model_len=40960, gpu=node.claim(), version="0.8.5.post1",
                       gpu_memory_utilization=0.6)
    assert failure(server) == (
        "ValueError: The model's max seq len (40960) is larger than the maximum number of tokens that can be stored "
        "in KV cache (11344). Try increasing `gpu_memory_utilization` or decreasing `max_model_len` when "
        "initializing the engine.")


def test_bfloat16_below_compute_capability_8_suggests_half(fake_vllm, gpu_node):
    bf16_message = ("ValueError: Bfloat16 is only supported on GPUs with compute capability of at least 8.0. Your "
                    "Tesla T4 GPU has compute capability 7.5. You can use float16 instead by explicitly setting the "
                    "`dtype` flag in CLI, for example: --dtype=half.")
    node = gpu_node("Tesla-T4", count=3)
    explicit = fake_vllm(model="Qwen/Qwen3-ASR-1.7B", dtype="bfloat16", gpu=node.claim([0]),
                         gpu_memory_utilization=0.45, max_model_len=4096)
    assert failure(explicit) == bf16_message
    auto_old = fake_vllm(model="Qwen/Qwen3-ASR-1.7B", gpu=node.claim([1]), gpu_memory_utilization=0.45,
                         max_model_len=4096, version="0.8.5.post1")  # the checkpoint is bfloat16
    assert failure(auto_old) == bf16_message
    auto_new = fake_vllm(model="Qwen/Qwen3-ASR-1.7B", gpu=node.claim([2]), gpu_memory_utilization=0.45,
                         max_model_len=4096, version="0.11.0")
    assert auto_new.wait_healthy(5)
    assert any("Your device 'Tesla T4' (with compute capability 7.5) doesn't support torch.bfloat16. Falling back "
               "to torch.float16 for compatibility." in line for line in auto_new.logs())
    half = fake_vllm(model="Qwen/Qwen3-ASR-1.7B", dtype="half", gpu=gpu_node("Tesla-T4").claim(),
                     gpu_memory_utilization=0.45, max_model_len=4096, version="0.8.5.post1")
    assert half.wait_healthy(5)


def test_tensor_parallel_splits_the_weights_and_needs_every_gpu(fake_vllm, gpu_node):
    node = gpu_node("Tesla-T4", count=2)
    server = fake_vllm(model="Qwen/Qwen3-ASR-1.7B", tensor_parallel_size=2, dtype="half", gpu=node.claim([0, 1]),
                       max_model_len=4096)
    assert server.wait_healthy(5)
    assert node.used_mib(0) == node.used_mib(1) == 500 + 13824


def test_dev_mode_must_be_an_integer_string(fake_vllm):
    server = fake_vllm(env={"VLLM_SERVER_DEV_MODE": "true"})
    assert failure(server) == "ValueError: invalid literal for int() with base 10: 'true'"


def test_sigterm_takes_shutdown_seconds_and_memory_stays_until_the_kubelet_reports_the_exit(fake_vllm, gpu_node):
    node = gpu_node("NVIDIA-GeForce-RTX-3060", release_delay=0.01)
    claim = node.claim()
    server = fake_vllm(model="Qwen/Qwen3-8B-AWQ", max_model_len=8192, gpu=claim, shutdown_seconds=30,
                       time_scale=FAST)
    assert server.wait_healthy(5)
    held = node.used_mib()
    started = time.monotonic()
    assert server.stop(grace=5) == 0
    assert time.monotonic() - started >= 0.3  # 30 simulated seconds
    assert server.poll() == 0 and server.state == "stopped"
    assert node.used_mib() == held  # the process has exited; the ledger frees its memory once told
    node.exit(claim.pid)
    assert node.ledger.wait_until(lambda ledger: ledger.used_mib(0) == 0, timeout=2)


def test_grace_running_out_is_sigkill_137(fake_vllm):
    server = fake_vllm(shutdown_seconds=100, time_scale=FAST)  # 1 s to shut down
    assert server.wait_healthy(5)
    started = time.monotonic()
    assert server.stop(grace=0.1) == 137
    assert 0.1 <= time.monotonic() - started < 0.9
    assert server.poll() == 137


def test_max_num_seqs_default_depends_on_the_gpu(fake_vllm, gpu_node):
    small = fake_vllm(gpu=gpu_node("NVIDIA-GeForce-RTX-3060").claim(), max_model_len=4096)
    big = fake_vllm(gpu=gpu_node("NVIDIA-H100-80GB-HBM3").claim(), max_model_len=4096)
    assert (small.max_num_seqs, big.max_num_seqs) == (256, 1024)
