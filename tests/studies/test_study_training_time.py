"""The study's training time from a run's log, across a resume."""

import json

import pytest

from studies.reproduce_cifar100 import training_time


def _log(path, lines):
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))


def test_training_time_sums_windows_across_a_resume(tmp_path):
    # One process logs steps 50 and 100 at 100 images/s (batch 10: 5 s a window), dies; the next
    # resumes from step 50's checkpoint, logs 100 again at 50 images/s, then 150;
    # evaluation lines count 0.
    _log(
        tmp_path / "metrics.jsonl",
        [
            {"step": 50, "loss": 1.0, "images_per_s": 100.0},
            {"step": 100, "loss": 1.0, "images_per_s": 100.0},
            {"step": 100, "mAP@250": 0.5},
            {"step": 100, "loss": 1.0, "images_per_s": 50.0},
            {"step": 150, "loss": 1.0, "images_per_s": 50.0},
        ],
    )
    got = training_time(tmp_path, batch_size=10, log_every=50)
    assert got["train_s"] == pytest.approx(5 + 5 + 10 + 10)
    assert got["median_images_per_s"] == pytest.approx(75.0)


def test_training_time_without_a_log_is_empty(tmp_path):
    assert training_time(tmp_path, batch_size=10, log_every=50) == {}
    _log(tmp_path / "metrics.jsonl", [{"step": 100, "mAP@250": 0.5}])
    assert training_time(tmp_path, batch_size=10, log_every=50) == {}
