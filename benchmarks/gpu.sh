#!/usr/bin/env bash
# One prepared GPU run of issue 15's accelerator rows, under 8 minutes; random data of real shapes.
#   bash benchmarks/gpu.sh            # full sizes; lines to $OUT/*.jsonl ($OUT, else /tmp/jaxhash_gpu)
#   bash benchmarks/gpu.sh --smoke    # tiny sizes, any backend (CPU: kernels interpreted), ~3 min
#                                     # (or JAXHASH_GPU_SMOKE=1); results stay in $OUT
# A full run also appends every line, with date and commit, to
# ${RESULTS:-benchmarks/results}/<device>_gpu.jsonl (e.g. nvidia-h200_gpu.jsonl; on a device
# whose copy of the repo does not come back, pass RESULTS="$OUT" and append that file here).
#
# Runs from the repository root with the device image's python3 (jax with CUDA, flax, optax,
# orbax, torch). Installs nothing from outside, with one exception carried in: the image lacks
# ml_collections, which jaxhash.config (so the Flax train step) imports. Its wheel is pure
# Python (77 KB; it needs absl-py and PyYAML, both on the image). Once, here, in the repo root
# (.gitignore ignores /.whl/):
#   python3 -m pip download --no-deps --only-binary=:all: -d .whl ml_collections==1.1.0
# and name ".whl" in the run's carry: this script installs .whl/*.whl into /tmp/site (no index).
# Without it the Flax step fails (ImportError in train_step.err) and the PyTorch lines have no
# speedup. TensorFlow and nltk are not needed.
#
# Order, most wanted first, each step capped by a timeout within the budget:
#  1. the kernel tests on the GPU (tests/kernels/, the Pallas ones: the kernels compiled for
#     real against the XLA path, identical results) and tests/test_knn.py;
#  2. kNN k-th distance, exact float32, batch 16,384, k = 1: Pallas kernel vs XLA (value and
#     grad, benchmarks/knn.py);
#  3. Hamming top-100, 4,096 queries x 2^20 64-bit codes: Pallas first stage vs XLA
#     (benchmarks/retrieval.py);
#  4. hashing_loss fwd+bwd, K = 64, batch 4,096 / 16,384 / 65,536, kNN by Pallas vs XLA
#     (benchmarks/losses.py; the [B, B] reference up to 16,384);
#  5. the ResNet-18 CIFAR train step, batch 512, bfloat16: naive Flax and jaxhash
#     (benchmarks/train_step.py), then PyTorch eager and torch.compile on the same batch
#     (benchmarks/train_step_torch.py, given the naive Flax time for its speedup);
#  6. the fast recipe's networks (fast_resnet, fast_cnn) beside ResNet-18, batch 512, bfloat16
#     (benchmarks/train_step.py --models): images/s and the ratios, same process.
set -uo pipefail
smoke="${JAXHASH_GPU_SMOKE:-0}"
if [[ "${1:-}" == "--smoke" ]]; then smoke=1; fi
out="${OUT:-/tmp/jaxhash_gpu}"
budget=470 # seconds for the whole script
scale=1    # on the caps of the steps
if ((smoke)); then budget=900 scale=3; fi # CPUs compile the ResNet slowly
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export XLA_PYTHON_CLIENT_PREALLOCATE=false
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl && export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv ||
    echo "nvidia-smi: absent"
  python3 -c "import jax, jaxlib, numpy; print('jax', jax.__version__, 'jaxlib', jaxlib.__version__, 'numpy', numpy.__version__, jax.devices())"
  python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" || echo "torch: absent"
  python3 -c "import ml_collections" || echo "ml_collections: absent (see the top of benchmarks/gpu.sh)"
} 2>&1 | tee "$out/env.log"

# step NAME CAP COMMAND...: run COMMAND with stdout to $out/NAME.jsonl and stderr to
# $out/NAME.err, under min(CAP * scale, seconds left in the budget).
step() {
  local name=$1 cap=$(($2 * scale))
  shift 2
  local left=$((budget - SECONDS))
  if ((left < 20)); then
    echo "{\"benchmark\": \"$name\", \"status\": \"skipped\", \"reason\": \"no time left ($left s)\"}" |
      tee "$out/$name.jsonl"
    return
  fi
  local limit=$((cap < left ? cap : left))
  timeout "$limit" "$@" 2>"$out/$name.err" | tee "$out/$name.jsonl"
  local rc=${PIPESTATUS[0]} why
  if ((rc != 0)); then
    why="exit status $rc (see $name.err)"
    if ((rc == 124)); then why="timed out after $limit s"; fi
    echo "{\"benchmark\": \"$name\", \"status\": \"failed\", \"reason\": \"$why\"}" |
      tee -a "$out/$name.jsonl"
  fi
}

