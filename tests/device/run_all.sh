#!/usr/bin/env bash
# One batched run of every real-hardware check, on the lent NVIDIA machine (see README, "Real hardware").
# Run from the repository root there, with the wheels of ansible-core and its needs carried in .whl/:
#   bash tests/device/run_all.sh
# Writes everything under $OUT (default ./device-out); exits non-zero when any check failed.
set -uo pipefail
export OUT=${OUT:-$PWD/device-out}
mkdir -p "$OUT"
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || { echo "wheel install failed"; exit 1; }
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
  export PATH=/tmp/site/bin:$PATH
fi
{
  echo "## host"; uname -a; head -3 /etc/os-release
  echo "## nvidia-smi"; nvidia-smi --query-gpu=index,name,driver_version,memory.total,compute_cap --format=csv
  echo "## python"; python3 --version; python3 -c 'import ansible, pynvml; print("ansible", ansible.__version__ if hasattr(ansible, "__version__") else "?")' 2>&1
} > "$OUT/host.txt" 2>&1
cat "$OUT/host.txt"
rc=0
for check in tests/device/run_gpu_checks.sh tests/device/run_driver_verify.sh; do
  [ -f "$check" ] || { echo "missing $check"; rc=1; continue; }
  echo "===== $check"
  bash "$check" 2>&1 | tee "$OUT/$(basename "$check" .sh).log"
  status=${PIPESTATUS[0]}
  echo "===== $check exit $status"
  [ "$status" -eq 0 ] || rc=1
done
exit "$rc"
