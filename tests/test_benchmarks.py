"""The benchmark suite's smoke run (quick sizes) and the reproduction study on a tiny subset."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import __main__ as suite
from benchmarks import common, scaling, search_scale
from jaxhash import methods
from studies import reproduce_cifar100 as study

ROOT = Path(__file__).resolve().parents[1]


def test_device_slug():
    assert common.device_slug("NVIDIA H200") == "nvidia-h200"
    assert common.device_slug("cpu") == "cpu"
    assert common.device_slug("TPU v5 lite") == "tpu-v5-lite"


def test_suite_quick_runs_every_benchmark(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    written = (tmp_path / "cpu_quick.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in written]
    assert rows == [json.loads(x) for x in proc.stdout.splitlines() if x.startswith("{")]
    by_module = {name: [r for r in rows if r["module"] == name] for name in suite.SUITE}
    for name, members in by_module.items():
        assert members, f"{name} left no line"
        assert all(r.get("status") != "failed" for r in members), members
        timed = [r for r in members if "median_ms" in r]
        skipped = [r for r in members if r.get("status") == "skipped"]
        assert timed or skipped, f"{name}: neither timings nor a skip reason"
    for r in (r for r in rows if "median_ms" in r):
        assert r["median_ms"] > 0 and r["suite"] == "quick" and r["device"] == "cpu"
        if r["reference"] is not None and "speedup" in r and r["speedup"] is not None:
            assert r["speedup"] > 0
    # The core hot paths never skip: they need nothing optional.
    for name in ("losses", "knn", "retrieval", "train_step"):
        assert any("median_ms" in r for r in by_module[name]), name


def test_suite_reports_a_failing_benchmark(tmp_path, monkeypatch):
    monkeypatch.setitem(suite.SUITE, "losses", ((), {"quick": ["--no-such-flag"]}))
    code = suite.main(["--quick", "--only", "losses", "--out", str(tmp_path)])
    assert code == 1
    (line,) = [json.loads(x) for x in (tmp_path / "unknown_quick.jsonl").read_text().splitlines()]
    assert line["status"] == "failed" and "no-such-flag" in line["reason"]


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


def test_reproduction_rejects_a_missing_data_file(tmp_path):
    with pytest.raises(SystemExit):
        study.main(["--data", str(tmp_path / "absent.npz"), "--out", str(tmp_path / "o.json")])


def test_fit_exponent_recovers_power_laws():
    sizes = [256, 512, 1024, 2048, 4096]
    assert scaling.fit_exponent(sizes, [3e-6 * s**2 for s in sizes]) == pytest.approx(2.0)
    times = [5.0, 5.0, 5.0, 8.0, 16.0]  # flat overhead, then linear
    assert scaling.fit_exponent(sizes, times, fit_from=2048) == pytest.approx(1.0)
    assert scaling.fit_exponent(sizes, times, fit_from=4096) is None  # one point: no fit


def test_scaling_quick_study(tmp_path):
    out = tmp_path / "scaling.json"
    scaling.main(["--quick", "--skip", "devices", "--out", str(out)])
    result = json.loads(out.read_text())
    impls = {(f["study"], f["impl"]) for f in result["fits"]}
    assert ("scaling.batch", "hashing_loss") in impls and ("scaling.batch", "knn_k1") in impls
    assert ("scaling.database", "hamming_topk") in impls
    for f in result["fits"]:
        assert len(f["sizes"]) == len(f["median_ms"]) == 2 and min(f["median_ms"]) > 0
    rows = scaling.device_study([2], batch=32, width=8)  # 2 fake devices in a fresh process
    assert [(r["impl"], r["size"]) for r in rows] == [("train_step", 2)]
    assert "| batch | hashing_loss |" in scaling.table(result)


def test_search_scale_quick_rows():
    rows = search_scale.main(["--quick", "--kinds", "clustered"])
    by_impl = {}
    for row in rows:
        by_impl.setdefault(row["impl"], []).append(row)
    assert {"jaxhash_brute_force", "multi_index", "multi_index_numpy"} <= by_impl.keys()
    for row in by_impl["multi_index"] + by_impl["multi_index_numpy"]:
        assert row["exact"] is True and row["memory_ratio"] <= 2.5 and row["median_ms"] > 0
        assert row["shape"]["rows"] == 20_000 and row["versions"]["numpy"]
    for row in by_impl.get("faiss_BIVF16", []):
        assert 0 <= row["recall"] <= 1
