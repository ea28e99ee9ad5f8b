#!/usr/bin/env bash
# The CIFAR-100 study on a GPU: the ResNet-18 recipe (configs/cifar100.py, 200 epochs), or with
# RECIPE=fast the fast recipe's gpu variant (configs/cifar100_fast.py, ROWS such as
# "paper,64,0,gpu"), on a GPU machine that has
# no TensorFlow and takes the repository in copies of at most 64 MiB: the CIFAR-100 .npz
# (184 MB) travels in three parts, and the rows train with config.data.reader="numpy".
#
#   bash studies/gpu_study.sh --pack cifar100.npz   # here, once: .gpu_data/ (3 parts + sha256)
#   bash studies/gpu_study.sh                       # there: join, check, train, evaluate
#   bash studies/gpu_study.sh --smoke               # any machine, ~3 min: a tiny random .npz,
#                                                      # ResNet-18 for a few steps, same code path
#
# On the GPU machine the script needs .gpu_data/ (the three parts and cifar100.npz.sha256)
# beside the repository; where each transfer is limited to 64 MiB, send one part with each
# (a part, the repository and a wheel fit). Packages the machine lacks travel as wheels in
# .whl/ (ml_collections; see benchmarks/gpu.sh) and are installed into /tmp/site, offline.
# The joined .npz is checked against the sha256 before any training. A rerun on the same
# machine continues a row from its last checkpoint (--time-limit stops a run with one).
#
# Environment: RECIPE (resnet18, the default, or fast), ROWS (default "paper,64,0", with
# RECIPE=fast "paper,64,0,gpu"; space-separated study specs), EPOCHS (default: the recipe's;
# a row records its epochs), MINUTES (training time per run, default 7.5: with
# start-up, compilation, evaluation and the copies, under 10 minutes), OUT (where rows, logs
# and the environment go; default /tmp/jaxhash_gpu_study), STUDY_DIR (run folders and the
# joined .npz; default /tmp/jaxhash_study). Rows already in
# benchmarks/results/reproduce_cifar100_<recipe>.json are skipped (the fast recipe's GPU rows:
# reproduce_cifar100_fast_gpu.json); new ones land in $OUT under the same name (copy it back
# into benchmarks/results/), with each
# run's metrics.jsonl (its train lines hold the images per second).
set -uo pipefail
mode="${1:-run}"
root="$PWD"
parts_dir=.gpu_data
part_bytes=$((59 * 1024 * 1024)) # three parts; one, the repository and the wheel fit in 64 MiB
out="${OUT:-/tmp/jaxhash_gpu_study}"
study="${STUDY_DIR:-/tmp/jaxhash_study}"
recipe="${RECIPE:-resnet18}"
case "$recipe" in
  resnet18) results=benchmarks/results/reproduce_cifar100_resnet18.json default_rows="paper,64,0" ;;
  fast) results=benchmarks/results/reproduce_cifar100_fast_gpu.json default_rows="paper,64,0,gpu" ;;
  *) echo "gpu_study: RECIPE must be resnet18 or fast; got $recipe" && exit 2 ;;
esac

if [[ "$mode" == "--pack" ]]; then
  npz="${2:?usage: gpu_study.sh --pack CIFAR100.npz}"
  python3 -c "import sys; from jaxhash.data import cifar100_npz as c; print(c.split_sizes(sys.argv[1]))" \
    "$npz" || exit 1
  mkdir -p "$parts_dir" && rm -f "$parts_dir"/cifar100.npz.*
  split -b "$part_bytes" -d -a 1 "$npz" "$parts_dir/cifar100.npz.part"
  (cd "$(dirname "$npz")" && sha256sum "$(basename "$npz")") |
    awk '{print $1 "  cifar100.npz"}' >"$parts_dir/cifar100.npz.sha256"
  ls -l "$parts_dir"
  exit 0
fi

mkdir -p "$out" "$study"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export XLA_PYTHON_CLIENT_PREALLOCATE=false
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl && export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
{
  date -u
  git rev-parse --short HEAD 2>/dev/null || echo "commit: unknown"
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || echo "nvidia-smi: absent"
  python3 -c "import jax, jaxlib; print('jax', jax.__version__, 'jaxlib', jaxlib.__version__, jax.devices())"
} 2>&1 | tee "$out/env.log"

rows=(${ROWS:-$default_rows})
epochs=()
if [[ -n "${EPOCHS:-}" ]]; then epochs=(--epochs "$EPOCHS"); fi
minutes="${MINUTES:-7.5}"
npz="$study/cifar100.npz"
rows_out="$study/rows_$recipe.json"
if [[ "$mode" == "--smoke" ]]; then
  npz="$study/smoke.npz" results="$out/smoke_rows.json" rows_out="$study/smoke_rows.json"
  epochs=(--epochs 0.5) minutes=10
  rm -rf "$study/runs_smoke" "$rows_out"
  python3 - "$npz" <<'PY'
import sys
import numpy as np
from jaxhash.semantics import known
rng = np.random.default_rng(0)
coarse = np.asarray(known.CIFAR100_COARSE_OF_FINE)
arrays = {}
for split, per_class in (("train", 20), ("test", 6)):
    fine = np.arange(100 * per_class) % 100
    arrays[f"x_{split}"] = rng.integers(0, 256, (len(fine), 32, 32, 3), dtype=np.uint8)
    arrays[f"y_{split}_fine"], arrays[f"y_{split}_coarse"] = fine, coarse[fine]
np.savez(sys.argv[1], **arrays)
PY
elif ! (cd "$study" && sha256sum --status -c "$root/$parts_dir/cifar100.npz.sha256" 2>/dev/null); then
  missing=$(for i in 0 1 2; do [[ -f "$parts_dir/cifar100.npz.part$i" ]] || echo "part$i"; done)
  if [[ -n "$missing" || ! -f "$parts_dir/cifar100.npz.sha256" ]]; then
    echo "gpu_study: $parts_dir lacks $missing (and/or cifar100.npz.sha256): carry the parts" \
      "as the top of studies/gpu_study.sh says." | tee "$out/error.log"
    exit 2
  fi
  cat "$parts_dir"/cifar100.npz.part* >"$npz"
  if ! (cd "$study" && sha256sum -c "$root/$parts_dir/cifar100.npz.sha256"); then
    echo "gpu_study: the joined .npz does not match its sha256: pack and send the parts again." |
      tee "$out/error.log"
    exit 2
  fi
fi

runs="$study/runs"
if [[ "$mode" == "--smoke" ]]; then runs="$study/runs_smoke"; fi
if [[ -f "$results" && ! -f "$rows_out" ]]; then cp "$results" "$rows_out"; fi
python3 -m studies.reproduce_cifar100 --recipe "$recipe" --reader numpy --data "$npz" \
  --workdir "$runs" --out "$rows_out" --time-limit "$minutes" "${epochs[@]}" \
  --rows "${rows[@]}" 2>&1 | tee "$out/study.log"
status=${PIPESTATUS[0]} # 3: stopped by the time limit with a checkpoint; rerun to continue
if [[ -f "$rows_out" ]]; then cp "$rows_out" "$out/$(basename "$results")"; fi
i=0
for log in "$runs"/*/*/metrics.jsonl; do
  [[ -f "$log" ]] || continue
  cp "$log" "$out/metrics_$(basename "$(dirname "$log")" | tr -c 'A-Za-z0-9._\n-' '_').jsonl"
  i=$((i + 1))
  ((i < 5)) || break # with env.log, study.log and the rows: 8 files
done
echo "gpu_study: exit status $status after ${SECONDS} s"
exit "$status"
