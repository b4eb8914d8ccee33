"""The README's first try, `./scripts/try`, as a newcomer runs it from a fresh clone after setup: the whole of
site.yml against the simulated home lab (inventories/local), a switch to r1 and back, and nothing left behind
afterwards. Only the simulation's clock differs (--time-scale 0.05 instead of the default 0.2: the model loads
take a quarter of the time, which keeps CI within its budget; the sequence is the same). The lines the README
shows of its output must be in what it printed (README.md, the block after "What it prints"), so the README
cannot drift from what the command does."""

import os
import pathlib
import re
import subprocess

import pytest

from tests.harness.ansible_cli import ROOT

pytestmark = pytest.mark.slow


def readme_try_output():
    """The lines of the README's sample output of ./scripts/try (the console block after "What it prints")."""
    text = (ROOT / "README.md").read_text()
    match = re.search(r"What it prints[^\n]*\n+```console\n(.*?)\n```", text, re.S)
    assert match, "README.md has no console block after 'What it prints'"
    return [line for line in match.group(1).splitlines() if line.strip() and not line.startswith("...")]


def flat(text):
    return " ".join(text.split())


def leftovers(marker):
    """Processes whose command line mentions `marker` (the try's temporary directory)."""
    found = []
    for entry in pathlib.Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    found.append(entry.name)
            except OSError:
                pass
    return found


def test_first_try_runs_site_switches_and_back_and_cleans_up(tmp_path):
    env = dict(os.environ, TMPDIR=str(tmp_path))
    for variable in ("KUBECONFIG", "K8S_AUTH_KUBECONFIG", "BAREMETAL_GPU_LOCAL_SIM"):
        env.pop(variable, None)
    run = subprocess.run([str(ROOT / "scripts" / "try"), "--time-scale", "0.05"], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=900, check=False)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-6000:]
    text = flat(out)
    # the preflight: the working catalog, and the home lab's real mistake as a "what if" row with reason and fix
    assert re.search(r"k3s-gpu-worker ml vllm/vllm-openai:v0\.8\.5\.post1 ok 12\.4\.1/12\.8", text)
    assert re.search(r"k3s-gpu-worker r1 vllm/vllm-openai:v0\.8\.5\.post1 ok 12\.4\.1/12\.8", text)
    assert "WHAT IF (checked, never deployed): mode ml on v0.15.1, the newest vLLM image when the home lab" in text
    assert re.search(r"k3s-gpu-worker ml vllm/vllm-openai:v0\.15\.1 fail 12\.9\.1/12\.8 forward_compat_unsupported",
                     text)
    assert "Error 804: forward compatibility was attempted on non supported HW" in text
    assert "fix: use image vllm/vllm-openai:v0.11.0 (CUDA 12.8.1) or install NVIDIA driver >= 575.57.08" in text
    # the GPU the node-side steps saw is the simulated one, through the fake NVML library
    assert "k3s-gpu-worker: GPU facts gathered: driver 570.195.03, NVIDIA GeForce RTX 3060" in text
    # what was skipped on this machine, and why; the summary says what is simulated
    assert "skipped: driver: this machine has no NVIDIA driver" in text
    assert "SIMULATED: node k3s-gpu-worker is this machine" in text
    assert "active: ml (activated: none -> ml)" in text
    # the switch and back, and the node's own command in between, seeing the simulated GPU memory
    assert "node k3s-gpu-worker: ml -> r1 switched in" in text
    assert re.search(r"node k3s-gpu-worker mode r1 .* vllm-r1 awake 1/1 ready", text)
    assert re.search(r"GPU 0 NVIDIA GeForce RTX 3060: \d+ of 12288 MiB used", text)
    assert "node k3s-gpu-worker: r1 -> ml switched in" in text
    # the README shows what it prints
    for line in readme_try_output():
        pattern = re.escape(flat(line)).replace(r"<s>", r"[\d.]+").replace(r"<n>", r"\d+").replace(r"<dir>", r"\S+")
        assert re.search(pattern, text), "README line not printed by ./scripts/try: %r" % line
    # nothing left behind: the temporary directory, the simulated cluster's processes
    (sim,) = re.findall(r"try: cleaned up \(simulated cluster stopped, (\S+) removed\)", out)
    assert not pathlib.Path(sim).exists()
    assert list(tmp_path.iterdir()) == []
    assert leftovers(sim) == []