if ((smoke)); then
  echo "smoke run: tiny sizes, tests skipped (run them with pytest)" | tee "$out/tests.log"
  knn=(--batch 128 --k 1)
  search=(--queries 16 --rows 4096)
  loss=(--batch 128 --reference-max 128)
  resnet=(--batch 8 --dtype float32)
  fast=(--batch 8 --dtype float32)
else
  timeout 80 python3 -m pytest -q -x -p no:cacheprovider tests/kernels/test_kernels.py \
    tests/kernels/test_kth_neighbor.py tests/kernels/test_hamming_tiles.py tests/test_knn.py \
    2>&1 | tail -15 | tee "$out/tests.log"
  knn=(--batch 16384 --k 1)
  search=(--full)
  loss=(--batch 4096 16384 65536 --reference-max 16384)
  resnet=(--batch 512 --dtype bfloat16)
  fast=(--batch 512 --dtype bfloat16)
fi

step knn 50 python3 -m benchmarks.knn "${knn[@]}" --variants jaxhash_xla jaxhash_pallas
step retrieval 60 python3 -m benchmarks.retrieval "${search[@]}" --no-eval \
  --impls jaxhash_xla jaxhash_pallas
step losses 90 python3 -m benchmarks.losses "${loss[@]}" --cases hashing_loss --impls xla pallas
step train_step 120 python3 -m benchmarks.train_step --resnet-only "${resnet[@]}"
reference=$(python3 - "$out/train_step.jsonl" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    try:
        r = json.loads(line)
    except ValueError:
        continue
    s = r.get("shape", {})
    if (r.get("impl"), s.get("model")) == ("reference_naive_flax", "resnet18"):
        print(f"--reference-ms {r['median_ms']} --reference-loss {r['loss']}")
PY
)
# shellcheck disable=SC2086  # $reference is two flag pairs, or empty
step train_step_torch 110 python3 -m benchmarks.train_step_torch "${resnet[@]}" $reference
step train_step_fast 90 python3 -m benchmarks.train_step --models fast_resnet fast_cnn resnet18 \
  "${fast[@]}"

# Summary; a full run appends every line, with date and commit, to the results file.
results=""
if ((!smoke)); then
  slug=$(python3 -c "from benchmarks.common import device_slug; print(device_slug())")
  results="${RESULTS:-benchmarks/results}/${slug}_gpu.jsonl"
  mkdir -p "$(dirname "$results")"
fi
commit=$(git rev-parse --short HEAD 2>/dev/null || echo "${GIT_COMMIT:-unknown}")
python3 - "$out" "$results" "$commit" <<'PY'
import datetime, json, pathlib, sys
out, results, commit = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3]
date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
kept = []
for f in sorted(out.glob("*.jsonl")):
    for line in f.read_text().splitlines():
        try:
            r = json.loads(line)
        except ValueError:
            continue
        kept.append({**r, "module": f.stem, "date": date, "git": commit})
        if r.get("impl") == "reference":
            continue
        if r.get("median_ms") is None:
            why = r.get("error") or r.get("skipped") or r.get("reason") or r.get("status")
            print(f"{r.get('benchmark', f.stem):24s} {r.get('impl', '-'):26s} {why}")
            continue
        loss = f"  loss {r['loss']:.4g}" if isinstance(r.get("loss"), float) else ""
        print(f"{r['benchmark']:24s} {r['impl']:26s} {json.dumps(r['shape']):60s} "
              f"{r['median_ms']:10.3f} ms  x{r['speedup']}{loss}")
if results:
    with open(results, "a") as f:
        f.writelines(json.dumps(r) + "\n" for r in kept)
    print(f"appended {len(kept)} lines to {results}")
PY
echo "gpu.sh: ${SECONDS} s"
