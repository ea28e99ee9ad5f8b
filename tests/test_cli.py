"""The ``jaxhash`` command: repeated flags add up, failures are one line, the console is quiet."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from jaxhash import cli, console, train
from jaxhash.evaluation import report_dir

ROOT = Path(__file__).resolve().parents[1]
QUICK = f"{ROOT / 'configs' / 'demo.py'}:quick"


@pytest.fixture(autouse=True)
def console_restored():
    """``cli.main`` sets up the console's root handler and levels: undone after each test."""
    import logging

    root, own = logging.getLogger(), logging.getLogger("jaxhash")
    handlers, levels = list(root.handlers), (root.level, own.level)
    yield
    root.handlers[:] = handlers
    root.setLevel(levels[0])
    own.setLevel(levels[1])


@pytest.fixture
def no_training(monkeypatch):
    """``train.run`` replaced: records the config it gets (or raises ``raises``)."""
    calls = {}

    def run(config, workdir, **kwargs):
        if "raises" in calls:
            raise calls["raises"]
        calls["config"] = config
        return None, None

    monkeypatch.setattr(train, "run", run)
    return calls


def test_repeated_set_flags_add_up(no_training, tmp_path):
    argv = ["train", "--config", QUICK, "--workdir", str(tmp_path)]
    argv += ["--set", "model.bits=8", "--set", "train.steps=2", "optim.learning_rate=0.5"]
    status = cli.main(argv)
    config = no_training["config"]
    assert (config.model.bits, config.train.steps, config.optim.learning_rate) == (8, 2, 0.5)
    assert status == 0


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("jaxhash: error: "), err
    return err[0]


@pytest.mark.parametrize(
    ("argv", "needles"),
    [
        (
            ["--set", "model.bitz=8"],
            ["unknown config key 'model.bitz'", "Did you mean 'model.bits'"],
        ),
        (["--set", "model.bits=0"], ["'model.bits'", "got 0"]),
        (["--set", "model"], ["must look like key.path=value", "--set model.bits=32"]),
    ],
)
def test_config_errors_are_one_line(tmp_path, capsys, argv, needles):
    status = cli.main(["train", "--config", QUICK, "--workdir", str(tmp_path), *argv])
    line = one_error_line(capsys)
    assert status == 1 and all(n in line for n in needles), line


def test_missing_files_are_one_line(tmp_path, capsys):
    assert cli.main(["train", "--config", "nope.py", "--workdir", str(tmp_path)]) == 1
    line = one_error_line(capsys)
    assert "'nope.py' does not exist" in line and "configs/demo.py" in line
    assert cli.main(["evaluate", "--workdir", str(tmp_path)]) == 1
    line = one_error_line(capsys)
    assert f"{tmp_path} has no checkpoint; train into it first" in line
    argv = ["search", "--queries", str(tmp_path / "q.npy"), "--database", "d.npy"]
    assert cli.main([*argv, "--out", str(tmp_path / "o.npz")]) == 1
    assert (
        one_error_line(capsys)
        == f"jaxhash: error: {tmp_path / 'q.npy'}: no such file or directory; check the path"
    )


def test_a_file_that_is_not_codes_is_named(tmp_path, capsys):
    text = tmp_path / "codes.npy"
    text.write_text("not codes\n")
    argv = ["search", "--queries", str(text), "--database", str(text), "--out", "o.npz"]
    assert cli.main(argv) == 1
    line = one_error_line(capsys)
    assert line.startswith(f"jaxhash: error: {text} is not a .npy of packed codes (")
    assert line.endswith("write it with jaxhash encode --out codes.npy.")


