"""GPU memory of one fake vLLM process, through the node's GPU ledger (tests/harness/gpu_ledger.py).

What a real vLLM does with GPU memory, per release (see versions.py for the sources):

1. its worker creates the CUDA context (``cuda_context_mib``, about 500 MiB);
2. it checks the dtype against the device (bfloat16 needs compute capability 8.0);
3. from 0.9.1 on, it refuses to start unless free memory is at least ``gpu_memory_utilization`` x total
   ("Free memory on device ... on startup is less than desired GPU memory utilization ..."); before 0.9.1
   there is no such check, but every byte used on the device (other processes included) counts against
   the budget when the KV cache is sized;
4. it loads the weights (PyTorch "CUDA out of memory" when they do not fit);
5. it sizes the KV cache from what is left of the budget and refuses to start when one request of
   ``max_model_len`` tokens does not fit (the message changed over releases);
6. it ends up holding the CUDA context plus its share (from 0.9.1) or the device filled up to the share
   (before 0.9.1).

Sleep mode (--enable-sleep-mode: weights and KV cache are allocated through vLLM's CuMemAllocator, tagged
``weights`` and ``kv_cache``, so they can be unmapped): level 1 copies the weights to host RAM and drops the
KV cache, level 2 drops both; what stays on the GPU is the residue (CUDA context, graph pool). Waking maps
the memory again, tag by tag, in chunks: when a peer holds the memory the mapping fails with "CUDA Error:
out of memory at .../cumem_allocator.cpp:62" and what was mapped before the failure stays mapped.
"""

import math

from tests.harness.gpu_ledger import MIB, OutOfMemory

__all__ = ["StartupFailure", "WakeFailure", "GpuMemory", "torch_oom_message", "format_size"]

GIB = 1024 ** 3
CHUNKS = 8  # weights and KV cache are mapped in this many pieces (a failure leaves the earlier ones in place)
CUMEM_OOM = "CUDA Error: out of memory at /workspace/csrc/cumem_allocator.cpp:62"  # verl-project/verl#302
CUDA_OOM_LINES = (  # c10's CUDA error text when the context itself cannot be created
    "RuntimeError: CUDA error: out of memory",
    "CUDA kernel errors might be asynchronously reported at some other API call, so the stacktrace below might "
    "be incorrect.",
    "For debugging consider passing CUDA_LAUNCH_BLOCKING=1",
)
# Held while asleep, CUDA context included: "Sleep mode freed 35.43 GiB memory, 1.19 GiB memory is still in
# use." (vllm-project/vllm#28714, v0.11.1rc7, Qwen3-4B, one GPU). A parameter: it varies by release and model.
DEFAULT_SLEEP_RESIDUE_MIB = int(1.19 * 1024)


class StartupFailure(Exception):
    """The server cannot start; ``lines`` are the error lines vLLM logs (the last one is the exception)."""

    def __init__(self, lines):
        super().__init__(lines[-1])
        self.lines = list(lines)


class WakeFailure(Exception):
    pass


def format_size(size):
    """PyTorch's c10 format_size: '20.00 MiB', '11.60 GiB'."""
    if size <= 1024:
        return "%d bytes" % size
    if size <= 1048576:
        return "%.2f KiB" % (size / 1024.0)
    if size <= 1073741824:
        return "%.2f MiB" % (size / 1048576.0)
    return "%.2f GiB" % (size / 1073741824.0)


