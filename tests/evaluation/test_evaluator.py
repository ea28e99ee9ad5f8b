"""jaxhash.evaluation.evaluator: an Evaluator traces (and compiles) its encoder once across
evaluations of two states, and writes the report it returns."""

import json

import jax

from jaxhash import checkpoints, run_folder
from jaxhash.evaluation import Evaluator, report_dir


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
