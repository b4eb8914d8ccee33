# -*- coding: utf-8 -*-
# Copyright: baremetal.gpu maintainers
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Wait until the GPU memory of stopped pods is really released, polling NVML on the GPU node.

A pod object that is gone does not mean its GPU memory is free: the driver releases a process's memory
only after the process has exited (about 0.14 s after SIGTERM or SIGKILL on an H100), and a process that
hangs in its shutdown, or a zombie holding the device, keeps it. A model server started before that fails
("free memory on device ... is less than desired GPU memory utilization"). So the switcher waits for the
memory itself:

* NVML's compute processes are mapped to pods through ``/proc/<pid>/cgroup`` (containerd puts every
  container in a cgroup named after its pod's UID, with the cgroupfs and the systemd drivers alike);
* the wait is over when no process of the stopped pods is left on the GPUs they used, and each such GPU's
  used memory is back to what the remaining processes hold (plus a tolerance); before that, memory is
  still held by them, by an exited process the driver has not released yet, or by a zombie;
* NVML is initialised once and polled every ``interval`` seconds (one poll costs about 0.02 ms), so the
  release is noticed within one interval; a deadline bounds the wait and the error names what still holds
  memory.

``proc_root`` is where the host's ``/proc`` is (``/proc``, or e.g. ``/host/proc`` in a container that
mounts it).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
import time

try:
    import pynvml

    PYNVML_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - reported by the caller
    pynvml = None
    PYNVML_IMPORT_ERROR = exc

MIB = 1024 * 1024
DEFAULT_INTERVAL = 0.02
DEFAULT_TOLERANCE_MIB = 64
# nvmlMemory (v1, old drivers) counts the driver's reservation as used; v2 reports it apart.
V1_RESERVED_ALLOWANCE_MIB = 600

# pod UID in a container's cgroup path: .../pod<uid>/... (cgroupfs) or ...-pod<uid_with_underscores>.slice/...
# (systemd driver), cgroup v1 and v2 alike.
_POD_UID = re.compile(r"pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12})")


class ReleaseTimeout(Exception):
    """The memory was not released before the deadline; ``holders`` lists what still holds it."""

    def __init__(self, message, holders, result):
        self.holders = holders
        self.result = result
        super(ReleaseTimeout, self).__init__(message)


class NvmlUnavailable(Exception):
    """NVML cannot be used on this host (no pynvml, no driver)."""


def pod_uid_of_cgroup(text):
    """The pod UID in a ``/proc/<pid>/cgroup`` file's text, or None for a process outside any pod."""
    for line in (text or "").splitlines():
        match = _POD_UID.search(line)
        if match:
            return match.group(1).replace("_", "-")
    return None


def pod_uid_of_pid(pid, proc_root="/proc"):
    """The UID of the pod a process runs in; None when it runs in none, or has no /proc entry (exited, or
    in another PID namespace)."""
    try:
        with open(os.path.join(proc_root, str(pid), "cgroup")) as handle:
            return pod_uid_of_cgroup(handle.read())
    except (IOError, OSError):
        return None


def process_alive(pid, proc_root="/proc"):
    return os.path.isdir(os.path.join(proc_root, str(pid)))


def _name(nvml, pid):
    try:
        name = nvml.nvmlSystemGetProcessName(pid)
    except Exception:  # pylint: disable=broad-except  # NVMLError_NotFound for an exited process
        return None
    return name.decode("utf-8", "replace") if isinstance(name, bytes) else name


