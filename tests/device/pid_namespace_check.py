"""On a real NVIDIA machine: what NVML shows to a caller in its own PID namespace (a pod without hostPID)
while another process holds GPU memory, against a caller in the host's namespace.

    PYTHONPATH=.:.collections python3 tests/device/pid_namespace_check.py --out pidns.json

The gpu-mode switcher (and the router pod that runs it) maps NVML's processes to pods through
/proc/<pid>/cgroup: this records whether those processes and their memory are visible at all from a
separate PID namespace (`unshare --pid --fork --mount-proc`, as a container without hostPID is), using the
collection's own NVML reader (module_utils/gpu.py). Needs root (unshare).
"""

import argparse
import json
import os
import subprocess
import sys

from release_check import facts, start_holder

READ = ("import json, sys; sys.path[:0] = ['.', '.collections']\n"
        "from ansible_collections.baremetal.gpu.plugins.module_utils import gpu\n"
        "g = gpu.gather('nvml')['gpus'][0]\n"
        "print(json.dumps({'used_mib': g['memory_used_mib'], 'processes': g.get('processes'), 'own_pid': __import__('os').getpid()}))\n")


def read_in_new_namespace():
    run = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", sys.executable, "-c", READ],
                         capture_output=True, text=True, timeout=60, check=False, cwd=os.getcwd(),
                         env=dict(os.environ))
    if run.returncode != 0:
        return {"error": run.stderr[-2000:]}
    return json.loads(run.stdout)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    holder = start_holder(4)
    try:
        out = {"holder_pid": holder.pid, "host_namespace": facts(), "own_pid_namespace": read_in_new_namespace()}
    finally:
        holder.terminate()
        holder.wait(timeout=30)
    with open(args.out, "w") as handle:
        json.dump(out, handle, indent=2, sort_keys=True)
    print(json.dumps(out, indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
