"""What the gpu_mode role carries to a node: the packed module_utils (roles/gpu_mode/files/gpu_mode_bundle.py)
and the pinned requirements of the node's virtualenv."""

import hashlib
import json
import pathlib
import re
import shutil
import subprocess
import sys
import tarfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "roles" / "gpu_mode" / "files" / "gpu_mode_bundle.py"
NODE_REQUIREMENTS = ROOT / "roles" / "gpu_mode" / "files" / "requirements.txt"


def pack(dest, *extra, source=ROOT / "plugins" / "module_utils"):
    run = subprocess.run([sys.executable, str(BUNDLE), "--collection-module-utils", str(source),
                          "--dest", str(dest), *extra], capture_output=True, text=True, check=True)
    return json.loads(run.stdout)


def test_the_archive_is_reproducible_and_an_unchanged_source_changes_nothing(tmp_path):
    first = pack(tmp_path / "a" / "lib.tar.gz")
    second = pack(tmp_path / "b" / "lib.tar.gz")
    assert first["changed"] and second["changed"]  # new files
    assert first["sha256"] == second["sha256"]
    assert (tmp_path / "a" / "lib.tar.gz").read_bytes() == (tmp_path / "b" / "lib.tar.gz").read_bytes()
    assert hashlib.sha256((tmp_path / "a" / "lib.tar.gz").read_bytes()).hexdigest() == first["sha256"]
    again = pack(tmp_path / "a" / "lib.tar.gz")
    assert again["changed"] is False and again["sha256"] == first["sha256"]
    checked = pack(tmp_path / "c" / "lib.tar.gz", "--check")
    assert checked["changed"] is True and not (tmp_path / "c" / "lib.tar.gz").exists()


def test_it_holds_every_module_util_as_python_source_and_ansibles_module_utils(tmp_path):
    source = tmp_path / "module_utils"
    shutil.copytree(ROOT / "plugins" / "module_utils", source, ignore=shutil.ignore_patterns("__pycache__"))
    (source / "gpu_mode" / "__pycache__").mkdir()
    (source / "gpu_mode" / "__pycache__" / "cli.cpython-312.pyc").write_bytes(b"byte code")
    (source / "notes.txt").write_text("not code")
    info = pack(tmp_path / "lib.tar.gz", source=source)
    with tarfile.open(tmp_path / "lib.tar.gz") as tar:
        members = dict((m.name, m) for m in tar.getmembers())
        stub = tar.extractfile("ansible/__init__.py").read().decode()
    files = set(name for name, m in members.items() if m.isfile())
    collection = set("ansible_collections/baremetal/gpu/plugins/module_utils/" + str(p.relative_to(
        ROOT / "plugins" / "module_utils")) for p in (ROOT / "plugins" / "module_utils").rglob("*.py")
        if "__pycache__" not in p.parts)
    assert collection <= files
    assert "ansible_collections/baremetal/gpu/plugins/module_utils/gpu_mode/cli.py" in files
    assert "ansible/module_utils/urls.py" in files  # health.py imports it
    assert not [name for name in files if not name.endswith(".py") or "__pycache__" in name]
    assert "extend_path" in stub and "__version__" in stub
    assert all(m.mtime == 0 and m.uid == 0 and m.gid == 0 for m in members.values())
    assert info["files"] == len(files)


@pytest.mark.skipif(not shutil.which("python3", path="/usr/bin"), reason="no system Python")
def test_the_unpacked_code_imports_with_a_python_that_has_no_ansible(tmp_path):
    """The node's virtualenv has no Ansible: everything the CLI imports from it must be in the archive."""
    system = "/usr/bin/python3"
    has_ansible = subprocess.run([system, "-I", "-c", "import ansible"], capture_output=True, check=False).returncode == 0
    if has_ansible:
        pytest.skip("the system Python has Ansible installed")
    pack(tmp_path / "lib.tar.gz")
    with tarfile.open(tmp_path / "lib.tar.gz") as tar:
        tar.extractall(tmp_path / "lib", filter="data")
    code = ("import sys; sys.path.insert(0, %r); "
            "from ansible_collections.baremetal.gpu.plugins.module_utils.gpu_mode import cli, switch, report; "
            "from ansible_collections.baremetal.gpu.plugins.module_utils import health; "
            "import ansible; print(ansible.__file__)") % str(tmp_path / "lib")
    run = subprocess.run([system, "-I", "-c", code], capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == str(tmp_path / "lib" / "ansible" / "__init__.py")


def pins(path):
    out = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.-]+)==(\S+)$", line.strip())
        if match:
            out[re.sub(r"[-_.]+", "-", match.group(1)).lower()] = match.group(2)
    return out


def test_the_nodes_packages_are_pinned_to_the_versions_the_collection_is_tested_with():
    node = pins(NODE_REQUIREMENTS)
    controller = pins(ROOT / "requirements.txt")
    assert {"kubernetes", "nvidia-ml-py"} <= set(node)
    assert dict((name, controller.get(name)) for name in node) == node


def test_a_wheel_directory_packs_flat_reproducibly_and_an_empty_one_is_refused(tmp_path):
    wheels = tmp_path / "cp311-manylinux_2_36_x86_64"
    wheels.mkdir()
    (wheels / "kubernetes-37.0.2-py2.py3-none-any.whl").write_bytes(b"PK\x03\x04 one")
    (wheels / "requirements.txt").write_text("kubernetes==37.0.2\n")
    (wheels / ".partial").write_text("left by an interrupted download")
    (wheels / "sub").mkdir()

    def pack_dir(dest):
        run = subprocess.run([sys.executable, str(BUNDLE), "--directory", str(wheels), "--dest", str(dest)],
                             capture_output=True, text=True, check=False)
        return run

    first = json.loads(pack_dir(tmp_path / "w.tar.gz").stdout)
    assert first["files"] == 2 and first["changed"] is True
    with tarfile.open(tmp_path / "w.tar.gz") as tar:
        assert sorted(tar.getnames()) == ["kubernetes-37.0.2-py2.py3-none-any.whl", "requirements.txt"]
        assert tar.extractfile("requirements.txt").read() == b"kubernetes==37.0.2\n"
    assert json.loads(pack_dir(tmp_path / "w.tar.gz").stdout)["changed"] is False
    (wheels / "requirements.txt").write_text("kubernetes==37.0.3\n")
    changed = json.loads(pack_dir(tmp_path / "w.tar.gz").stdout)
    assert changed["changed"] is True and changed["sha256"] != first["sha256"]
    for name in ("kubernetes-37.0.2-py2.py3-none-any.whl", "requirements.txt", ".partial"):
        (wheels / name).unlink()
    empty = pack_dir(tmp_path / "e.tar.gz")
    assert empty.returncode == 2 and "holds no file to pack" in empty.stderr