@pytest.mark.parametrize("kind", ["truncated", "whole"])
def test_an_npz_given_as_codes_is_named(tmp_path, capsys, kind):
    """A (truncated) .npz archive is not a .npy of codes: one line naming the file."""
    import numpy as np

    whole = tmp_path / "whole.npz"
    np.savez(whole, codes=np.zeros((4, 4), np.uint8))
    path = tmp_path / f"{kind}.npz"
    raw = whole.read_bytes()
    path.write_bytes(raw[: len(raw) // 2] if kind == "truncated" else raw)
    argv = ["search", "--queries", str(path), "--database", str(path), "--out", "o.npz"]
    assert cli.main(argv) == 1
    line = one_error_line(capsys)
    assert line.startswith(f"jaxhash: error: {path} is not a .npy of packed codes")
    assert line.endswith("write it with jaxhash encode --out codes.npy.")


def test_a_command_line_that_does_not_parse_is_one_line(capsys):
    assert cli.main(["train", "--workdir", "x"]) == 2
    line = one_error_line(capsys)
    assert "--config" in line and "see `jaxhash train --help`" in line


def test_non_finite_loss_is_one_line(no_training, tmp_path, capsys):
    no_training["raises"] = train.NonFiniteLossError(
        "step 3: non-finite kl; the step was not applied and training stopped.\nLower the rate."
    )
    assert cli.main(["demo", "--quick", "--workdir", str(tmp_path)]) == 1
    line = one_error_line(capsys)
    assert line == (
        "jaxhash: error: step 3: non-finite kl; the step was not applied and training stopped. "
        "Lower the rate."
    )


def test_unexpected_errors_are_one_line_and_verbose_shows_the_traceback(
    no_training, tmp_path, capsys
):
    no_training["raises"] = RuntimeError("boom\nsecond line")
    argv = ["demo", "--quick", "--workdir", str(tmp_path)]
    assert cli.main(argv) == 1
    line = one_error_line(capsys)
    assert line == (
        "jaxhash: error: RuntimeError: boom ...; rerun with --verbose for the traceback"
    )
    for verbose in (["--verbose", *argv], [*argv, "--verbose"]):  # before or after the command
        assert cli.main(verbose) == 1
        err = capsys.readouterr().err
        assert "Traceback (most recent call last)" in err and "second line" in err
        assert err.strip().splitlines()[-1].startswith("jaxhash: error: RuntimeError: boom")


def test_results_table():
    report = {
        "rows": {
            "hamming": {"summary": {"mAP@5": 0.5, "precision@r2": 0.25}},
            "cosine": {"summary": {"mAP@5": 0.625}},
            "random_codes": {"summary": {"mAP@5": 0.125, "precision@r2": 0.0}},
        }
    }
    assert console.results_table(report).splitlines() == [
        "metric         codes  random codes  real-valued (cosine)",
        "mAP@5         0.5000        0.1250                0.6250",
        "precision@r2  0.2500        0.0000                     -",
    ]


@pytest.mark.slow
def test_cli_evaluate_encode_search(quick_run_copy, tmp_path, capsys):
    """evaluate, encode and search run on the trained run folder."""
    from jaxhash import retrieval

    workdir = quick_run_copy
    assert cli.main(["evaluate", "--workdir", str(workdir)]) == 0
    out = capsys.readouterr().out
    assert "mAP@50" in out and str(report_dir(workdir, 3) / "report.json") in out
    out = tmp_path / "codes.npy"
    assert cli.main(["encode", "--workdir", str(workdir), "--out", str(out)]) == 0
    codes = np.load(out)
    ids = np.load(tmp_path / "codes_ids.npy")
    assert codes.dtype == np.uint8 and codes.shape == (256, 2)
    assert sorted(ids.tolist()) == list(range(256))
    result = tmp_path / "result.npz"
    cli.main(
        [
            "search",
            "--queries",
            str(out),
            "--database",
            str(out),
            "--k",
            "5",
            "--exclude-self",
            "--out",
            str(result),
        ]
    )
    found = np.load(result)
    want_d, want_i = retrieval.hamming_topk(codes, codes, 5, exclude_self=True)
    np.testing.assert_array_equal(found["indices"], want_i)
    np.testing.assert_array_equal(found["distances"], want_d)


@pytest.mark.slow
def test_cli_train_and_python_m(quick_data_dir, tmp_path, capsys):
    """`jaxhash train --config configs/demo.py:quick --set ...` trains and prints the report;
    `python -m jaxhash --help` lists the commands."""
    config = ROOT / "configs" / "demo.py"
    cli.main(
        [
            "train",
            "--config",
            f"{config}:quick",
            "--workdir",
            str(tmp_path),
            "--set",
            f"data.data_dir={quick_data_dir!r}",
            "model.bits=8",
            "train.steps=2",
        ]
    )
    out = capsys.readouterr().out
    report_path = report_dir(tmp_path, 2) / "report.json"
    assert "mAP@50" in out and str(report_path) in out
    assert json.loads(report_path.read_text())["code_length"] == 8
    status = cli.main(
        ["train", "--config", str(config), "--workdir", str(tmp_path), "--set", "model.bitz=8"]
    )
    assert status == 1 and "unknown config key 'model.bitz'" in capsys.readouterr().err
    listed = subprocess.run(
        [sys.executable, "-m", "jaxhash", "--help"], capture_output=True, text=True, timeout=120
    )
    assert all(c in listed.stdout for c in ("demo", "train", "evaluate", "encode", "search"))
