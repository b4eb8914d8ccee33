"""The worked examples of roles/vllm/README.md: each is valid for the role's argument spec and expands
without a problem, so the README cannot drift from what the role accepts."""

import pathlib
import re

import pytest
import yaml

from ansible_collections.baremetal.gpu.plugins.module_utils import catalog

ROOT = pathlib.Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles" / "vllm"
README = (ROLE / "README.md").read_text()
DEFAULTS = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
ENTRY_SPEC = yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text())[
    "argument_specs"]["main"]["options"]["vllm_catalog"]["options"]


def worked_examples():
    """{title: variables} for every ```yaml block under '## Worked examples'."""
    section = README.split("## Worked examples", 1)[1]
    out = {}
    for title, body in re.findall(r"^### (.+?)\n(.*?)(?=^### |\Z)", section, flags=re.M | re.S):
        (block,) = re.findall(r"```yaml\n(.*?)```", body, flags=re.S)
        out[title.strip()] = yaml.safe_load(block)
    return out


EXAMPLES = worked_examples()


def test_there_is_one_worked_example_per_reference_deployment():
    assert len(EXAMPLES) == 5
    assert [t.split(" (")[0] for t in EXAMPLES] == [
        "Home lab: two models taking turns on an RTX 3060",
        "Datacenter speech recognition on two GPUs",
        "Datacenter text to speech with a start-up bootstrap",
        "Two speech services on one time-sliced T4 on EKS",
        "Speech recognition on a workstation, with a smaller fallback",
    ]


@pytest.mark.parametrize("title", sorted(EXAMPLES))
def test_each_worked_example_is_valid_and_expands(title):
    variables = EXAMPLES[title]
    assert catalog.spec_errors(variables["vllm_catalog"], ENTRY_SPEC) == []
    assert set(variables) - {"gpu_modes"} <= set(DEFAULTS), "a knob the role does not have"
    settings = catalog.settings_from_vars(dict(DEFAULTS, **variables))
    # gpu_modes is the GPU node's own variable; the role gathers it from the gpu_nodes hosts
    settings["gpu_nodes"] = [{"name": "gpu-node", "modes": variables["gpu_modes"]}] if "gpu_modes" in variables else []
    the_plan = catalog.plan(variables["vllm_catalog"], settings)
    assert [w["name"] for w in the_plan["workloads"]] == [e["name"] for e in variables["vllm_catalog"]]
