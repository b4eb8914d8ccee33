"""On a real NVIDIA machine: does the gpu-mode release wait wait while memory is held, and notice the
release quickly once the holder exits (or, for sleep mode, frees all but its CUDA context)?

    PYTHONPATH=.:.collections python3 tests/device/release_check.py --out results.json

Uses tests/device/gpu_memory_holder.py (CUDA driver API through ctypes) as the holder and
plugins/module_utils/gpu_mode/release.py (the switcher's own code) as the waiter, in this process.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

from ansible_collections.baremetal.gpu.plugins.module_utils import gpu
from ansible_collections.baremetal.gpu.plugins.module_utils.gpu_mode import release

HERE = os.path.dirname(os.path.abspath(__file__))


def facts():
    data = gpu.gather("nvml")
    g = data["gpus"][0]
    return {"used_mib": g["memory_used_mib"], "reserved_mib": g.get("memory_reserved_mib"),
            "free_mib": g["memory_free_mib"], "processes": g.get("processes")}


def start_holder(gib):
    ready = os.path.join(tempfile.mkdtemp(prefix="holder-"), "ready")
    proc = subprocess.Popen([sys.executable, os.path.join(HERE, "gpu_memory_holder.py"), "--gib", str(gib),
                             "--ready", ready], stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not os.path.exists(ready):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("holder did not start: %s" % proc.stdout.read())
        time.sleep(0.01)
    return proc


def waiter(poller, before, keep_mib, timeout):
    box = {}

    def run():
        try:
            box["result"] = release.wait_released([], timeout, poller=poller, before=before, keep_mib=keep_mib)
        except release.ReleaseTimeout as exc:
            box["error"] = str(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, box


def exit_case(poller, sig, gib, hold_seconds):
    holder = start_holder(gib)
    held = facts()
    before = {0: {holder.pid: poller.processes(0).get(holder.pid)}}
    thread, box = waiter(poller, before, 0, 60)
    time.sleep(hold_seconds)  # the waiter must still be waiting after this
    still_waiting = thread.is_alive()
    signalled = time.monotonic()
    os.kill(holder.pid, sig)
    holder.wait()
    exited = time.monotonic()
    thread.join(70)
    out = {"signal": signal.Signals(sig).name, "gib": gib, "held": held, "still_waiting_after_s": hold_seconds,
           "still_waiting": still_waiting, "after": facts()}
    if "result" in box:
        seen = box["result"]["released_at"]
        out.update(signal_to_seen_s=round(seen - signalled, 4), exit_to_seen_s=round(seen - exited, 4),
                   polls=box["result"]["polls"])
    else:
        out["error"] = box.get("error")
    return out


def sleep_case(poller, gib):
    holder = start_holder(gib)
    held = facts()
    before = {0: {holder.pid: poller.processes(0).get(holder.pid)}}
    thread, box = waiter(poller, before, 1024, 60)
    time.sleep(1.0)
    still_waiting = thread.is_alive()
    signalled = time.monotonic()
    os.kill(holder.pid, signal.SIGUSR1)
    thread.join(70)
    after = facts()
    out = {"case": "free all but the CUDA context (sleep)", "gib": gib, "held": held, "after_free": after,
           "still_waiting": still_waiting}
    if "result" in box:
        out["signal_to_seen_s"] = round(box["result"]["released_at"] - signalled, 4)
    else:
        out["error"] = box.get("error")
    holder.terminate()
    holder.wait()
    out["after_exit"] = facts()
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--gib", type=float, default=10)
    args = parser.parse_args()
    results = {"idle": facts()}
    with release.NvmlPoller() as poller:
        results["sigterm"] = [exit_case(poller, signal.SIGTERM, args.gib, 2.0) for _trial in range(3)]
        results["sigkill"] = [exit_case(poller, signal.SIGKILL, args.gib, 1.0) for _trial in range(3)]
        results["sleep"] = sleep_case(poller, args.gib)
        started = time.perf_counter()
        for _poll in range(1000):
            poller.memory(0)
            poller.processes(0)
        results["poll_cost_ms"] = round((time.perf_counter() - started), 4)  # 1000 polls, seconds -> ms each
    with open(args.out, "w") as handle:
        json.dump(results, handle, indent=2)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
