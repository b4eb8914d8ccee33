"""The nvidia_driver role's drain and uncordon steps, run by Ansible with the real kubectl against the
simulated cluster: a change is reported only when kubectl changed something.

The role runs ``k3s kubectl drain|uncordon <node>`` (``driver.drain_plan``); ``k3s kubectl`` is kubectl, so a
two-line ``k3s`` on PATH hands the arguments to the real kubectl, which talks to the fake API server through
the test's kubeconfig.
"""

import json
import os
import sys

import pytest

from tests.harness.ansible_cli import ansible_playbook, kube_env

pytestmark = [pytest.mark.kubectl, pytest.mark.slow]

PLAY = """
- name: Run one of the nvidia_driver role's k3s steps
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Run the step
      ansible.builtin.include_role:
        name: baremetal.gpu.nvidia_driver
        tasks_from: "{{ step }}"
"""


@pytest.fixture
def k3s_on_path(tmp_path, kubectl_bin):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    shim = bindir / "k3s"
    shim.write_text('#!/bin/sh\n[ "$1" = kubectl ] || exit 2\nshift\nexec %s "$@"\n' % kubectl_bin)
    shim.chmod(0o755)
    return bindir


def run_step(tmp_path, kubeconfig, k3s_on_path, step, node):
    play = tmp_path / "play.yml"
    play.write_text(PLAY)
    drain = ["k3s", "kubectl", "drain", node, "--ignore-daemonsets", "--delete-emptydir-data", "--timeout=60s"]
    plan = {"k3s": {"run_on": "self", "argv": drain, "uncordon_argv": ["k3s", "kubectl", "uncordon", node]}}
    env = dict(kube_env(kubeconfig), PATH="%s:%s" % (k3s_on_path, os.environ["PATH"]),
               ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_LOAD_CALLBACK_PLUGINS="1")
    run = ansible_playbook(str(play), "-i", "localhost,", "-c", "local",
                           extra_vars={"step": step, "nvidia_driver_plan": plan,
                                       "ansible_python_interpreter": sys.executable}, env=env)
    (task,) = [t for t in json.loads(run.stdout)["plays"][0]["tasks"] if t["task"]["name"] != "Run the step"]
    return task["hosts"]["localhost"]


def unschedulable(kube_api, node):
    return bool(kube_api.get("Node", node).get("spec", {}).get("unschedulable"))


def test_drain_and_uncordon_report_a_change_only_when_kubectl_made_one(tmp_path, kube_api, kubelet, kubeconfig,
                                                                       k3s_on_path):
    node = kubelet.nodes[0].name
    first = run_step(tmp_path, kubeconfig, k3s_on_path, "drain.yml", node)
    assert first["changed"] is True, first["stdout"]
    assert "node/%s cordoned" % node in first["stdout"] and unschedulable(kube_api, node)
    again = run_step(tmp_path, kubeconfig, k3s_on_path, "drain.yml", node)
    assert again["changed"] is False, again["stdout"]
    assert "already cordoned" in again["stdout"]

    uncordon = run_step(tmp_path, kubeconfig, k3s_on_path, "uncordon.yml", node)
    assert uncordon["changed"] is True and "node/%s uncordoned" % node in uncordon["stdout"]
    assert not unschedulable(kube_api, node)
    already = run_step(tmp_path, kubeconfig, k3s_on_path, "uncordon.yml", node)
    assert already["changed"] is False, already["stdout"]
    assert "already uncordoned" in already["stdout"]
