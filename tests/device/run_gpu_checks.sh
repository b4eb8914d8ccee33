#!/usr/bin/env bash
# gpu_facts and vllm_compat on a real NVIDIA machine (issue 5): NVML and nvidia-smi must agree.
#
# Run from the repository root on a machine with an NVIDIA GPU and Python 3.12 (no network needed):
#   OUT=/some/dir bash tests/device/run_gpu_checks.sh
# nvidia-ml-py must be importable (tests/device/run_all.sh installs the wheels of .whl/ into PYTHONPATH).
# Works without Ansible (module_utils called directly, PYTHONPATH=.collections); when ansible is
# importable it also runs `ansible localhost -m baremetal.gpu.gpu_facts` for both backends.
#
# Writes under $OUT (default ./device-out), three files:
#   gpu-facts.json    facts by NVML, by nvidia-smi and by the Ansible module, their differences, timings
#   vllm-compat.json  vllm_compat verdicts for every catalog model x several images on this node
#   nvidia-smi-q.xml  the raw `nvidia-smi -q -x` of this machine (a capture for tests/fixtures/gpu/)
# Exits non-zero when the two backends disagree or a step failed.
set -uo pipefail
OUT=${OUT:-$PWD/device-out}
mkdir -p "$OUT"
export OUT
export PYTHONPATH=".:.collections${PYTHONPATH:+:$PYTHONPATH}"
PYTHON=${PYTHON:-python3}

nvidia-smi -q -x > "$OUT/nvidia-smi-q.xml" 2>&1 || echo "nvidia-smi -q -x failed (rc $?)"

"$PYTHON" - <<'PY'
import json, os, shutil, subprocess, sys, time, traceback

OUT = os.environ["OUT"]
report = {"python": sys.version, "errors": []}
from ansible_collections.baremetal.gpu.plugins.module_utils import gpu, compat, models

try:
    import pynvml
    report["nvidia_ml_py"] = getattr(pynvml, "__version__", None) or "importable"
except ImportError as exc:
    report["nvidia_ml_py"] = None
    report["errors"].append("pynvml not importable: %s" % exc)


def timed(label, fn):
    start = time.perf_counter()
    try:
        value = fn()
    except Exception:  # keep going: every step's outcome goes into the report
        report["errors"].append("%s: %s" % (label, traceback.format_exc()))
        value = None
    report.setdefault("timings_s", {})[label] = round(time.perf_counter() - start, 4)
    return value


nvml = timed("gather_nvml", lambda: gpu.gather("nvml"))
smi = timed("gather_nvidia_smi", lambda: gpu.gather("nvidia_smi"))
auto = timed("gather_auto", lambda: gpu.gather("auto"))
report.update(nvml=nvml, nvidia_smi=smi, auto=auto)
if nvml and smi:
    report["diff_stable"] = gpu.compare_facts(nvml, smi)
    report["diff_volatile_64mib"] = gpu.compare_facts(nvml, smi, volatile_tolerance_mib=64)
    report["agree"] = not report["diff_stable"] and nvml["gpu_count"] == smi["gpu_count"] > 0
    print("NVML vs nvidia-smi: %s (%d GPUs, driver %s, CUDA %s)" % (
        "AGREE" if report["agree"] else "DIFFER %s" % report["diff_stable"], nvml["gpu_count"],
        nvml["driver_version"], nvml["cuda_driver_version"]))
    for card in nvml["gpus"]:
        print("  GPU %d %s cc %s %d MiB (reserved %s, used %s) brand %s class %s mig %s persistence %s" % (
            card["index"], card["name"], card["compute_capability"], card["memory_total_mib"],
            card["memory_reserved_mib"], card["memory_used_mib"], card["brand"], card["product_class"],
            card["mig_mode"], card["persistence_mode"]))
    if report["diff_volatile_64mib"]:
        print("  volatile differences: %s" % report["diff_volatile_64mib"])
else:
    report["agree"] = False

# The same through Ansible, when it is installed.
try:
    import ansible  # noqa: F401
    have_ansible = shutil.which("ansible") is not None
except ImportError:
    have_ansible = False
