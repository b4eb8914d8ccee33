#!/usr/bin/env bash
# Verify-only runs of the nvidia_driver role on a real GPU machine (issue 6), changing nothing.
#
# Run from the repository root as root, with ansible-core importable by python3 (e.g. on PYTHONPATH):
#   OUT=./device-out [EXPECTED_GPUS=1] [PYTHON=python3] tests/device/run_driver_verify.sh
#
# 1. branch 580, nvidia_driver_verify_only: true -> must succeed: the loaded 580 driver detected,
#    every GPU visible (gpu_facts), plan "none" (apt-installed) or "adopt" (installed outside apt),
#    no reboot requested, no change reported.
# 2. branch 570, verify-only -> must fail with the branch-change refusal.
# 3. branch 570, normal mode under --check -> must fail with the same refusal before any task that
#    changes something (check mode keeps the machine safe even if that were wrong).
# 4. branch 580, normal mode under --check --diff, packages and persistenced skipped -> informational:
#    what the role would manage on this node (pin, blacklist, state file), no reboot.
# Afterwards the files and package selections the role could touch are compared with a snapshot taken
# before run 1; any difference fails the script. Outputs go to $OUT. Exit status 0 only when runs 1-3
# and the no-change check meet their expectations.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT" || exit 2
OUT=${OUT:-./device-out}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
LOG="$OUT/driver-verify.log"
: >"$LOG"
say() { echo "$*" | tee -a "$LOG"; }
FAILED=0
fail() { say "EXPECTATION FAILED: $*"; FAILED=1; }

PY=${PYTHON:-$(command -v python3)}
if [ -z "$PY" ]; then echo "python3 not found" >&2; exit 2; fi

# ansible-playbook: on PATH, else the CLI module of the ansible-core importable by python3.
if command -v ansible-playbook >/dev/null 2>&1 && ansible-playbook --version >/dev/null 2>&1; then
  PLAYBOOK=(ansible-playbook)
elif "$PY" -c 'import ansible.cli.playbook' >/dev/null 2>&1; then
  PLAYBOOK=("$PY" -m ansible.cli.playbook)
else
  echo "ansible-core is not importable by $PY (PYTHONPATH=${PYTHONPATH:-})" >&2
  exit 2
fi
say "ansible: $("${PLAYBOOK[@]}" --version 2>&1 | head -1) via ${PLAYBOOK[*]}"

# The collection: .collections/ansible_collections/baremetal/gpu links to the checkout; recreate it
# in a temporary directory when the link did not travel.
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$WORK/collections/ansible_collections/baremetal"
ln -s "$ROOT" "$WORK/collections/ansible_collections/baremetal/gpu"
export ANSIBLE_CONFIG="$ROOT/ansible.cfg"
export ANSIBLE_COLLECTIONS_PATH="$WORK/collections"
export ANSIBLE_ROLES_PATH="$ROOT/roles"
export ANSIBLE_LOCAL_TEMP="$WORK/tmp" ANSIBLE_REMOTE_TEMP="$WORK/remote-tmp"
export ANSIBLE_NOCOLOR=1 ANSIBLE_FORCE_COLOR=0 ANSIBLE_RETRY_FILES_ENABLED=0
export ANSIBLE_STDOUT_CALLBACK=default ANSIBLE_CALLBACK_RESULT_FORMAT=yaml

cat >"$WORK/play.yml" <<'YAML'
- name: Run the nvidia_driver role on this machine
  hosts: localhost
  gather_facts: true
  tasks:
    - name: Apply the nvidia_driver role
      ansible.builtin.include_role:
        name: baremetal.gpu.nvidia_driver
  post_tasks:
    - name: Record the plan and the verification for the report (test instrumentation, not the role)
      ansible.builtin.copy:
        content: "{{ {'plan': nvidia_driver_plan, 'gpu_facts': nvidia_driver_gpu | default(None),
                      'nvidia_driver_ready': nvidia_driver_ready | default(None),
                      'nvidia_driver_reboot_required': nvidia_driver_reboot_required | default(None)} | to_nice_json }}"
        dest: "{{ record_to }}"
        mode: "0644"
      changed_when: false
      check_mode: false
YAML

# Snapshot of what the role could change, to prove nothing did.
snapshot() {
  {
    echo "## dpkg selections"; (dpkg --get-selections 2>/dev/null | grep -Ei 'nvidia|cuda' || true)
    echo "## rpm"
    if command -v rpm >/dev/null; then rpm -qa 2>/dev/null | grep -Ei 'nvidia|cuda' | sort; fi
    echo "## files"
    for path in /etc/apt/preferences.d /etc/apt/sources.list.d /etc/apt/keyrings /etc/modprobe.d \
                /etc/dracut.conf.d /etc/yum.repos.d /etc/baremetal-gpu /etc/dnf/plugins/versionlock.list; do
      if [ -e "$path" ]; then find "$path" -type f -exec sha256sum {} + 2>/dev/null | sort; fi
    done
    echo "## nvidia-persistenced"; (systemctl is-enabled nvidia-persistenced 2>&1 || true)
    echo "## loaded"; head -1 /proc/driver/nvidia/version 2>&1
  } >"$1"
}

