"""The checkout is the collection: it resolves from a fresh clone, and its built tarball works the same way."""

import json
import tarfile

import pytest

from tests.harness.ansible_cli import ROOT, run_tool as ansible


def collection_modules():
    return sorted(p.stem for p in (ROOT / "plugins" / "modules").glob("*.py") if p.stem != "__init__")


@pytest.mark.parametrize("playbook", ["site.yml", "gpu-mode.yml", "playbooks/site.yml", "playbooks/gpu_mode.yml"])
def test_playbooks_pass_syntax_check(playbook):
    ansible("ansible-playbook", "--syntax-check", playbook)


def test_checkout_resolves_as_baremetal_gpu():
    listed = json.loads(ansible("ansible-doc", "-t", "module", "-l", "baremetal.gpu", "-j").stdout)
    assert sorted(name.split(".")[-1] for name in listed) == collection_modules()
    role = json.loads(ansible("ansible-doc", "-t", "role", "-j", "baremetal.gpu.common").stdout)
    assert "common_packages" in role["baremetal.gpu.common"]["entry_points"]["main"]["options"]


def test_gpu_mode_refuses_a_missing_or_malformed_mode_before_reaching_any_node():
    # the home lab's worker is not reachable from here: these refusals happen on the controller, first
    result = ansible("ansible-playbook", "gpu-mode.yml", "-i", "inventories/homelab/hosts.yml", check=False)
    assert result.returncode != 0
    assert "No mode given: pass -e mode=NAME" in result.stdout and "gpu-mode list" in result.stdout
    assert "changed=0" in result.stdout and "unreachable=0" in result.stdout
    result = ansible("ansible-playbook", "gpu-mode.yml", "-i", "inventories/homelab/hosts.yml", "-e", "mode=R1!",
                     check=False)
    assert result.returncode != 0
    assert "is not a mode name (lower case letters, digits and -)" in " ".join(result.stdout.split())
    assert "the modes ml, r1, off" in " ".join(result.stdout.split())  # the inventory's, as a hint
    assert "changed=0" in result.stdout and "unreachable=0" in result.stdout


@pytest.fixture(scope="module")
def built_collection(tmp_path_factory):
    out = tmp_path_factory.mktemp("build")
    ansible("ansible-galaxy", "collection", "build", "--output-path", str(out), str(ROOT))
    (tarball,) = out.glob("baremetal-gpu-*.tar.gz")
    return tarball


def test_tarball_holds_the_collection_and_nothing_local(built_collection):
    with tarfile.open(built_collection) as tar:
        names = set(tar.getnames())
    assert {"MANIFEST.json", "FILES.json", "playbooks/site.yml", "roles/common/tasks/main.yml",
            "meta/runtime.yml"} <= names
    local = [n for n in names if n.split("/")[0] in {".venv", ".collections", ".git", "build", ".ci"}]
    assert local == []


def test_installed_tarball_works_like_the_checkout(built_collection, tmp_path):
    installed = tmp_path / "collections"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    # away from this checkout's ansible.cfg, which would make the checkout itself answer
    env = {"ANSIBLE_COLLECTIONS_PATH": str(installed), "ANSIBLE_CONFIG": str(tmp_path / "none.cfg")}
    ansible("ansible-galaxy", "collection", "install", "--offline", "--no-deps", "-p", str(installed),
            str(built_collection), cwd=elsewhere, env=env)
    assert (installed / "ansible_collections" / "baremetal" / "gpu" / "MANIFEST.json").is_file()
    listed = json.loads(ansible("ansible-doc", "-t", "module", "-l", "baremetal.gpu", "-j",
                                cwd=elsewhere, env=env).stdout)
    assert sorted(name.split(".")[-1] for name in listed) == collection_modules()
    for playbook in ("baremetal.gpu.site", "baremetal.gpu.gpu_mode"):
        ansible("ansible-playbook", "-i", "localhost,", "--syntax-check", playbook, cwd=elsewhere, env=env)


def test_site_refuses_to_turn_the_controller_into_a_gpu_node(tmp_path):
    # a GPU node reached with a local connection, none of its node stages skipped (inventories/local skips them)
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(json.dumps({"all": {"children": {"gpu_nodes": {"hosts": {"workstation": {
        "ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}"}}}}}}))
    result = ansible("ansible-playbook", "site.yml", "-i", str(inventory), check=False)
    assert result.returncode != 0
    out = " ".join(result.stdout.split())
    assert "this run would install NVIDIA drivers and k3s on the machine running Ansible" in out
    assert "Nothing was changed." in out
    assert "changed=0" in result.stdout