report["ansible"] = {}
if have_ansible:
    # ansible-core's own default callback, printing results as JSON (no ansible.posix needed)
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.abspath("ansible.cfg"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_STDOUT_CALLBACK="default", ANSIBLE_CALLBACK_RESULT_FORMAT="json")
    for backend in ("nvml", "nvidia_smi"):
        start = time.monotonic()
        proc = subprocess.run(["ansible", "localhost", "-m", "baremetal.gpu.gpu_facts", "-a", "backend=%s" % backend,
                               "-e", "ansible_python_interpreter=%s" % sys.executable],
                              capture_output=True, text=True, env=env, check=False)
        entry = {"rc": proc.returncode, "wall_s": round(time.monotonic() - start, 2)}
        try:
            result = json.loads(proc.stdout[proc.stdout.index("=>") + 2:])
            entry["facts"] = result.get("ansible_facts", {}).get("nvidia_gpu")
            if entry["facts"] and nvml:
                entry["diff_vs_direct_nvml"] = gpu.compare_facts(entry["facts"], nvml)
            if result.get("failed"):
                entry["msg"] = result.get("msg")
        except (ValueError, KeyError, IndexError) as exc:
            entry["error"] = "%s: %s %s" % (exc, proc.stdout[-2000:], proc.stderr[-2000:])
        report["ansible"][backend] = entry
        print("ansible -m baremetal.gpu.gpu_facts backend=%s: rc %s in %.2f s%s" % (
            backend, entry["rc"], entry["wall_s"],
            "" if not entry.get("diff_vs_direct_nvml") else " DIFF %s" % entry["diff_vs_direct_nvml"]))
else:
    report["ansible"] = None
    print("ansible not importable: module runs skipped")

with open(os.path.join(OUT, "gpu-facts.json"), "w") as handle:
    json.dump(report, handle, indent=1, sort_keys=True)

# vllm_compat for every catalog model on this node.
node = nvml if nvml and nvml.get("gpus") else smi
images = ["vllm/vllm-openai:v0.8.5.post1", "vllm/vllm-openai:v0.15.1", "vllm/vllm-openai:v0.20.0",
          "vllm/vllm-openai:v%s" % compat.data.VLLM_RELEASES[-1]]
rows, start = [], time.perf_counter()
if node:
    for image in images:
        for entry in models.MODELS:
            request = {"name": entry["name"], "max_model_len": min(8192, entry["max_position_embeddings"]),
                       "tensor_parallel_size": 1}
            try:
                result = compat.check(image, node, request)
                rows.append({"image": image, "model": entry["name"], "verdict": result["verdict"],
                             "image_cuda": result["image_cuda"], "driver_cuda": result["driver_cuda"],
                             "kv_capacity_tokens": (result["memory"] or {}).get("kv_capacity_tokens"),
                             "reasons": [dict(code=r["code"], severity=r["severity"], fix=r["fix"])
                                         for r in result["reasons"]]})
            except Exception:
                rows.append({"image": image, "model": entry["name"], "error": traceback.format_exc()})
elapsed = time.perf_counter() - start
counts = {}
for row in rows:
    counts[row.get("verdict", "error")] = counts.get(row.get("verdict", "error"), 0) + 1
with open(os.path.join(OUT, "vllm-compat.json"), "w") as handle:
    json.dump({"node": node, "images": images, "elapsed_s": round(elapsed, 4), "counts": counts, "rows": rows},
              handle, indent=1, sort_keys=True)
print("vllm_compat: %d verdicts in %.3f s: %s" % (len(rows), elapsed, counts))
for row in rows:
    if row["model"] in ("Qwen/Qwen3-8B-AWQ", "meta-llama/Llama-3.1-70B-Instruct") and "verdict" in row:
        print("  %-32s %-36s %s %s" % (row["image"], row["model"], row["verdict"],
                                       ",".join(r["code"] for r in row["reasons"] if r["severity"] != "info") or "-"))
if report["errors"]:
    print("errors:\n" + "\n".join(report["errors"]))
failed = (not report["agree"]) or bool(report["errors"]) or "error" in counts or any(
    (e or {}).get("rc") not in (0, None) or (e or {}).get("diff_vs_direct_nvml") for e in (report["ansible"] or {}).values())
sys.exit(1 if failed else 0)
PY
rc=$?
echo "run_gpu_checks: exit $rc; files:" "$OUT"/*
exit $rc