run_play() {  # name, extra-vars JSON, ansible-playbook options...
  local name=$1 extra=$2; shift 2
  say ""
  say "=== $name: ${PLAYBOOK[*]} $* -e '$extra'"
  "${PLAYBOOK[@]}" -i localhost, -c local "$@" \
    -e "{\"ansible_python_interpreter\": \"$PY\", \"record_to\": \"$OUT/$name.json\"}" \
    -e "$extra" "$WORK/play.yml" >"$OUT/$name.log" 2>&1
  local rc=$?
  cat "$OUT/$name.log" >>"$LOG"
  say "=== $name: exit $rc"
  return $rc
}

flat() { tr -s ' \n' '  ' <"$OUT/$1.log"; }  # the log with its line wrapping undone
recap_changed() { sed -n 's/.*localhost *: .*changed=\([0-9]*\).*/\1/p' "$OUT/$1.log" | tail -1; }

say "host: $(hostname) | $(. /etc/os-release 2>/dev/null; echo "$PRETTY_NAME") | kernel $(uname -r)"
say "loaded: $(head -1 /proc/driver/nvidia/version 2>&1)"
say "nvidia-smi: $(nvidia-smi --query-gpu=index,name,driver_version --format=csv,noheader 2>&1 | tr '\n' ';')"
say "driver packages: $(dpkg-query -W -f='${Package}=${Version} ' 2>/dev/null | tr ' ' '\n' | grep -E '^(nvidia|libnvidia|cuda-drivers|linux-modules-nvidia)' | tr '\n' ' ')"
snapshot "$OUT/snapshot-before.txt"

# 1. The wanted branch is the loaded one: detected, verified, nothing changed, no reboot.
# EXPECTED_GPUS (optional) makes the role also check the number of GPUs.
EXPECT=""
[ -n "${EXPECTED_GPUS:-}" ] && EXPECT=", \"nvidia_driver_expected_gpu_count\": ${EXPECTED_GPUS}"
if run_play verify-580 "{\"nvidia_driver_branch\": \"580\", \"nvidia_driver_verify_only\": true${EXPECT}}"; then
  changed=$(recap_changed verify-580)
  [ "$changed" = "0" ] || fail "verify-580 reported changed=$changed"
  "$PY" - "$OUT/verify-580.json" <<'PY' 2>&1 | tee -a "$LOG" || FAILED=1
import json, sys
rec = json.load(open(sys.argv[1]))
plan, facts = rec["plan"], rec["gpu_facts"] or {}
checks = {
    "plan action is none or adopt": plan["plan"]["action"] in ("none", "adopt"),
    "loaded branch is 580": (plan["loaded"] or {}).get("branch") == "580",
    "no reboot requested": plan["reboot"]["required"] is False and rec["nvidia_driver_reboot_required"] in (False, "False"),
    "gpu_facts: module loaded": (facts.get("kernel_module") or {}).get("loaded") is True,
    "gpu_facts: driver 580": str(facts.get("driver_version", "")).startswith("580."),
    "gpu_facts: at least one GPU": int(facts.get("gpu_count") or 0) > 0,
    "driver ready": rec["nvidia_driver_ready"] in (True, "True"),
}
print("plan: %s | %s" % (plan["plan"]["action"], plan["plan"]["reason"]))
print("loaded: %s; installed: %s; GPUs: %s" % (plan["loaded"], plan["installed"]["version"],
      [g.get("name") for g in facts.get("gpus", [])]))
for name, ok in checks.items():
    print("%s: %s" % ("ok  " if ok else "FAIL", name))
sys.exit(0 if all(checks.values()) else 1)
PY
else
  fail "verify-580 failed (see $OUT/verify-580.log)"
fi

# 2. Another branch, verify-only: refused.
if run_play verify-570 '{"nvidia_driver_branch": "570", "nvidia_driver_verify_only": true}'; then
  fail "verify-570 succeeded; it must refuse branch 570 while 580 is loaded"
else
  flat verify-570 | grep -Eq "Driver branch 580 is (loaded|installed) but branch 570 \((open|proprietary) kernel module\) was asked for; refusing to change the driver" \
    || fail "verify-570 failed without the branch-change refusal"
fi

# 3. Another branch in normal mode (under --check as a safety net): refused before any change.
if run_play install-570-check '{"nvidia_driver_branch": "570"}' --check --diff; then
  fail "install-570-check succeeded; it must refuse branch 570 without nvidia_driver_allow_branch_change"
else
  flat install-570-check | grep -q "refusing to change the driver under running workloads" \
    || fail "install-570-check failed without the branch-change refusal"
  changed=$(recap_changed install-570-check)
  [ "${changed:-0}" = "0" ] || fail "install-570-check would have changed $changed things before refusing"
fi

# 4. Informational: what normal mode would manage here (no packages touched, no reboot).
run_play install-580-check '{"nvidia_driver_branch": "580"}' --check --diff \
  --skip-tags nvidia_driver_packages,nvidia_driver_persistenced || say "(informational run 4 exited non-zero)"
grep -q "Reboot into the new driver" "$OUT/install-580-check.log" && \
  grep -A2 "Reboot into the new driver" "$OUT/install-580-check.log" | grep -q "changed:" && \
  fail "install-580-check would reboot the node"

snapshot "$OUT/snapshot-after.txt"
if ! diff -u "$OUT/snapshot-before.txt" "$OUT/snapshot-after.txt" >"$OUT/snapshot.diff"; then
  fail "the machine changed during the runs: $(cat "$OUT/snapshot.diff")"
fi

say ""
if [ "$FAILED" = 0 ]; then say "RESULT: all expectations met"; else say "RESULT: expectations failed"; fi
exit "$FAILED"
