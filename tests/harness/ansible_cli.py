"""Run the real Ansible command-line tools from tests, the way users run them.

Tests hand the simulated world to Ansible the way a user would hand a real one: a kubeconfig path
(``KUBECONFIG`` / ``K8S_AUTH_KUBECONFIG``), a registry address in extra vars, an inventory file.
"""

import json
import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
BIN = pathlib.Path(sys.executable).parent


class AnsibleFailed(AssertionError):
    """A command exited non-zero where the test expected success."""


def run_tool(tool, *args, cwd=ROOT, env=None, check=True, timeout=300):
    """Run an Ansible CLI tool of this venv (ansible, ansible-playbook, ansible-doc, ...)."""
    full_env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1",
                "ANSIBLE_FORCE_COLOR": "0", **(env or {})}
    result = subprocess.run([str(BIN / tool), *map(str, args)], cwd=cwd, env=full_env, capture_output=True,
                            text=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        raise AnsibleFailed(f"{tool} {' '.join(map(str, args))} exited {result.returncode}:\n"
                            f"{result.stdout}\n{result.stderr}")
    return result


def kube_env(kubeconfig):
    """Environment that points kubectl, the kubernetes client and kubernetes.core at one cluster."""
    return {"KUBECONFIG": str(kubeconfig), "K8S_AUTH_KUBECONFIG": str(kubeconfig)}


def ansible_playbook(playbook, *args, extra_vars=None, inventory=None, env=None, check=True, timeout=300):
    """ansible-playbook PLAYBOOK; extra_vars travel as one JSON document (-e @file semantics, no quoting)."""
    cmd = [playbook, *args]
    if inventory is not None:
        cmd += ["-i", inventory]
    if extra_vars:
        cmd += ["-e", json.dumps(extra_vars)]
    return run_tool("ansible-playbook", *cmd, env=env, check=check, timeout=timeout)


def ansible_module(module, module_args=None, *, check_mode=False, diff=False, env=None, timeout=300):
    """Run one module on localhost through ``ansible`` and return its parsed result.

    Uses the ``ansible.posix.json`` callback so the result is the module's own JSON, as Ansible saw it.
    """
    cmd = ["localhost", "-m", module]
    if module_args:  # an empty "-a {}" is taken as raw parameters, which most modules refuse
        cmd += ["-a", json.dumps(module_args)]
    if check_mode:
        cmd.append("--check")
    if diff:
        cmd.append("--diff")
    result = run_tool("ansible", *cmd, check=False, timeout=timeout,
                      env={"ANSIBLE_LOAD_CALLBACK_PLUGINS": "1", "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
                           **(env or {})})
    try:
        document = json.loads(result.stdout)
    except ValueError as exc:
        raise AnsibleFailed(f"ansible -m {module} printed no JSON ({result.returncode}):\n"
                            f"{result.stdout}\n{result.stderr}") from exc
    (play,) = document["plays"]
    (task,) = play["tasks"]
    return task["hosts"]["localhost"]
