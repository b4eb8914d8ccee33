"""GPU memory ledger: the memory of one simulated node's GPUs, shared by the kubelet simulator (which
starts and reaps container processes) and the fake vLLM (which allocates, grows, shrinks on sleep).

What it models, from measurements on a real H100 (tests/fixtures/gpu/h100-80gb-driver-580.159.04/README.md) and
H200 (tests/fixtures/device/h200-2026-12-02/README.md):
- an idle GPU is not empty: the driver reserves memory (480 MiB on the H100), reported as NVML `reserved`;
- a process's memory is freed when the process has EXITED, not when its pod object is gone: 0.10-0.14 s after
  SIGTERM or SIGKILL (the process's own teardown, which the fake vLLM's shutdown time models), and at most
  0.02 s after its exit was reaped (the release delay here, RELEASE_DELAY, measured on the H200);
- an allocation fails when free memory is short (CUDA out of memory), so two servers that do not fit
  together cannot both start;
- a "stuck" fault keeps an exited process's memory (a zombie holding the device, a wedged driver).

The ledger can export itself in the format of the fake NVML library (tests/fixtures/gpu/fake-nvml), so that
`gpu_facts` or the gpu-mode release wait run "on" that node read the same numbers, and a `/proc`-like tree
(`proc/<pid>/cgroup`, `comm`, `cmdline`) that maps each GPU process to its pod as containerd's cgroups do.

Thread-safe: the kubelet's event loop and the fake vLLM's threads call it concurrently. Durations passed in
are real seconds (the simulator applies its time scale before handing them over).

    ledger = GpuLedger("gpu-node", [GpuDevice(0, total_mib=12288)], export_dir=tmp / "gpu-node")
    ledger.start_process(4242, "python3", pod_uid="...", container="vllm", gpus=[0])
    ledger.allocate(4242, 0, 10820)           # raises OutOfMemory when it does not fit
    ledger.exit_process(4242)                  # memory freed release_delay seconds later
    ledger.wait_until(lambda l: l.used_mib(0) == 0, timeout=2)
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

MIB = 1024 * 1024
# Seconds from a process's exit to its memory being free: at most 0.0205 s on the H200 (6 runs, 10 GiB held)
RELEASE_DELAY = 0.02

__all__ = ["GpuDevice", "GpuProcess", "GpuLedger", "GpuClaim", "OutOfMemory", "UnknownProcess", "PROFILES",
           "device_profile"]

# Device profiles of the GPUs the collection's examples run on (NVML figures). `idle_reserved_mib` is what
# the driver reserves with no process: measured 480 MiB on the H100, 615 MiB on the H200; the others are
# assumed.
PROFILES: Dict[str, Dict[str, object]] = {
    "NVIDIA-H100-80GB-HBM3": {"name": "NVIDIA H100 80GB HBM3", "total_mib": 81559, "idle_reserved_mib": 480,
                              "cc": (9, 0), "brand": 14, "arch": 9},
    "NVIDIA-H200": {"name": "NVIDIA H200", "total_mib": 143771, "idle_reserved_mib": 615, "cc": (9, 0), "brand": 14,
                    "arch": 9},
    "NVIDIA-GeForce-RTX-3060": {"name": "NVIDIA GeForce RTX 3060", "total_mib": 12288, "idle_reserved_mib": 250,
                                "cc": (8, 6), "brand": 5, "arch": 7},
    "Tesla-T4": {"name": "Tesla T4", "total_mib": 15360, "idle_reserved_mib": 260, "cc": (7, 5), "brand": 2,
                 "arch": 5},
}


def device_profile(product: str) -> Dict[str, object]:
    """The profile of a node label product name (`NVIDIA-GeForce-RTX-3060`), or a generic one."""
    return dict(PROFILES.get(product) or {"name": product.replace("-", " "), "total_mib": 16384,
                                          "idle_reserved_mib": 300, "cc": (8, 0), "brand": 2, "arch": 7})


class OutOfMemory(RuntimeError):
    """An allocation did not fit: CUDA would answer `out of memory`."""

    def __init__(self, index: int, wanted_mib: int, free_mib: int, total_mib: int) -> None:
        super().__init__(f"CUDA out of memory on GPU {index}: tried to allocate {wanted_mib} MiB, "
                         f"{free_mib} MiB free of {total_mib} MiB total")
        self.index, self.wanted_mib, self.free_mib, self.total_mib = index, wanted_mib, free_mib, total_mib


class UnknownProcess(KeyError):
    pass


@dataclass
class GpuDevice:
    index: int
    total_mib: int = 12288
    name: str = "NVIDIA GeForce RTX 3060"
    uuid: str = ""
    idle_reserved_mib: int = 250
    cc: Tuple[int, int] = (8, 6)
    brand: int = 5
    arch: int = 7

    def __post_init__(self) -> None:
        if not self.uuid:
            self.uuid = "GPU-%08x-0000-4000-8000-%012x" % (0x5EED0000 + self.index, self.index)


@dataclass
class GpuProcess:
    pid: int
    name: str
    pod_uid: str = ""
    container: str = ""
    container_id: str = ""
    qos: str = "burstable"
    cmdline: Sequence[str] = ()
    gpus: Sequence[int] = ()
    usage: Dict[int, int] = field(default_factory=dict)  # device index -> MiB held
    exited_at: Optional[float] = None  # monotonic time the process exited (memory still held until release)
    stuck: bool = False


class GpuLedger:
    def __init__(self, node: str, devices: Sequence[GpuDevice], release_delay: float = RELEASE_DELAY,
                 export_dir: Optional[os.PathLike] = None, driver_version: str = "570.195.03",
                 cuda_version: int = 12080, clock: Callable[[], float] = time.monotonic) -> None:
        self.node = node
        self.devices = {d.index: d for d in devices}
        self.release_delay = release_delay
        self.driver_version = driver_version
        self.cuda_version = cuda_version
        self.export_dir = Path(export_dir) if export_dir else None
        self.clock = clock
        self._processes: Dict[int, GpuProcess] = {}
        self._cond = threading.Condition(threading.RLock())
        self._timers: List[threading.Timer] = []
        # (monotonic time, event, pid, detail): allocations, resizes, exits and releases, for tests/benchmarks
        self.history: List[Tuple[float, str, int, str]] = []
        self._export()

    @classmethod
    def from_profile(cls, node: str, product: str, count: int = 1, **kwargs: object) -> "GpuLedger":
        """A ledger of `count` GPUs of one PROFILES product (`Tesla-T4`, `NVIDIA-GeForce-RTX-3060`, ...)."""
        p = device_profile(product)
        devices = [GpuDevice(i, total_mib=int(p["total_mib"]), name=str(p["name"]),
                             idle_reserved_mib=int(p["idle_reserved_mib"]), cc=tuple(p["cc"]),  # type: ignore
                             brand=int(p["brand"]), arch=int(p["arch"])) for i in range(count)]
        return cls(node, devices, **kwargs)  # type: ignore[arg-type]

    # ------------------------------------------------------------------ reads
    def total_mib(self, index: int) -> int:
        return self.devices[index].total_mib

    def used_mib(self, index: int) -> int:
        """Memory held by processes (live or exited but not yet released): NVML v2 `used`."""
        with self._cond:
            return sum(p.usage.get(index, 0) for p in self._processes.values())

    def reserved_mib(self, index: int) -> int:
        return self.devices[index].idle_reserved_mib

    def free_mib(self, index: int) -> int:
        d = self.devices[index]
        return d.total_mib - d.idle_reserved_mib - self.used_mib(index)

    def processes(self, index: Optional[int] = None) -> List[GpuProcess]:
        """Processes holding memory (on `index`, or anywhere), exited-but-unreleased ones included."""
        with self._cond:
            return [p for p in self._processes.values()
                    if (index is None and p.usage) or (index is not None and p.usage.get(index))]

    def process(self, pid: int) -> Optional[GpuProcess]:
        with self._cond:
            return self._processes.get(pid)

    def snapshot(self) -> Dict[int, Dict[str, object]]:
        with self._cond:
            return {i: {"total_mib": d.total_mib, "reserved_mib": d.idle_reserved_mib,
                        "used_mib": self.used_mib(i), "free_mib": self.free_mib(i),
                        "processes": [(p.pid, p.name, p.usage[i]) for p in self.processes(i)]}
                    for i, d in self.devices.items()}

    # ------------------------------------------------------------------ process lifecycle
    def start_process(self, pid: int, name: str, pod_uid: str = "", container: str = "", container_id: str = "",
                      gpus: Sequence[int] = (), cmdline: Sequence[str] = (), qos: str = "burstable") -> GpuProcess:
        """A container process that may use `gpus` (the devices the device plugin gave its pod)."""
        with self._cond:
            if pid in self._processes:
                raise ValueError(f"pid {pid} already exists on {self.node}")
            proc = GpuProcess(pid, name, pod_uid, container, container_id, qos, list(cmdline), list(gpus))
            self._processes[pid] = proc
            self._record("start", pid, name)
            self._export()
            return proc

    def allocate(self, pid: int, index: int, mib: int) -> None:
        """Grow `pid`'s memory on GPU `index` by `mib`; OutOfMemory when free memory is short."""
        with self._cond:
            proc = self._live(pid)
            self._check_device(proc, index)
            free = self.free_mib(index)
            if mib > free:
                raise OutOfMemory(index, mib, free, self.total_mib(index))
            proc.usage[index] = proc.usage.get(index, 0) + int(mib)
            self._record("allocate", pid, f"gpu{index} +{mib} MiB")
            self._changed()

    def set_usage(self, pid: int, index: int, mib: int) -> None:
        """Set `pid`'s memory on GPU `index` to `mib` (growing is checked like `allocate`; shrinking frees at
        once inside a live process, as cudaFree/empty_cache does: 9 ms measured on the H100)."""
        with self._cond:
            proc = self._live(pid)
            current = proc.usage.get(index, 0)
            if mib > current:
                self.allocate(pid, index, mib - current)
                return
            if mib == current:
                return
            if mib:
                proc.usage[index] = int(mib)
            else:
                proc.usage.pop(index, None)
            self._record("shrink", pid, f"gpu{index} {current} -> {mib} MiB")
            self._changed()

    def exit_process(self, pid: int) -> None:
        """The process exited: its memory is released `release_delay` seconds later (never, when stuck)."""
        with self._cond:
            proc = self._processes.get(pid)
            if proc is None or proc.exited_at is not None:
                return
            proc.exited_at = self.clock()
            self._record("exit", pid, proc.name)
            if not proc.usage:
                self._processes.pop(pid, None)
                self._changed()
                return
            self._changed()  # gone from /proc now; its memory stays until released
            if proc.stuck:
                return
            timer = threading.Timer(self.release_delay, self._release, (pid,))
            timer.daemon = True
            self._timers.append(timer)
            timer.start()

    def stick(self, pid: int, stuck: bool = True) -> None:
        """Fault: the memory of `pid` is never released after it exits (`stuck=False` releases it now if exited)."""
        with self._cond:
            proc = self._processes.get(pid)
            if proc is None:
                raise UnknownProcess(pid)
            proc.stuck = stuck
            if not stuck and proc.exited_at is not None:
                self._release(pid)

    def close(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()

    # ------------------------------------------------------------------ waiting (tests, benchmarks)
    def wait_until(self, predicate: Callable[["GpuLedger"], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate(self):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    def released_at(self, pid: int) -> Optional[float]:
        """Monotonic time the memory of `pid` was released, from the history."""
        for stamp, event, who, _detail in reversed(self.history):
            if who == pid and event == "release":
                return stamp
        return None

    # ------------------------------------------------------------------ internals
    def _live(self, pid: int) -> GpuProcess:
        proc = self._processes.get(pid)
        if proc is None:
            raise UnknownProcess(pid)
        if proc.exited_at is not None:
            raise ValueError(f"pid {pid} has exited")
        return proc

    def _check_device(self, proc: GpuProcess, index: int) -> None:
        if index not in self.devices:
            raise ValueError(f"no GPU {index} on {self.node}")
        if proc.gpus and index not in proc.gpus:
            raise ValueError(f"pid {proc.pid} was not given GPU {index} (it has {list(proc.gpus)})")

    def _release(self, pid: int) -> None:
        with self._cond:
            proc = self._processes.get(pid)
            if proc is None or proc.stuck:
                return
            self._processes.pop(pid, None)
            self._record("release", pid, ", ".join(f"gpu{i} {m} MiB" for i, m in sorted(proc.usage.items())))
            self._changed()

    def _record(self, event: str, pid: int, detail: str) -> None:
        self.history.append((self.clock(), event, pid, detail))

    def _changed(self) -> None:
        self._export()
        self._cond.notify_all()

    # ------------------------------------------------------------------ export for fake NVML and /proc
    def nvml_text(self) -> str:
        """The fake NVML library's data file (tests/fixtures/gpu/fake-nvml/fake_nvml.c) for this node."""
        lines = ["init_error 0", f"driver_version {self.driver_version}", f"cuda_version {self.cuda_version}",
                 f"device_count {len(self.devices)}"]
        for i, d in sorted(self.devices.items()):
            used = self.used_mib(i) * MIB
            reserved = d.idle_reserved_mib * MIB
            total = d.total_mib * MIB
            lines += [f"gpu{i}.name {d.name}", f"gpu{i}.uuid {d.uuid}", f"gpu{i}.bus_id 00000000:{i + 1:02X}:00.0",
                      f"gpu{i}.cc {d.cc[0]} {d.cc[1]}",
                      f"gpu{i}.memory {total} {reserved} {total - reserved - used} {used}",
                      f"gpu{i}.mig -1", f"gpu{i}.persistence 1", f"gpu{i}.brand {d.brand}", f"gpu{i}.arch {d.arch}",
                      f"gpu{i}.minor {i}"]
            for proc in self.processes(i):
                lines.append(f"gpu{i}.proc {proc.pid} {proc.usage[i] * MIB} {proc.name}")
        return "\n".join(lines) + "\n"

    def cgroup_line(self, proc: GpuProcess) -> str:
        """/proc/<pid>/cgroup of a container process under k3s (cgroup v2, cgroupfs driver)."""
        if not proc.pod_uid:
            return "0::/system.slice/%s.service\n" % proc.name
        return "0::/kubepods/%s/pod%s/%s\n" % (proc.qos, proc.pod_uid, proc.container_id or proc.container)

    def _export(self) -> None:
        if self.export_dir is None:
            return
        self.export_dir.mkdir(parents=True, exist_ok=True)
        _atomic_write(self.export_dir / "nvml.txt", self.nvml_text())
        proc_root = self.export_dir / "proc"
        proc_root.mkdir(exist_ok=True)
        live = {str(p.pid) for p in self._processes.values() if p.exited_at is None}
        for entry in proc_root.iterdir():
            if entry.name.isdigit() and entry.name not in live:
                for child in entry.iterdir():
                    child.unlink()
                entry.rmdir()
        for proc in self._processes.values():
            if proc.exited_at is not None:
                continue  # an exited process has no /proc entry, even while its memory is still held
            directory = proc_root / str(proc.pid)
            if directory.is_dir():
                continue
            directory.mkdir()
            _atomic_write(directory / "cgroup", self.cgroup_line(proc))
            _atomic_write(directory / "comm", proc.name + "\n")
            _atomic_write(directory / "cmdline", "\0".join(proc.cmdline or [proc.name]) + "\0")


@dataclass
class GpuClaim:
    """What a container process sees of the node's GPUs: its pid in the ledger and the device indices the
    device plugin gave its pod (several pods share one index under time-slicing). The kubelet creates it
    after `ledger.start_process(...)` and hands it to the program it starts (the fake vLLM); the program
    allocates through it and never calls `exit_process` (the kubelet does, once the process has exited)."""

    ledger: GpuLedger
    pid: int
    indices: List[int]

    def devices(self) -> List[GpuDevice]:
        return [self.ledger.devices[i] for i in self.indices]

    def total_mib(self) -> int:
        """Memory of one of the claimed GPUs (they are alike on a node)."""
        return self.ledger.total_mib(self.indices[0])

    def free_mib(self) -> int:
        """The smallest free memory over the claimed GPUs (what a tensor-parallel start must fit into)."""
        return min(self.ledger.free_mib(i) for i in self.indices)

    def used_by_me_mib(self) -> int:
        proc = self.ledger.process(self.pid)
        return max((proc.usage.get(i, 0) for i in self.indices), default=0) if proc else 0

    def set_each(self, mib: int) -> None:
        """Hold `mib` on every claimed GPU (grows are checked; OutOfMemory names the GPU that is short; a
        failed grow leaves earlier GPUs grown, as a partially initialised tensor-parallel group does)."""
        for index in self.indices:
            self.ledger.set_usage(self.pid, index, mib)


def _atomic_write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
