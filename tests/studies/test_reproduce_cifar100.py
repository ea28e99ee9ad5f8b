"""studies/reproduce_cifar100.py: rows of the reproduction study on a tiny CIFAR-100-format
subset, and its results table."""

import json

import pytest

from jaxhash import methods
from studies import reproduce_cifar100 as study


@pytest.mark.slow
def test_reproduction_row_on_the_subset(tmp_path, cifar_sample):
    npz = cifar_sample  # 5 train + 6 test images per class
    out = tmp_path / "study.json"
    args = ["--data", str(npz), "--workdir", str(tmp_path / "runs"), "--out", str(out)]
    args += ["--data-dir", str(tmp_path / "tfds"), "--epochs", "0.11"]
    study.main([*args, "--rows", "paper,16,1,zeroshot"])
    (row,) = json.loads(out.read_text())
    assert (row["method"], row["bits"], row["seed"], row["protocol"]) == (
        "paper",
        16,
        1,
        "zero_shot",
    )
    assert row["num_queries"] == row["num_database"] == 120  # 20 held-out classes x 6 images
    assert row["steps"] == 1  # ceil(0.11 x 400 seen-class training images / 256)
    for metrics in (row["metrics"], row["real_valued"]["euclidean"], row["random_codes"]):
        for prefix in study.METRICS:
            assert any(name.startswith(prefix) for name in metrics), (prefix, metrics)
    k = "mAP@119"  # 120 candidates, self excluded: the cut-off lowered to 119
    assert row["gap_cosine_minus_hamming"][k] == pytest.approx(
        row["real_valued"]["cosine"][k] - row["metrics"][k], abs=1e-6
    )
    # A rerun skips the rows already written; the table: the row, then random codes.
    study.main([*args, "--rows", "paper,16,1,zeroshot"])
    assert json.loads(out.read_text()) == [row]
    table = study.table([row]).splitlines()
    assert len(table) == 2 + 2
    form, weight = methods.PAPER_KL
    network = f"{row['model']}, batch {row['batch_size']}"
    lead = f"| 0.11 | {network} | zero-shot | 16 |"
    assert table[2].startswith(f"{lead} paper | {form} x {weight:g} | 1 |")
    assert table[3].startswith(f"{lead} random codes |")
    # The row records the KL form, the weights and the last training log line.
    assert row["kl_form"] == form and row["weights"]["kl"] == weight
    for name in ("loss", "kl", "kl_w2", "z_norm", "z_sign_cos", "within_class_hamming"):
        assert name in row["train_log"], name


@pytest.mark.slow
def test_a_fast_recipe_row_with_text_targets_is_scored_by_both_relevances(tmp_path, cifar_sample):
    """The fast recipe's row with class-description targets: trained, then scored with the
    WordNet similarity and again with the class-description similarity as graded relevance."""
    out = tmp_path / "fast.json"
    args = ["--recipe", "fast", "--data", str(cifar_sample), "--out", str(out)]
    args += ["--workdir", str(tmp_path / "runs"), "--data-dir", str(tmp_path / "tfds")]
    small = ["model.widths=[8, 16, 16]", "batch_size=100", "eval.tta='none'"]
    study.main([*args, "--epochs", "0.2", "--rows", "paper,64,0,text", "--set", *small])
    (row,) = json.loads(out.read_text())
    assert row["targets"] == "text" and row["recipe"] == "cifar100_fast" and row["tta"] == "none"
    assert row["model"] == "fast_cnn widths 8,16,16" and row["steps"] == 1
    relevance = row["text_relevance"]
    assert set(relevance) == {"hamming", "cosine"}
    assert 0 < relevance["hamming"]["mAHP@250"] <= 1
    assert relevance["hamming"]["mAHP@250"] != row["metrics"]["mAHP@250"]  # another relevance


def _table_row(**changes) -> dict:
    """A finished study row with the fields ``study.table`` reads."""
    metrics = {"mAHP@250": 0.7, "mAP@250": 0.5, "P@100": 0.4, "mistake_severity": 0.3}
    row = {
        "epochs": 10.0,
        "protocol": "database_is_query",
        "bits": 64,
        "method": "paper",
        "kl_form": "marginal",
        "weights": {"kl": 0.3},
        "metrics": metrics,
        "real_valued": {"cosine": metrics},
        "gap_cosine_minus_hamming": {"mAP@250": 0.0},
        "wall_s": 1.0,
        "random_codes": {},
    }
    return {**row, **changes}


def test_the_table_keeps_text_target_rows_apart_from_the_seeds_of_their_method():
    row = _table_row()
    lines = study.table([row, {**row, "targets": "lcs_height"}, {**row, "targets": "text"}])
    rows = lines.splitlines()[2:]
    assert [r.split(" | ")[3:6:2] for r in rows] == [["paper", "2"], ["paper (text targets)", "1"]]


def test_the_table_keeps_rows_of_other_networks_apart():
    """Rows that name their model get a network column; another width or batch is its own
    line, not another seed."""
    row = _table_row(model="fast_cnn widths 64,256,256", batch_size=128)
    rows = [row, {**row, "seed": 1}, {**row, "batch_size": 512}]
    lines = study.table(rows).splitlines()
    assert lines[0].startswith("| epochs | network | protocol |")
    cells = [line.split(" | ")[1:7:5] for line in lines[2:]]
    assert cells == [
        ["fast_cnn widths 64,256,256, batch 128", "2"],
        ["fast_cnn widths 64,256,256, batch 512", "1"],
    ]


def test_the_table_times_resumed_rows_by_their_training_time():
    """Where every row records its training time (summed over the processes of a resumed row),
    the table shows it and the median images/s, not the wall time of the last process."""
    codes = {"mAHP@250": 0.3, "mAP@250": 0.0, "P@100": 0.0, "mistake_severity": 0.7}
    row = _table_row(random_codes=codes, wall_s=10.0, train_s=100.0, median_images_per_s=150.0)
    rows = [row, {**row, "seed": 1, "train_s": 300.0, "median_images_per_s": 130.0}]
    lines = study.table(rows).splitlines()
    assert lines[0].endswith("| train s / seed | images/s |")
    assert lines[2].endswith("| 200 | 140 |")
    assert len({line.count("|") for line in lines}) == 1  # the random-codes line too
    untimed = study.table([_table_row(wall_s=10.0)]).splitlines()
    assert untimed[0].endswith("| wall s / seed |") and untimed[2].endswith("| 10 |")


def test_reproduction_rejects_a_missing_data_file(tmp_path):
    with pytest.raises(SystemExit):
        study.main(["--data", str(tmp_path / "absent.npz"), "--out", str(tmp_path / "o.json")])
