"""jaxhash.run_folder: a trained run opens for inference with its parameters and batch
statistics only, encodes files without its training data, and runs of an earlier jaxhash
(checkpoints without saved inputs) still open."""

from __future__ import annotations

import json
import logging
import shutil

import jax
import numpy as np
import pytest
from PIL import Image

from jaxhash import checkpoints, image_index, run_folder
from jaxhash.evaluation import Evaluator
from jaxhash.run_folder import RunInputs, open_run


@pytest.fixture(scope="module")
def trained(quick_run):
    """The shared quick run (3 steps, checkpoints 1, 2 and 3), and the z of its evaluation split
    as the training set-up encodes them (``restore_run``: the whole state)."""
    workdir = quick_run[0]
    setup = run_folder.restore_run(checkpoints.saved_config(workdir), workdir)
    evaluator = Evaluator(setup.config, setup.info, setup.model, setup.mesh)
    z = evaluator.encode(setup.state.variables, setup.info.eval_split)[0]
    return workdir, setup, z


@pytest.fixture
def run_copy(quick_run_copy):
    """A copy of the trained run folder for a test to change."""
    return quick_run_copy


def _leaves(tree):
    return jax.tree_util.tree_leaves(jax.device_get(tree))


@pytest.mark.slow
def test_an_opened_run_encodes_as_the_trained_state(trained):
    """open_run gives the newest checkpoint's parameters and batch statistics, the saved
    inputs (those of the data set) and the same z as the whole restored state."""
    workdir, setup, z = trained
    run = open_run(workdir)
    assert run.step == 3 and set(run.variables) == {"params", "batch_stats"}
    assert run.inputs == RunInputs.of_info(setup.info)
    assert run.inputs.num_classes == 64 and run.inputs.image_size == 32
    for got, want in zip(_leaves(run.variables), _leaves(setup.state.variables), strict=True):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(run.encode_split()[0], z)


def test_inputs_round_trip_and_refuse_another_format(trained):
    inputs = RunInputs.of_info(trained[1].info)
    saved = json.loads(json.dumps(inputs.to_json()))
    assert saved["format"] == run_folder.INPUTS_FORMAT
    assert RunInputs.from_json(saved) == inputs
    with pytest.raises(ValueError, match="inputs are of format 99; this jaxhash reads format 1"):
        RunInputs.from_json({**saved, "format": 99})


@pytest.mark.slow
def test_evaluation_restores_no_optimiser_state(trained, run_copy):
    """A checkpoint holding no optimiser state at all opens and evaluates (orbax reads only
    the step, parameters and batch statistics); training cannot resume it and takes the
    older whole one."""
    import orbax.checkpoint as ocp

    _, setup, _ = trained
    state = setup.state
    halved = jax.tree_util.tree_map(lambda x: x / 2, state.params)
    partial = {"step": state.step + 1, "params": halved, "batch_stats": state.batch_stats}
    folder = run_copy / "checkpoints"
    with ocp.StandardCheckpointer() as checkpointer:
        checkpointer.save(folder / "4" / "state", partial)
    for item in ("config", "inputs"):
        shutil.copytree(folder / "3" / item, folder / "4" / item)

    run = open_run(run_copy)
    assert run.step == 4
    for got, want in zip(_leaves(run.variables["params"]), _leaves(halved), strict=True):
        np.testing.assert_array_equal(got, want)
    report = run.evaluate()
    assert report["step"] == 4 and (run_copy / "eval" / "step_4" / "report.json").is_file()
    assert run_folder.restore_run(run.config, run_copy).restored_step == 3


def _images(folder):
    rng = np.random.default_rng(1)
    folder.mkdir()
    for i, shape in enumerate([(40, 60, 3), (32, 32, 3), (90, 70, 3)]):
        Image.fromarray(rng.integers(0, 256, shape, np.uint8)).save(folder / f"img{i}.png")
    return folder


@pytest.mark.slow
def test_index_and_query_need_no_training_data(trained, tmp_path, monkeypatch):
    """With the data sets out of reach (opening one fails), a folder of files is indexed and
    queried with the run (``jaxhash index`` / ``query``), from what its checkpoints saved."""
    from jaxhash import data
    from jaxhash.data import sources

    workdir = trained[0]

    def no_data(*args, **kwargs):
        raise AssertionError("the training data set was opened")

    data.clear_caches()
    monkeypatch.setattr(sources, "_open", no_data)
    folder = _images(tmp_path / "photos")
    index, path = image_index.build_index(workdir, folder, tmp_path / "photos.npz")
    assert len(index) == 3 and index.step == 3 and index.bits == 16
    result = image_index.query_index(path, folder / "img1.png", k=2)
    same = [f for f, d in zip(result.files, result.distances, strict=True) if d == 0]
    assert folder / "img1.png" in same


@pytest.mark.slow
def test_a_run_without_saved_inputs_opens_through_its_data_set(trained, run_copy, caplog):
    """Checkpoints of an earlier jaxhash (no ``inputs`` item, none in their checksums) open as
    before, the inputs read from the data set, with the same codes."""
    _, setup, z = trained
    for step_dir in (run_copy / "checkpoints").iterdir():
        if step_dir.is_dir() and (step_dir / "inputs").is_dir():
            shutil.rmtree(step_dir / "inputs")
            record = json.loads((step_dir / checkpoints.CHECKSUMS).read_text())
            record["files"] = {
                name: digest
                for name, digest in record["files"].items()
                if not name.startswith("inputs/")
            }
            (step_dir / checkpoints.CHECKSUMS).write_text(json.dumps(record))
    assert checkpoints.saved_inputs(run_copy) is None
    with caplog.at_level(logging.INFO, logger="jaxhash.run_folder"):
        run = open_run(run_copy)
    assert "has no saved inputs" in caplog.text
    assert run.step == 3 and run.inputs == RunInputs.of_info(setup.info)
    np.testing.assert_array_equal(run.encode_split()[0], z)
