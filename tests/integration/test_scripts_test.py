"""scripts/test fails a stage that tested nothing: no test collected, no runner, no scenario.

The script runs from a scratch checkout holding only itself and a link to this checkout's .venv, so each
stage finds its tool but nothing to run.
"""

import os
import pathlib
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture
def scratch(tmp_path):
    (tmp_path / "scripts").mkdir()
    shutil.copy2(ROOT / "scripts" / "test", tmp_path / "scripts" / "test")
    os.symlink(ROOT / ".venv", tmp_path / ".venv")
    (tmp_path / "ansible.cfg").write_text("[defaults]\n")
    return tmp_path


def run(checkout, *args):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "ANSIBLE_"))}
    return subprocess.run([str(checkout / "scripts" / "test"), *args], cwd=checkout, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def test_pytest_stage_that_collects_nothing_fails(scratch):
    (scratch / "test_nothing.py").write_text('"""No tests here."""\n')
    result = run(scratch, "pytest", "-p", "no:cacheprovider", "test_nothing.py")
    assert result.returncode != 0
    assert "no tests collected: nothing was tested" in result.stderr
    assert "pytest           FAILED (exit 5)" in result.stdout


def test_kubernetes_core_stage_without_its_runner_fails(scratch):
    result = run(scratch, "kubernetes-core")
    assert result.returncode != 0
    assert "tests/kubernetes_core/run is missing" in result.stderr


def test_molecule_stage_without_any_scenario_fails(scratch):
    (scratch / "roles" / "plain" / "tasks").mkdir(parents=True)
    everything = run(scratch, "molecule")
    assert everything.returncode != 0 and "no scenario ran: nothing was tested" in everything.stderr
    named = run(scratch, "molecule", "roles/plain")
    assert named.returncode != 0 and "roles/plain has no molecule scenario" in named.stderr


def test_a_stage_that_runs_tests_passes(scratch):
    (scratch / "test_one.py").write_text("def test_one():\n    assert 1 + 1 == 2\n")
    result = run(scratch, "pytest", "-p", "no:cacheprovider", "test_one.py")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
