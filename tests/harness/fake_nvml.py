"""The NVML stand-in (tests/fixtures/gpu/fake-nvml/fake_nvml.c): a libnvidia-ml.so.1 that answers NVML's C API
from a data file, re-read on every call, so a simulated node's GPU memory ledger (its export) is what NVML says
there. nvidia-ml-py loads it unchanged when its directory is on LD_LIBRARY_PATH."""

import pathlib
import shutil
import subprocess

SOURCE = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "gpu" / "fake-nvml" / "fake_nvml.c"


class NoCompiler(RuntimeError):
    pass


def build(directory):
    """Compile the stand-in into ``directory``; returns the directory (for LD_LIBRARY_PATH)."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if not compiler:
        raise NoCompiler("no C compiler (cc or gcc) to build the NVML stand-in")
    directory = pathlib.Path(directory)
    subprocess.run([compiler, "-shared", "-fPIC", "-O1", "-o", str(directory / "libnvidia-ml.so.1"), str(SOURCE)],
                   check=True, capture_output=True)
    return directory


def environment(library_dir, data_file):
    """Environment of a process that should see ``data_file`` (a fixture's nvml.txt or a ledger's export) as
    its NVML."""
    return {"LD_LIBRARY_PATH": str(library_dir), "FAKE_NVML_DATA": str(data_file)}
