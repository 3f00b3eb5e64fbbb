"""The notebooks run end to end in their fast mode (``QSAL_FAST=1``); any cell error fails.

Each notebook is executed with nbclient in a fresh ``python3`` kernel of this interpreter's
environment, from the ``notebooks/`` folder, on one CPU device (the suite's 8 simulated devices
are for the sharding tests). Nothing is written back to the notebook files.

Run alone: ``.venv/bin/python -m pytest -q tests/test_notebooks.py``: about 3.5 minutes on a busy
2-core machine (under 2 minutes of CPU time, most of it XLA compilation), hence ``slow``.
"""

from __future__ import annotations

import os
import pathlib
import re
import sys

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOKS = pathlib.Path(__file__).resolve().parent.parent / "notebooks"
NAMES = ("quickstart", "breed_toy", "ogas")
TIMEOUT_S = 600  # per cell


def set_kernel_env(monkeypatch, tmp_path) -> None:
    """The kernel inherits this process's environment: fast mode, one CPU device, this interpreter
    first on PATH, and temporary files (the fast-mode workdirs) under pytest's ``tmp_path``."""
    for name, value in dict(QSAL_FAST="1", XLA_FLAGS="", JAX_PLATFORMS="cpu", PYDEVD_DISABLE_FILE_VALIDATION="1",
                            TMPDIR=str(tmp_path)).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("PATH", os.pathsep.join([str(pathlib.Path(sys.executable).parent), os.environ.get("PATH", "")]))
    monkeypatch.delenv("QSAL_JAX_ROOT", raising=False)  # the notebooks find the checkout they sit in
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the notebooks choose inline plots


def test_every_notebook_is_listed():
    assert sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb")) == sorted(NAMES)


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_notebook_runs_in_fast_mode(name, monkeypatch, tmp_path):
    path = NOTEBOOKS / f"{name}.ipynb"
    nb = nbformat.read(path, as_version=4)
    set_kernel_env(monkeypatch, tmp_path)
    client = nbclient.NotebookClient(
        nb, timeout=TIMEOUT_S, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}
    )
    client.execute()  # raises CellExecutionError (with the cell and its traceback) on any error
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    outputs = [o for c in nb.cells for o in c.get("outputs", [])]
    assert "fast mode" in "".join(o.get("text", "") for o in outputs)  # the parameter cell saw QSAL_FAST
    # Figures reach the page (a library module that switches matplotlib to Agg would hide them).
    assert any("image/png" in o.get("data", {}) for o in outputs)


def _decimals(text: str) -> set[str]:
    return set(re.findall(r"(?<![\w.])\d+\.\d+(?![\w.])", text))


def _output_text(output) -> str:
    data = output.get("data", {})
    return output.get("text", "") + data.get("text/plain", "") + data.get("text/markdown", "")


@pytest.mark.parametrize("name", NAMES)
def test_markdown_hard_codes_no_result(name):
    """The committed notebook's prose carries no measured number: a decimal in a markdown cell
    must not be one its outputs print (unless the code or a config sets it: a setting), and no ratio claim
    ("1.4×") is written out; results are read from the printed tables."""
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    code = "".join(c.source for c in nb.cells if c.cell_type == "code")
    code += "".join(p.read_text() for p in (NOTEBOOKS.parent / "configs").glob("*.py"))
    printed = set().union(*(_decimals(_output_text(o)) for c in nb.cells for o in c.get("outputs", [])))
    assert printed, f"{name}: the committed notebook has no printed output (regenerate it)"
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        assert not re.search(r"\d\.\d+\s*×", cell.source), f"{name}: a ratio written into the text: {cell.source[:200]}"
        copied = {n for n in _decimals(cell.source) if n in printed and n not in code}
        assert not copied, f"{name}: markdown states printed numbers {sorted(copied)}: {cell.source[:200]}"
