"""examples/quickstart.ipynb runs top to bottom (nbclient), so the notebook never rots."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # fresh processes that import jaxhash and train

nbclient = pytest.importorskip("nbclient", reason="nbclient is in the test extra")
nbformat = pytest.importorskip("nbformat", reason="nbformat is in the test extra")

NOTEBOOK = Path(__file__).resolve().parents[2] / "examples" / "quickstart.ipynb"


def test_quickstart_notebook_runs(tmp_path, monkeypatch):
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    assert not any(cell.get("outputs") for cell in notebook.cells if cell.cell_type == "code"), (
        "commit the notebook without outputs"
    )
    # Every cell runs as committed, except that the demo trains 40 steps instead of 1,200 (the
    # same data, model and evaluation): here the cells matter, not the codes' quality.
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    (train_cell,) = [cell for cell in code if "config_lib.demo_config()" in cell.source]
    train_cell.source = train_cell.source.replace(
        "config_lib.demo_config()\n",
        "config_lib.demo_config()\n"
        "config.train.steps, config.train.checkpoint_every = 40, 20\n"
        "config.optim.warmup_steps = 5\n",
    )
    assert "config.train.steps, " in train_cell.source
    # The kernel imports the checkout under test, whatever is installed.
    root = str(NOTEBOOK.parents[1])
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
    client = nbclient.NotebookClient(
        notebook,
        timeout=900,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()
    outputs = [output for cell in code for output in cell.outputs]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    # The results table: Hamming, cosine and random-code values on the mAHP@250 row.
    assert re.search(r"mAHP@250(\s+[01]\.\d{3}){3}", text), text
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 3, "the evaluation's pictures are shown"
    assert (tmp_path / "runs" / "notebook" / "checkpoints").is_dir()
    assert text.count(" -> ") >= 5  # five queries searched by Hamming distance
