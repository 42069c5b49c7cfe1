"""The tutorial notebooks in tutorials/: committed with the outputs of a full run, and runnable end to end.

Each notebook reads ``RUOTOOLS_QUICK`` in its first code cell; with ``RUOTOOLS_QUICK=1`` it trains for a few
epochs on small subsets, so all of them execute here in about two minutes (on a copy, in a temporary directory).
"""

import re
import shutil
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

TUTORIALS = Path(__file__).resolve().parents[1] / "tutorials"
NOTEBOOKS = sorted(TUTORIALS.glob("*.ipynb"))
IDS = [path.stem for path in NOTEBOOKS]
#: seconds a single cell may take in quick mode (the slowest takes a few seconds)
CELL_TIMEOUT = 300
#: packages a notebook may import that are not dependencies of ruotools (scvelo: the `test` extra; cellrank: its own
#: extra, tested in the second venv of .ci/run), the notebook is skipped without them
OPTIONAL = ("scvelo", "cellrank")


def _code(nb) -> list[str]:
    return [cell.source for cell in nb.cells if cell.cell_type == "code"]


def test_the_tutorial_list():
    assert IDS == ["01_quickstart", "02_hematopoiesis", "03_raw_anndata", "04_practical_guide", "05_interpretation"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_committed_with_outputs_of_a_full_run(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert 'os.environ.get("RUOTOOLS_QUICK") == "1"' in code[0].source, "the first code cell reads RUOTOOLS_QUICK"
    counts = [cell.execution_count for cell in code]
    assert counts == list(range(1, len(code) + 1)), "executed top to bottom, every cell once"
    outputs = [out for cell in code for out in cell.outputs]
    assert not [out for out in outputs if out.output_type == "error"]
    first = "".join(out.get("text", "") for out in code[0].outputs)
    assert "quick mode: False" in first, "the committed outputs come from a full run (RUOTOOLS_QUICK unset)"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_runs_in_quick_mode(path, tmp_path, monkeypatch):
    nb = nbformat.read(path, as_version=4)
    source = "\n".join(_code(nb))
    for module in OPTIONAL:
        if re.search(rf"^\s*import {module}\b", source, flags=re.MULTILINE):
            pytest.importorskip(module)
    copy = tmp_path / path.name
    shutil.copy(path, copy)
    nb = nbformat.read(copy, as_version=4)
    # the kernel inherits this environment: quick mode, one thread, matplotlib's inline backend
    monkeypatch.setenv("RUOTOOLS_QUICK", "1")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.delenv("MPLBACKEND", raising=False)
    client = nbclient.NotebookClient(
        nb, timeout=CELL_TIMEOUT, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()  # raises CellExecutionError, with the failing cell and its traceback, on any error
    setup = next(cell for cell in nb.cells if cell.cell_type == "code")
    assert "quick mode: True" in "".join(out.get("text", "") for out in setup.outputs)
    outputs = [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs]
    assert not [out for out in outputs if out.output_type == "error"]
