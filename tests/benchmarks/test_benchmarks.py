"""benchmarks/: the suite's smoke run (quick sizes), a failing benchmark reported, and the
scaling and search-at-scale scripts on their quick sizes."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import __main__ as suite
from benchmarks import common, scaling, search_scale

ROOT = Path(__file__).resolve().parents[2]


def test_device_slug():
    assert common.device_slug("NVIDIA H200") == "nvidia-h200"
    assert common.device_slug("cpu") == "cpu"
    assert common.device_slug("TPU v5 lite") == "tpu-v5-lite"


@pytest.mark.slow
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


@pytest.mark.slow
def test_suite_reports_a_failing_benchmark(tmp_path, monkeypatch):
    monkeypatch.setitem(suite.SUITE, "losses", ((), {"quick": ["--no-such-flag"]}))
    code = suite.main(["--quick", "--only", "losses", "--out", str(tmp_path)])
    assert code == 1
    (line,) = [json.loads(x) for x in (tmp_path / "unknown_quick.jsonl").read_text().splitlines()]
    assert line["status"] == "failed" and "no-such-flag" in line["reason"]


def test_fit_exponent_recovers_power_laws():
    sizes = [256, 512, 1024, 2048, 4096]
    assert scaling.fit_exponent(sizes, [3e-6 * s**2 for s in sizes]) == pytest.approx(2.0)
    times = [5.0, 5.0, 5.0, 8.0, 16.0]  # flat overhead, then linear
    assert scaling.fit_exponent(sizes, times, fit_from=2048) == pytest.approx(1.0)
    assert scaling.fit_exponent(sizes, times, fit_from=4096) is None  # one point: no fit


@pytest.mark.slow
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


@pytest.mark.slow
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
