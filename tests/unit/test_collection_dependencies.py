"""galaxy.yml declares exactly the collections the shipped roles, playbooks and plugins use.

Every fully qualified name (module, filter, lookup, test) in the YAML and templates of roles/ and
playbooks/, and every ``ansible_collections.<namespace>.<name>`` import of plugins/, is collected; its
collection must be declared, and every declared collection must be used. Tests may use more
(kubernetes.core's targets, ansible.posix's json callback): they are not shipped dependencies, and
neither is a ``seealso`` pointing at another collection's documentation.
"""

import pathlib
import re

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
SHIPPED = ("roles", "playbooks", "plugins")
ALWAYS_THERE = {"ansible.builtin", "baremetal.gpu"}
FQCN = re.compile(r"(?<![\w./-])([a-z][a-z0-9_]*)\.([a-z][a-z0-9_]*)\.[a-z][a-z0-9_]*(?=[\s:('\"|]|$)")
PYTHON_IMPORT = re.compile(r"\bansible_collections\.([a-z][a-z0-9_]*)\.([a-z][a-z0-9_]*)\.")


def shipped_files():
    for top in SHIPPED:
        for path in sorted((ROOT / top).rglob("*")):
            if path.suffix in (".yml", ".yaml", ".j2", ".py") and "molecule" not in path.parts:
                yield path


def used_collections():
    used = {}
    for path in shipped_files():
        pattern = PYTHON_IMPORT if path.suffix == ".py" else FQCN
        for line in path.read_text().splitlines():
            for namespace, name in pattern.findall(line):
                used.setdefault("%s.%s" % (namespace, name), set()).add(str(path.relative_to(ROOT)))
    return used


def test_declared_dependencies_are_the_ones_used():
    declared = set((yaml.safe_load((ROOT / "galaxy.yml").read_text()).get("dependencies") or {}))
    used = used_collections()
    third_party = set(used) - ALWAYS_THERE
    # names such as "app.kubernetes.io" or "nvidia.com.gpu" are not collections: only namespaces that
    # Ansible collections use count (the ones a play could load modules or filters from)
    known_namespaces = {"ansible", "community", "kubernetes", "containers", "baremetal"}
    third_party = set(c for c in third_party if c.split(".")[0] in known_namespaces)
    assert third_party == declared, {c: sorted(used.get(c, [])) for c in third_party ^ declared}


def test_the_scan_sees_what_the_roles_use():
    used = used_collections()
    assert "roles/nvidia_driver/tasks/load.yml" in used["community.general"]  # community.general.modprobe
    assert "ansible.builtin" in used and "baremetal.gpu" in used
    assert "plugins/filter/container_toolkit.py" in used["baremetal.gpu"]  # its module_utils import
