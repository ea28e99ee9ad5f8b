"""jaxhash.evaluation.evaluator: an Evaluator encodes a split as the one-off ``encode_split``
does, traces (and compiles) its encoder once across evaluations of two states, and writes the
report it returns."""

import json

import jax
import numpy as np
import pytest

from jaxhash import checkpoints, run_folder
from jaxhash.evaluation import Evaluator, report_dir
from jaxhash.evaluation.evaluator import encode_split


def test_the_evaluator_encodes_each_example_once_as_encode_split(quick_run):
    workdir = quick_run[0]
    setup = run_folder.restore_run(checkpoints.saved_config(workdir), workdir)
    evaluator = Evaluator(setup.config, setup.info, setup.model, setup.mesh)
    split = setup.info.eval_split
    z, labels, ids, _ = evaluator.encode(setup.state.variables, split)
    assert z.shape == (256, setup.config.model.bits) and len(labels) == 256
    assert sorted(np.asarray(ids).tolist()) == list(range(256))  # every example once
    alone = encode_split(setup.config, setup.model, setup.state.variables, setup.mesh, split)
    np.testing.assert_array_equal(alone[0], z)
    np.testing.assert_array_equal(alone[2], ids)


@pytest.mark.slow
def test_an_evaluator_compiles_its_encoder_once(quick_run, tmp_path):
    workdir = quick_run[0]
    setup = run_folder.restore_run(checkpoints.saved_config(workdir), workdir)
    traces = []

    class CountingModel:  # model.apply runs only while jit traces the encoder
        def apply(self, *args, **kwargs):
            traces.append(1)
            return setup.model.apply(*args, **kwargs)

    evaluator = Evaluator(setup.config, setup.info, CountingModel(), setup.mesh)
    first = evaluator.evaluate(setup.state, tmp_path)
    halved = setup.state.replace(params=jax.tree_util.tree_map(lambda x: x / 2, setup.state.params))
    second = evaluator.evaluate(halved, tmp_path)
    assert len(traces) == 1
    assert first["step"] == second["step"] == 3
    assert json.loads((report_dir(tmp_path, 3) / "report.json").read_text()) == second
