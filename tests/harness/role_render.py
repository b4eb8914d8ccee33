"""The vllm role's manifests as a user's run renders them: ``ansible-playbook`` with an inventory, through
the role's own ``render`` entry point (argument validation, the catalog filter, Ansible's template lookup),
read back as data. Tests and the deploy benchmark use this; nothing renders the templates another way.
"""

import json
import pathlib
import tempfile

from tests.harness.ansible_cli import ansible_playbook

ROOT = pathlib.Path(__file__).resolve().parents[2]
INVENTORIES = {
    "homelab": ROOT / "inventories" / "homelab",
    "homelab-standby": ROOT / "inventories" / "examples" / "homelab-standby",
    "datacenter-speech": ROOT / "inventories" / "examples" / "datacenter-speech",
    "t4-timesliced": ROOT / "inventories" / "examples" / "t4-timesliced",
    "workstation-asr-fallback": ROOT / "inventories" / "examples" / "workstation-asr-fallback",
}

PLAYBOOK = """---
- name: Render the vllm role's manifests for this inventory
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Render
      ansible.builtin.include_role:
        name: baremetal.gpu.vllm
        tasks_from: render
    - name: Hand plan and manifests back
      ansible.builtin.copy:
        content: "{{ {'plan': vllm_plan, 'manifests': vllm_manifests} | to_json }}"
        dest: "{{ role_render_out }}"
        mode: "0600"
      no_log: true
"""


class Rendered:
    """What one run rendered: the plan, the manifests, and the run itself (stdout for no_log checks)."""

    def __init__(self, plan, manifests, run):
        self.plan, self.manifests, self.run = plan, manifests, run

    def by_kind(self, kind):
        """{name: manifest} of one kind."""
        return dict((m["metadata"]["name"], m) for m in self.manifests if m["kind"] == kind)

    def workload(self, name):
        (found,) = [w for w in self.plan["workloads"] if w["name"] == name]
        return found


def render(inventory=None, extra_vars=None, check=True, timeout=300):
    """Render with ``-i <inventory>`` (a key of INVENTORIES or a path) and ``-e`` extra vars.

    With ``check=False`` a failing run is returned (``Rendered.run``) instead of raising.
    """
    inventory = INVENTORIES.get(inventory, inventory)
    with tempfile.TemporaryDirectory(prefix="role-render-") as tmp:
        playbook = pathlib.Path(tmp) / "render.yml"
        playbook.write_text(PLAYBOOK)
        out = pathlib.Path(tmp) / "rendered.json"
        run = ansible_playbook(playbook, inventory=str(inventory) if inventory else None,
                               extra_vars=dict(extra_vars or {}, role_render_out=str(out)), check=check,
                               timeout=timeout)
        if not out.exists():
            return Rendered(None, None, run)
        document = json.loads(out.read_text())
    return Rendered(document["plan"], document["manifests"], run)


KUBERNETES_VERSION = "1.32"  # k3s and kubectl of this project


def schema_errors(manifests, version=KUBERNETES_VERSION):
    """Every manifest checked against the Kubernetes OpenAPI schemas (strict: unknown fields are errors)."""
    import kubernetes_validate

    errors = []
    for manifest in manifests:
        try:
            kubernetes_validate.validate(manifest, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            errors.append("%s %s: %s at %s" % (manifest["kind"], manifest["metadata"]["name"], exc.message,
                                               "/".join(map(str, exc.path))))
    return errors


def pod_spec(deployment):
    return deployment["spec"]["template"]["spec"]


def main_container(deployment):
    (main,) = pod_spec(deployment)["containers"]
    return main


def flag_values(args):
    """``--flag value`` pairs of a container's args ({flag: value}; a flag without a value maps to True)."""
    out = {}
    for index, arg in enumerate(args):
        if arg.startswith("--"):
            following = args[index + 1] if index + 1 < len(args) else None
            out[arg] = following if following is not None and not following.startswith("--") else True
    return out
