"""README.md cannot drift: every command it shows is one a test or CI runs (and parses as it is written),
every snippet of YAML is the inventory it quotes or renders through the role it feeds, every module, filter
and role its diagram names exists, every file it links to is there. Its sample of ./scripts/try's output is
checked against the real output by tests/integration/test_first_try.py."""

import re
import shlex

import pytest
import yaml

from tests.harness.ansible_cli import ROOT, run_tool
from tests.harness.role_render import render

README = (ROOT / "README.md").read_text()
HOMELAB = yaml.safe_load((ROOT / "inventories" / "homelab" / "group_vars" / "all.yml").read_text())

# Each command line the README shows, and the file that runs exactly it (or the script/option it names).
RUN_BY = {
    "./scripts/setup": ".ci/run",
    "./scripts/test": ".ci/run",
    "./scripts/try": "tests/integration/test_first_try.py",
    "./scripts/test pytest tests/unit/test_compat_rules.py": "tests/unit/test_compat_rules.py",
    "./scripts/test pytest tests/integration/test_site_e2e.py": "tests/integration/test_site_e2e.py",
    "./scripts/test molecule roles/common": "roles/common/molecule/default/molecule.yml",
    "./scripts/test sanity --test validate-modules": "scripts/test",
}


def blocks(language):
    return re.findall(r"```%s\n(.*?)\n```" % language, README, re.S)


def commands():
    out = []
    for block in blocks("sh"):
        for line in block.splitlines():
            line = line.split("  #")[0].strip()
            if line and not line.startswith("#"):
                out.append(line)
    return out


def test_every_shell_command_is_known_and_run_somewhere():
    shown = commands()
    assert shown, "README.md shows no commands"
    for command in shown:
        argv = shlex.split(command)
        if argv[0] == "./scripts/fake-cluster":
            # every option it shows exists (tests/integration/test_fake_cluster_cmd.py runs the command)
            source = (ROOT / "tests" / "harness" / "fake_cluster.py").read_text()
            for option in [a for a in argv if a.startswith("--")]:
                assert '"%s"' % option in source, "fake-cluster has no option %s" % option
        elif argv[0] == "ansible-playbook":
            continue  # parsed by the next test
        else:
            assert command in RUN_BY, "README command %r: no test runs it (add it to RUN_BY)" % command
            runner = ROOT / RUN_BY[command]
            assert runner.is_file(), runner
            assert (ROOT / argv[0]).is_file(), argv[0]


@pytest.fixture(scope="module")
def vault_password(tmp_path_factory):
    path = tmp_path_factory.mktemp("vault") / "password"
    path.write_text("only-for-this-test\n")
    return path


@pytest.mark.parametrize("command", [c for c in commands() if c.startswith("ansible-playbook")])
def test_every_ansible_playbook_command_parses_as_written(command, vault_password):
    argv = shlex.split(command.replace("~/.vault-pass-homelab", str(vault_password)))
    assert argv[0] == "ansible-playbook"
    assert (ROOT / argv[1]).is_file(), argv[1]
    run = run_tool("ansible-playbook", *argv[1:], "--syntax-check", check=False)
    assert run.returncode == 0, run.stdout + run.stderr


def test_the_modes_shown_are_the_home_lab_inventory():
    (shown,) = [yaml.safe_load(b) for b in blocks("yaml") if b.startswith("gpu_modes:")]
    assert shown["gpu_modes"] == HOMELAB["gpu_modes"]


def test_the_model_added_renders_with_the_home_lab():
    (added,) = [yaml.safe_load(b) for b in blocks("yaml") if b.startswith("vllm_catalog:")]
    modes = dict(HOMELAB["gpu_modes"], **added["gpu_modes"])
    rendered = render("homelab", {"vllm_catalog": HOMELAB["vllm_catalog"] + added["vllm_catalog"],
                                  "gpu_modes": modes})
    workload = rendered.workload("qwen-small")
    assert workload["served_model_names"] == ["Qwen/Qwen3-4B-AWQ", "vllm-small"]
    assert workload["node"] == "k3s-gpu-worker" and workload["replicas"] is None  # mode-bound: the switcher's


def test_the_diagram_names_what_exists():
    """Every snake_case name in the diagram is a role, module, filter or stage of the collection, and every
    word after "role"/"roles" is a role."""
    from ansible_collections.baremetal.gpu.plugins.module_utils import site  # pylint: disable=import-outside-toplevel

    (diagram,) = [b for b in blocks("text") if "ansible-playbook site.yml" in b]
    roles = set(p.name for p in (ROOT / "roles").iterdir() if (p / "tasks" / "main.yml").is_file())
    modules = set(p.stem for p in (ROOT / "plugins" / "modules").glob("*.py"))
    filters = set(re.findall(r'"([a-z_0-9]+)": [a-z_0-9]+', " ".join(
        p.read_text() for p in (ROOT / "plugins" / "filter").glob("*.py"))))
    known = roles | modules | filters | set(site.STAGE_KEYS)
    for name in set(re.findall(r"\b[a-z0-9]+(?:_[a-z0-9]+)+\b", diagram)):
        assert name in known, "the diagram names %s, which the collection does not have" % name
    for group in re.findall(r"\broles? ([a-z_0-9]+(?: \([a-z]+\))?(?:, [a-z_0-9]+(?: \([a-z]+\))?)*)", diagram):
        for name in group.split(", "):
            assert name.split(" (")[0] in roles, "no role %s" % name


def test_every_linked_file_exists():
    for target in re.findall(r"\]\(((?:docs|roles|inventories)/[^)#]+)\)", README):
        assert (ROOT / target).exists(), target
    for path in re.findall(r"`((?:roles|inventories|docs|tests|scripts|plugins)/[\w./-]+)`", README):
        assert (ROOT / path).exists() or list(ROOT.glob(path)), path
