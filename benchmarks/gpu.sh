#!/usr/bin/env bash
# One prepared run for a lent GPU, under 8 minutes; random data of real shapes.
#   bash benchmarks/gpu.sh            # writes $OUT/*.jsonl and $OUT/*.log ($OUT, else /tmp/jaxhash_gpu)
# Runs from the repository root with the device image's python3 (jax with CUDA, flax, optax,
# orbax, torch). Installs nothing from outside, with one exception carried in: the image lacks
# ml_collections, which jaxhash.config (so the Flax train step) imports. Its wheel is pure
# Python (77 KB; it needs absl-py and PyYAML, both on the image). Once, here, in the repo root
# (.gitignore ignores /.whl/):
#   python3 -m pip download --no-deps --only-binary=:all: -d .whl ml_collections==1.1.0
# and name ".whl" in the run's carry: this script installs .whl/*.whl into /tmp/site (no index).
# Without it the Flax step fails (ImportError in train_step.err) and the PyTorch lines have no
# speedup. TensorFlow and nltk are not needed (jaxhash.data loads TensorFlow with the input
# pipeline only; neither is on the image, and TensorFlow is too large to carry).
#
# Order, most wanted first, each step under a timeout: GPU tests of the losses; the ResNet-18
# CIFAR train step, naive Flax and jaxhash (benchmarks/train_step.py, batch 512, bfloat16) then
# PyTorch eager and torch.compile on the same batch (benchmarks/train_step_torch.py, given the
# naive Flax time for its speedup); then the rest of the suite at full size
# (python3 -m benchmarks --full; train_step already ran) in the time left.
set -uo pipefail
out="${OUT:-/tmp/jaxhash_gpu}"
budget=470 # seconds for the whole script
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export XLA_PYTHON_CLIENT_PREALLOCATE=false
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl && export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv
  python3 -c "import jax, jaxlib, numpy; print('jax', jax.__version__, 'jaxlib', jaxlib.__version__, 'numpy', numpy.__version__, jax.devices())"
  python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" || echo "torch: absent"
  python3 -c "import ml_collections" || echo "ml_collections: absent (see the top of benchmarks/gpu.sh)"
} 2>&1 | tee "$out/env.log"

# Correctness on the GPU first: the single-device tests (multi-device ones skip on one GPU).
JAX_PLATFORMS=cuda timeout 75 python3 -m pytest -q -x -p no:cacheprovider \
  tests/test_losses.py tests/test_knn.py 2>&1 | tail -15 | tee "$out/tests.log"

# The train step: naive Flax and jaxhash, then PyTorch on the same batch.
timeout 150 python3 -m benchmarks.train_step --resnet-only --batch 512 --dtype bfloat16 \
  2>"$out/train_step.err" | tee "$out/train_step.jsonl"
reference=$(python3 - "$out/train_step.jsonl" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    try:
        r = json.loads(line)
    except ValueError:
        continue
    s = r.get("shape", {})
    if (r.get("impl"), s.get("model"), s.get("batch"), s.get("dtype")) == (
        "reference_naive_flax", "resnet18", 512, "bfloat16"
    ):
        print(f"--reference-ms {r['median_ms']} --reference-loss {r['loss']}")
PY
)
# shellcheck disable=SC2086  # $reference is two flag pairs, or empty
timeout 150 python3 -m benchmarks.train_step_torch --batch 512 --dtype bfloat16 $reference \
  2>"$out/train_step_torch.err" | tee "$out/train_step_torch.jsonl"

# The rest of the suite in the time left (each benchmark capped; partial lines are kept).
left=$((budget - SECONDS))
if ((left > 30)); then
  rest=$(python3 -c "from benchmarks.__main__ import SUITE; print(*(n for n in SUITE if n != 'train_step'))")
  # shellcheck disable=SC2086
  timeout "$left" python3 -m benchmarks --full --out "$out" --timeout $((left < 150 ? left : 150)) \
    --only $rest 2>"$out/suite.err" | tee "$out/suite.log"
else
  echo "no time left for the rest of the suite ($left s)" | tee "$out/suite.log"
fi

python3 - "$out" <<'PY'
import json, pathlib, sys
for f in sorted(pathlib.Path(sys.argv[1]).glob("*.jsonl")):
    for line in f.read_text().splitlines():
        try:
            r = json.loads(line)
        except ValueError:
            continue
        if r.get("impl") == "reference":
            continue
        if r.get("median_ms") is None:
            why = r.get("error") or r.get("skipped") or r.get("reason") or r.get("status")
            print(f"{r.get('benchmark', '?'):24s} {r.get('impl', '-'):26s} {why}")
            continue
        loss = f"  loss {r['loss']:.4g}" if isinstance(r.get("loss"), float) else ""
        print(f"{r['benchmark']:24s} {r['impl']:26s} {json.dumps(r['shape']):44s} "
              f"{r['median_ms']:10.3f} ms  x{r['speedup']}{loss}")
PY
echo "gpu.sh: ${SECONDS} s"