class NvmlPoller:
    """One NVML session: used memory and compute processes of the node's GPUs, cheaply and repeatedly."""

    def __init__(self, nvml=None):
        self.nvml = nvml or pynvml
        if self.nvml is None:
            raise NvmlUnavailable("pynvml (nvidia-ml-py) is not installed: %s" % PYNVML_IMPORT_ERROR)
        try:
            self.nvml.nvmlInit()
        except Exception as exc:  # pylint: disable=broad-except  # NVMLError_*: no library, driver not loaded
            raise NvmlUnavailable("NVML cannot start: %s" % exc)
        self.handles = [self.nvml.nvmlDeviceGetHandleByIndex(i) for i in range(self.nvml.nvmlDeviceGetCount())]
        self._v2 = getattr(self.nvml, "nvmlMemory_v2", None)

    def close(self):
        try:
            self.nvml.nvmlShutdown()
        except Exception:  # pylint: disable=broad-except
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def memory(self, index):
        """(used MiB, whether the driver's reservation is reported apart) of GPU ``index``."""
        handle = self.handles[index]
        if self._v2 is not None:
            try:
                mem = self.nvml.nvmlDeviceGetMemoryInfo(handle, self._v2)
                return int(mem.used) // MIB, True
            except Exception:  # pylint: disable=broad-except  # v2 not supported by this driver
                self._v2 = None
        mem = self.nvml.nvmlDeviceGetMemoryInfo(handle)
        return int(mem.used) // MIB, False

    def processes(self, index):
        """{pid: used MiB or None} of the compute processes on GPU ``index``."""
        out = {}
        for proc in self.nvml.nvmlDeviceGetComputeRunningProcesses(self.handles[index]) or []:
            used = getattr(proc, "usedGpuMemory", None)
            out[int(proc.pid)] = int(used) // MIB if used is not None else None
        return out

    def name(self, pid):
        return _name(self.nvml, pid)


def snapshot(poller, pod_uids, proc_root="/proc"):
    """Which GPUs the pods with ``pod_uids`` use, and their processes:
    ``{index: {pid: {"used_mib": MiB, "pod_uid": uid}}}`` (taken while they run: an exited process has no
    /proc entry left to say which pod it belonged to)."""
    wanted = set(pod_uids)
    found = {}
    for index in range(len(poller.handles)):
        for pid, used in poller.processes(index).items():
            uid = pod_uid_of_pid(pid, proc_root)
            if uid in wanted:
                found.setdefault(index, {})[pid] = {"used_mib": used, "pod_uid": uid}
    return found


def _normalize_before(before):
    """``snapshot()``'s result, or ``{index: {pid: MiB}}`` for processes outside any pod."""
    out = {}
    for index, procs in (before or {}).items():
        out[int(index)] = dict((int(pid), info if isinstance(info, dict) else {"used_mib": info, "pod_uid": None})
                               for pid, info in procs.items())
    return out


def keep_of(keep_mib, uid):
    """What a process of pod ``uid`` may keep: ``keep_mib`` is MiB for every pod, or ``{pod uid: MiB}``."""
    if isinstance(keep_mib, dict):
        return keep_mib.get(uid) or 0
    return keep_mib or 0


def _holders(poller, index, processes, old_pids, pod_uids, proc_root, keep_mib, tolerance_mib):
    """The processes on GPU ``index`` that keep the stopped pods' memory: theirs (beyond what they may keep, a
    sleeping server's residue), or exited ones the driver has not released. ``old_pids``: pid -> pod uid."""
    out = []
    for pid, used in sorted(processes.items()):
        uid = pod_uid_of_pid(pid, proc_root) or old_pids.get(pid)
        alive = process_alive(pid, proc_root)
        if pid not in old_pids and (uid is None or uid not in pod_uids):
            continue
        keep = keep_of(keep_mib, uid)
        if keep and alive and used is not None and used <= keep + tolerance_mib:
            continue  # a sleeping server down to what it keeps
        if keep and alive:
            why = "holds more than the %d MiB it may keep asleep" % keep
        else:
            why = "still running in a stopped pod" if alive else "exited, memory not released yet"
        out.append({"gpu": index, "pid": pid, "name": poller.name(pid), "used_mib": used,
                    "pod_uid": uid, "why": why})
    return out


