#!/usr/bin/env bash
# One prepared run for a lent GPU (nothing installed; random data of real shapes).
#   bash benchmarks/gpu.sh            # writes $OUT/*.jsonl and $OUT/*.log when OUT is set
# Runs from the repository root with the device image's python3 (jax with CUDA).
set -uo pipefail
out="${OUT:-/tmp/jaxhash_gpu}"
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export XLA_PYTHON_CLIENT_PREALLOCATE=false
{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv
  python3 -c "import jax, jaxlib, numpy; print('jax', jax.__version__, 'jaxlib', jaxlib.__version__, 'numpy', numpy.__version__, jax.devices())"
} 2>&1 | tee "$out/env.log"
# Correctness on the GPU first: the single-device tests (multi-device ones skip on one GPU).
JAX_PLATFORMS=cuda timeout 150 python3 -m pytest -q -x -p no:cacheprovider \
  tests/test_losses.py tests/test_knn.py 2>&1 | tail -15 | tee "$out/tests.log"
timeout 200 python3 -m benchmarks.losses --full 2>"$out/losses.err" | tee "$out/losses.jsonl"
timeout 200 python3 -m benchmarks.knn --full 2>"$out/knn.err" | tee "$out/knn.jsonl"
python3 - "$out" <<'PY'
import json, pathlib, sys
for f in sorted(pathlib.Path(sys.argv[1]).glob("*.jsonl")):
    for line in f.read_text().splitlines():
        try:
            r = json.loads(line)
        except ValueError:
            continue
        if r["impl"] != "reference":
            print(f"{r['benchmark']:24s} {r['impl']:26s} {json.dumps(r['shape']):44s} "
                  f"{r['median_ms']:10.3f} ms  x{r['speedup']}")
PY
