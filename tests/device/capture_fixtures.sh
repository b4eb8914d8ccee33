#!/usr/bin/env bash
# Capture, on the real NVIDIA machine, what the gpu_facts and driver tests replay: NVML's answers,
# `nvidia-smi -q -x`, the compute capabilities, /proc/modules and /proc/driver/nvidia/version, all within
# a second of each other on an idle GPU, so that tests/integration/test_gpu_facts_module.py can compare
# NVML against nvidia-smi on real data (test_real_nvml_and_nvidia_smi_agree_on_the_h100).
#
# Run from the repository root on the GPU machine, with nothing running on the GPU:
#   bash tests/device/capture_fixtures.sh [DEST]
# DEST defaults to tests/fixtures/gpu/h100-80gb-driver-580.159.04 (the machine the fixtures describe; the
# script refuses another GPU or driver unless DEST is given). Files written there, and copied to $OUT
# when it is set (so they come back from the device machine):
#   nvml-capture.txt                NVML, in the format tests/fixtures/gpu/fake-nvml/fake_nvml.c replays
#   nvidia-smi-q.xml                nvidia-smi -q -x
#   compute-cap.csv                 nvidia-smi --query-gpu=index,compute_cap --format=csv,noheader
#   proc-modules.txt                /proc/modules
#   proc-driver-nvidia-version.txt  /proc/driver/nvidia/version
# GPU UUIDs become GPU-00000000-0000-0000-0000-00000000000<index> and serial numbers zeros, in every file.
# nvidia-ml-py must be importable (bash tests/device/run_all.sh installs the wheels of .whl/ into
# /tmp/site, which this script adds to PYTHONPATH when present). Exits non-zero, writing nothing, when a
# process uses the GPU or a command fails.
set -euo pipefail
EXPECTED_DIR=tests/fixtures/gpu/h100-80gb-driver-580.159.04
DEST=${1:-$EXPECTED_DIR}
PYTHON=${PYTHON:-python3}
[ -d /tmp/site ] && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
export DEST EXPECTED_DIR
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export WORK=$work

"$PYTHON" - <<'PY'
import os
import re
import subprocess
import sys

try:
    import pynvml
except ImportError as exc:
    sys.exit("capture: nvidia-ml-py is not importable (%s); run bash tests/device/run_all.sh first or "
             "pip install nvidia-ml-py" % exc)

WORK, DEST, EXPECTED_DIR = os.environ["WORK"], os.environ["DEST"], os.environ["EXPECTED_DIR"]


def text(value):
    return value.decode() if isinstance(value, bytes) else value


def optional(call, *args):
    try:
        return call(*args)
    except pynvml.NVMLError:
        return None


pynvml.nvmlInit()
try:
    driver = text(pynvml.nvmlSystemGetDriverVersion())
    count = pynvml.nvmlDeviceGetCount()
    lines = ["init_error 0", "driver_version %s" % driver,
             "cuda_version %d" % pynvml.nvmlSystemGetCudaDriverVersion_v2(), "device_count %d" % count]
    uuids = {}
    for i in range(count):
        handle = pynvml.nvmlDeviceGetHandleByIndex(i)
        uuids[text(pynvml.nvmlDeviceGetUUID(handle))] = "GPU-00000000-0000-0000-0000-%012d" % i
        busy = (optional(pynvml.nvmlDeviceGetComputeRunningProcesses, handle) or []) + \
            (optional(pynvml.nvmlDeviceGetGraphicsRunningProcesses, handle) or [])
        if busy:
            sys.exit("capture: GPU %d is in use by PIDs %s; stop them first (the capture must be of an idle GPU)"
                     % (i, ", ".join(str(p.pid) for p in busy)))
        memory = pynvml.nvmlDeviceGetMemoryInfo(handle, pynvml.nvmlMemory_v2)
        mig = optional(pynvml.nvmlDeviceGetMigMode, handle)
        major, minor = pynvml.nvmlDeviceGetCudaComputeCapability(handle)
        lines += [
            "gpu%d.name %s" % (i, text(pynvml.nvmlDeviceGetName(handle))),
            "gpu%d.uuid %s" % (i, uuids[text(pynvml.nvmlDeviceGetUUID(handle))]),
            "gpu%d.bus_id %s" % (i, text(pynvml.nvmlDeviceGetPciInfo(handle).busId)),
            "gpu%d.cc %d %d" % (i, major, minor),
            "gpu%d.memory %d %d %d %d" % (i, memory.total, memory.reserved, memory.free, memory.used),
            "gpu%d.mig %d" % (i, -1 if mig is None else mig[0]),
            "gpu%d.persistence %d" % (i, pynvml.nvmlDeviceGetPersistenceMode(handle)),
            "gpu%d.brand %d" % (i, pynvml.nvmlDeviceGetBrand(handle)),
            "gpu%d.arch %d" % (i, pynvml.nvmlDeviceGetArchitecture(handle)),
            "gpu%d.minor %d" % (i, pynvml.nvmlDeviceGetMinorNumber(handle)),
        ]
    names = [text(pynvml.nvmlDeviceGetName(pynvml.nvmlDeviceGetHandleByIndex(i))) for i in range(count)]
finally:
    pynvml.nvmlShutdown()

if DEST == EXPECTED_DIR and (driver != "580.159.04" or names != ["NVIDIA H100 80GB HBM3"]):
    sys.exit("capture: this machine has %s with driver %s, not the H100 with driver 580.159.04 that %s "
             "describes; give another DEST" % (", ".join(names), driver, EXPECTED_DIR))


def run(argv):
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


def anonymised(content):
    for real, zeroed in uuids.items():
        content = content.replace(real, zeroed)
    return re.sub(r"<serial>[^<]*</serial>", lambda m: "<serial>%s</serial>" % ("0" * 13), content)


files = {
    "nvml-capture.txt": "\n".join(lines) + "\n",
    "nvidia-smi-q.xml": run(["nvidia-smi", "-q", "-x"]),
    "compute-cap.csv": run(["nvidia-smi", "--query-gpu=index,compute_cap", "--format=csv,noheader"]),
    "proc-modules.txt": open("/proc/modules").read(),
    "proc-driver-nvidia-version.txt": open("/proc/driver/nvidia/version").read(),
}
for name, content in files.items():
    with open(os.path.join(WORK, name), "w") as handle:
        handle.write(anonymised(content))
print("capture: %d GPU(s), driver %s, idle; %s" % (count, driver, ", ".join(sorted(files))))
PY

mkdir -p "$DEST"
cp "$work"/* "$DEST"/
echo "capture: written to $DEST"
if [ -n "${OUT:-}" ]; then
  mkdir -p "$OUT/$(basename "$DEST")"
  cp "$work"/* "$OUT/$(basename "$DEST")"/
  echo "capture: copied to $OUT/$(basename "$DEST") (commit them under $EXPECTED_DIR)"
fi