def torch_oom_message(ledger, index, pid, tried_mib, torch_mib):
    """PyTorch's CUDACachingAllocator out-of-memory error (2.x wording), with NVML's per-process lines."""
    device = ledger.devices[index]
    lines = ""
    for proc in ledger.processes(index):
        held = format_size(proc.usage[index] * MIB)
        if proc.pid == pid:
            lines += "Including non-PyTorch memory, this process has %s memory in use. " % held
        else:
            lines += "Process %d has %s memory in use. " % (proc.pid, held)
    return ("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate %s. GPU %d has a total capacity of %s "
            "of which %s is free. %sOf the allocated memory %s is allocated by PyTorch, and 0 bytes is reserved by "
            "PyTorch but unallocated. If reserved but unallocated memory is large try setting "
            "PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True to avoid fragmentation.  See documentation for "
            "Memory Management  (https://pytorch.org/docs/stable/notes/cuda.html#environment-variables)"
            % (format_size(tried_mib * MIB), index, format_size(device.total_mib * MIB),
               format_size(max(0, ledger.free_mib(index)) * MIB), lines, format_size(torch_mib * MIB)))


def _gib(nbytes):
    return round(nbytes / GIB, 2)


class GpuMemory:
    """The memory of one server on the GPUs of its claim (a tests.harness.gpu_ledger.GpuClaim)."""

    def __init__(self, claim, profile, facts, utilization=0.9, tensor_parallel=1, context_mib=500,
                 residue_mib=None, dtype="auto", log=None):
        self.claim = claim
        self.profile = profile
        self.facts = facts
        self.utilization = float(utilization)
        self.tensor_parallel = max(1, int(tensor_parallel))
        self.context_mib = int(context_mib)
        default_residue = max(self.context_mib, DEFAULT_SLEEP_RESIDUE_MIB)
        self.residue_mib = int(residue_mib) if residue_mib is not None else default_residue
        self.dtype_arg = str(dtype or "auto").lower()
        self.log = log or (lambda level, message, where: None)
        self.weights_mib = int(facts.weights_gib * 1024 / self.tensor_parallel) if facts else 0
        self.activation_mib = int(facts.activation_gib * 1024) if facts else 0
        self.kv_mib = 0
        self.kv_tokens = None  # KV cache capacity in tokens (None: unknown model)
        self.footprint_mib = 0  # what the server holds per GPU once loaded
        self.mapped = {"weights": 0, "kv_cache": 0}  # MiB mapped per sleep-mode tag (while awake: all)
        self.host_weights_mib = 0  # weights copied to host RAM by a level-1 sleep

    # ------------------------------------------------------------------ facts
    @property
    def ledger(self):
        return self.claim.ledger

    def device(self):
        return self.claim.devices()[0]

    def total_bytes(self):
        return self.claim.total_mib() * MIB

    def uses_v0(self):
        return bool(self.profile.v0_below_cc80) and tuple(self.device().cc) < (8, 0)

    def held_mib(self):
        return self.claim.used_by_me_mib()

    # ------------------------------------------------------------------ start-up, in vLLM's order
    def create_context(self):
        try:
            self.claim.set_each(self.context_mib)
        except OutOfMemory:
            raise StartupFailure(list(CUDA_OOM_LINES)) from None

    def effective_dtype(self):
        """The dtype the engine runs in, or StartupFailure for bfloat16 below compute capability 8.0."""
        wanted = self.dtype_arg
        if wanted in ("half", "float16"):
            return "float16"
        if wanted in ("float", "float32"):
            return "float32"
        dtype = "bfloat16" if wanted == "bfloat16" else (self.facts.dtype if self.facts else "float16")
        device = self.device()
        if dtype != "bfloat16" or tuple(device.cc) >= (8, 0):
            return dtype
        cc = "%d.%d" % tuple(device.cc)
        if wanted == "auto" and self.profile.auto_dtype_falls_back:
            self.log("WARNING", "Your device %r (with compute capability %s) doesn't support torch.bfloat16. "
                                "Falling back to torch.float16 for compatibility." % (device.name, cc), "config.py")
            return "float16"
        raise StartupFailure([
            "ValueError: Bfloat16 is only supported on GPUs with compute capability of at least 8.0. Your %s GPU "
            "has compute capability %s. You can use float16 instead by explicitly setting the `dtype` flag in CLI, "
            "for example: --dtype=half." % (device.name, cc)])

    def check_free(self):
        if self.profile.startup_free_check == "none" or self.uses_v0():
            return
        total = self.total_bytes()
        requested = math.ceil(total * self.utilization)
        for rank, index in enumerate(self.claim.indices):
            free = self.ledger.free_mib(index) * MIB
            if free >= requested:
                continue
            where = "cuda:%d " % rank if self.profile.startup_free_check == "device" else ""
            raise StartupFailure([
                "ValueError: Free memory on device %s(%s/%s GiB) on startup is less than desired GPU memory "
                "utilization (%s, %s GiB). Decrease GPU memory utilization or reduce GPU memory used by other "
                "processes." % (where, _gib(free), _gib(total), self.utilization, _gib(requested))])

    def _grow(self, target_mib, torch_before_mib):
        """Grow to `target_mib` per GPU in CHUNKS pieces; a torch OOM error on the first piece that fails."""
        start = self.held_mib()
        step = max(1, math.ceil((target_mib - start) / CHUNKS))
        held = start
        while held < target_mib:
            piece = min(step, target_mib - held)
            try:
                self.claim.set_each(held + piece)
            except OutOfMemory as oom:
                raise StartupFailure([torch_oom_message(self.ledger, oom.index, self.claim.pid, piece,
                                                        torch_before_mib + held - start)]) from None
            held += piece

    def load_weights(self):
        self._grow(self.context_mib + self.weights_mib, 0)
        self.mapped["weights"] = self.weights_mib

    def size_kv_cache(self, max_model_len):
        """Size the KV cache as the release does, refuse what does not fit, then grow to the final footprint."""
        total = self.total_bytes()
        own = self.context_mib + self.weights_mib
        if self.profile.startup_free_check == "none" or self.uses_v0():
            index = self.claim.indices[0]
            used_on_device = (self.ledger.devices[index].idle_reserved_mib + self.ledger.used_mib(index)) * MIB
            available = int(total * self.utilization - used_on_device - self.activation_mib * MIB)
        else:
            available = int(math.ceil(total * self.utilization) - (self.weights_mib + self.activation_mib) * MIB)
        self.log("INFO", "Available KV cache memory: %.2f GiB" % (available / GIB), "gpu_worker.py")
        if self.facts is not None:
            self._check_kv(available, max_model_len)
        kv_mib = max(0, available // MIB)
        self._grow(own + self.activation_mib + kv_mib, self.weights_mib)
        self.kv_mib = kv_mib
        self.footprint_mib = self.held_mib()
        self.mapped = self.awake_sizes()
        if self.facts is not None:
            self.kv_tokens = self.facts.tokens_in(kv_mib * MIB, self.tensor_parallel)
            self.log("INFO", "GPU KV cache size: {:,} tokens".format(self.kv_tokens), "kv_cache_utils.py")
            self.log("INFO", "Maximum concurrency for %d tokens per request: %.2fx"
                     % (max_model_len, self.kv_tokens / max(1, max_model_len)), "kv_cache_utils.py")

    def _check_kv(self, available, max_model_len):
        style = self.profile.kv_error_style
        docs = " See https://docs.vllm.ai/en/latest/configuration/conserving_memory/ for more details."
        if available <= 0:
            if style in ("0.8", "0.9.1") or self.uses_v0():
                message = ("No available memory for the cache blocks. Try increasing `gpu_memory_utilization` when "
                           "initializing the engine.")
            elif style == "0.22":
                message = ("No available memory for the cache blocks. Try increasing `gpu_memory_utilization` when "
                           "initializing the engine (this flag also controls CPU memory reservation on the CPU "
                           "backend, despite its name)." + docs)
            else:
                message = ("No available memory for the cache blocks. Try increasing `gpu_memory_utilization` when "
                           "initializing the engine." + docs)
            raise StartupFailure(["ValueError: " + message])
        needed = self.facts.kv_bytes_for(max_model_len, self.tensor_parallel)
        if needed <= available:
            return
        estimate = self.facts.tokens_in(available, self.tensor_parallel)
        if self.uses_v0():
            raise StartupFailure([
                "ValueError: The model's max seq len (%d) is larger than the maximum number of tokens that can be "
                "stored in KV cache (%d). Try increasing `gpu_memory_utilization` or decreasing `max_model_len` when "
                "initializing the engine." % (max_model_len, estimate)])
        if style == "0.8":
            estimated = " Based on the available memory," if estimate > 0 else ""
            message = ("To serve at least one request with the models's max seq len (%d), (%.2f GiB KV cache is "
                       "needed, which is larger than the available KV cache memory (%.2f GiB).%s  Try increasing "
                       "`gpu_memory_utilization` or decreasing `max_model_len` when initializing the engine."
                       % (max_model_len, needed / GIB, available / GIB, estimated))
        elif style in ("0.9.1", "0.13"):
            estimated = ("Based on the available memory, the estimated maximum model length is %d." % estimate
                         if estimate > 0 else "")
            message = ("To serve at least one request with the models's max seq len (%d), (%.2f GiB KV cache is "
                       "needed, which is larger than the available KV cache memory (%.2f GiB). %s Try increasing "
                       "`gpu_memory_utilization` or decreasing `max_model_len` when initializing the engine."
                       % (max_model_len, needed / GIB, available / GIB, estimated))
            if style == "0.13":
                message += docs
        else:
            estimated = ("Based on the available memory, the estimated maximum model length is %d. " % estimate
                         if estimate > 0 else "")
            whose, remark = ("model's", " (which also controls CPU memory on the CPU backend)") \
                if style == "0.22" else ("models's", "")
            message = ("To serve at least one request with the %s max seq len (%d), (%s GiB KV cache is needed, "
                       "which is larger than the available KV cache memory (%s GiB). %sTry increasing "
                       "`gpu_memory_utilization`%s or decreasing `max_model_len` when initializing the engine."
                       % (whose, max_model_len, _gib(needed), _gib(available), estimated, remark)) + docs
        raise StartupFailure(["ValueError: " + message])

    # ------------------------------------------------------------------ sleep mode
    def awake_sizes(self):
        """MiB per tag that sleeping unmaps: the weights, and everything else above the residue ("kv_cache")."""
        kept = min(self.footprint_mib, self.residue_mib)
        weights = min(self.weights_mib, self.footprint_mib - kept)
        return {"weights": weights, "kv_cache": max(0, self.footprint_mib - kept - weights)}

    def sleep(self, level):
        """Unmap the tagged memory (weights go to host RAM at level 1); returns (freed MiB, still used MiB).
        Releases whose weights were loaded outside the sleep-mode pool (0.14 .. 0.16) keep them on the GPU."""
        before = self.held_mib()
        if getattr(self.profile, "sleep_keeps_weights", False):
            kept = self.mapped["weights"]
            self.host_weights_mib = 0
            self.mapped = {"weights": kept, "kv_cache": 0}
            target = min(before, self.residue_mib + kept)
            self.claim.set_each(target)
            return before - target, target
        self.host_weights_mib = self.mapped["weights"] if level == 1 else 0
        self.mapped = {"weights": 0, "kv_cache": 0}
        target = min(before, self.residue_mib)
        self.claim.set_each(target)
        return before - target, target

    def wake(self, tags):
        """Map `tags` again, chunk by chunk; WakeFailure (the cumem message) when a chunk does not fit."""
        full = self.awake_sizes()
        for tag in tags:
            size = full[tag]
            step = max(1, math.ceil(size / CHUNKS))
            while self.mapped[tag] < size:
                piece = min(step, size - self.mapped[tag])
                try:
                    self.claim.set_each(self.held_mib() + piece)
                except OutOfMemory:
                    raise WakeFailure(CUMEM_OOM) from None
                self.mapped[tag] += piece
            if tag == "weights":
                self.host_weights_mib = 0