def check_released(poller, gpus, old_pids, pod_uids, proc_root="/proc", tolerance_mib=DEFAULT_TOLERANCE_MIB,
                   keep_mib=0):
    """One poll: ``(released, per-GPU figures, holders)`` for the GPUs in ``gpus``."""
    figures = {}
    holders = []
    for index in gpus:
        processes = poller.processes(index)
        used, reserved_apart = poller.memory(index)
        mine = _holders(poller, index, processes, old_pids, pod_uids, proc_root, keep_mib, tolerance_mib)
        theirs = set(h["pid"] for h in mine)
        # what the remaining processes (sleepers keeping their residue included) legitimately hold
        others = sum(m or 0 for pid, m in processes.items() if pid not in theirs)
        allowance = tolerance_mib + (0 if reserved_apart else V1_RESERVED_ALLOWANCE_MIB)
        unaccounted = used - others
        figures[index] = {"used_mib": used, "others_mib": others, "unaccounted_mib": unaccounted,
                          "allowance_mib": allowance}
        holders.extend(mine)
        if not mine and unaccounted > allowance:
            holders.append({"gpu": index, "pid": None, "name": None, "used_mib": unaccounted, "pod_uid": None,
                            "why": "memory not attributed to any process (exited processes the driver has "
                                   "not released, or processes in another PID namespace)"})
    return not holders, figures, holders


def wait_released(pod_uids, timeout, poller=None, proc_root="/proc", interval=DEFAULT_INTERVAL,
                  tolerance_mib=DEFAULT_TOLERANCE_MIB, before=None, describe_pod=None, keep_mib=0,
                  clock=time.monotonic, sleep=time.sleep):
    """Wait until the GPU memory of the pods ``pod_uids`` (stopped or stopping) is released.

    ``keep_mib``: what each of their processes may keep (a server put to sleep keeps its CUDA context and
    graph pool), for every pod or as ``{pod uid: MiB}``; 0 means their processes must be gone.

    ``before``: a ``snapshot()`` taken while those pods still ran (which GPUs and pids they used); without
    one, every GPU of the node is watched and only processes still mapped to the pods count as theirs.
    ``describe_pod``: ``uid -> "namespace/name"`` for messages. Returns a result dict with ``elapsed``,
    ``polls``, ``released_at`` (``clock()`` at the poll that saw the release) and per-GPU figures; raises
    ReleaseTimeout naming the holders.
    """
    own = poller is None
    poller = poller or NvmlPoller()
    try:
        started = clock()
        deadline = started + float(timeout)
        pod_uids = set(pod_uids)
        before = _normalize_before(before)
        gpus = sorted(before) if before else list(range(len(poller.handles)))
        old_pids = dict((pid, info["pod_uid"]) for procs in before.values() for pid, info in procs.items())
        polls = 0
        while True:
            polls += 1
            released, figures, holders = check_released(poller, gpus, old_pids, pod_uids, proc_root, tolerance_mib,
                                                        keep_mib)
            now = clock()
            result = {"gpus": gpus, "polls": polls, "elapsed": round(now - started, 4), "figures": figures,
                      "before": before}
            if released:
                result["released_at"] = now
                return result
            if now >= deadline:
                lines = []
                for h in holders:
                    pod = (describe_pod or (lambda uid: uid))(h["pod_uid"]) if h["pod_uid"] else None
                    lines.append("GPU %s: %s%s%s MiB (%s)" % (
                        h["gpu"], "pid %s " % h["pid"] if h["pid"] else "",
                        "%s " % h["name"] if h["name"] else "", h["used_mib"] if h["used_mib"] is not None else "?",
                        h["why"] + (", pod %s" % pod if pod else "")))
                raise ReleaseTimeout("GPU memory of the stopped pods was not released within %.1f s: %s"
                                     % (float(timeout), "; ".join(lines)), holders, result)
            sleep(min(interval, max(0.0, deadline - now)))
    finally:
        if own:
            poller.close()
