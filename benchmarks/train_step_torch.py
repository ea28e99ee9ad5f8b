"""Train step in PyTorch, eager and ``torch.compile``: the naive Flax step's counterpart.

The same step as ``benchmarks.train_step``'s reference ("reference_naive_flax"), written as a
PyTorch user would: jaxhash's ResNet-18 with the CIFAR stem, a 64-bit hash layer and a
100-class classifier on the codes (``benchmarks.torch_model``); the naive loss CE + similarity
(class-distance targets) + kNN KL against a fresh Rademacher sample, in float32, as
``benchmarks.losses.reference_hashing``; SGD with Nesterov momentum 0.9 and weight decay 5e-4
(``optax.add_decayed_weights`` + ``optax.sgd``: the same update) at the warm-up + cosine rate of
``jaxhash.state.learning_rate_schedule`` (the config defaults; ``SCHEDULE_STEPS`` long, as in
``benchmarks.train_step``). bfloat16 autocast (or float32) with channels_last activations;
cuDNN autotuning and TF32 float32 matmuls on GPUs (JAX's default GPU precision). The batch is
the Flax benchmark's: ``benchmarks.random_data`` draws the same table, images and labels.

Impls: "torch_eager" and "torch_compile" (``torch.compile`` of the whole step function:
forward, loss, backward, optimizer step; Dynamo splits it at ``backward``). Each starts from the
same initial weights with its own optimizer. Its first call gives the loss at step 0; the first
three calls' wall time is ``warmup_s`` (``compile_s`` for torch_compile: compiling, and compiling
again once the momentum buffers exist, happens there) and is not in ``median_ms``. Then two
rounds of each in A-B-B-A order, each the median of repeats with the device synchronised after
every step; ``median_ms`` is the mean of the two (``round_ms``), ``last_loss`` the loss of the
last timed step. A compile failure gives a line with ``error`` instead of numbers, and so does
a SIGTERM (``timeout``) for what it left unmeasured; what was measured is still printed.

The Flax reference runs in another process (JAX and PyTorch would compete for the GPU), so
``speedup`` (reference ms / this ms) is null unless ``--reference-ms`` gives the naive Flax
step's time for the same shape, dtype and device (``benchmarks/gpu.sh`` passes it). Without
PyTorch the script prints one line with ``skipped`` and exits 0.

    python -m benchmarks.train_step_torch                          # batch 512, bfloat16
    python -m benchmarks.train_step_torch --batch 8 --dtype float32   # CPU smoke test
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import signal
import statistics
import sys
import time

from benchmarks.random_data import NUM_CLASSES, train_step_inputs

BENCHMARK = "train_step"
REFERENCE = "reference_naive_flax"
IMPLS = ("torch_eager", "torch_compile")
# jaxhash.config.default_config().optim, and benchmarks.train_step.SCHEDULE_STEPS.
LEARNING_RATE = 0.1
MOMENTUM = 0.9
NESTEROV = True
WEIGHT_DECAY = 5e-4
WARMUP_STEPS = 100
SCHEDULE_STEPS = 10_000
WARMUP_CALLS = 3


def learning_rate(step: int) -> float:
    """``state.learning_rate_schedule``: linear warm-up from 0, cosine decay to 0."""
    warmup = min(WARMUP_STEPS, max(SCHEDULE_STEPS - 1, 0))
    if step < warmup:
        return LEARNING_RATE * step / warmup
    decay = max(SCHEDULE_STEPS, warmup + 1) - warmup
    progress = min(step - warmup, decay) / decay
    return LEARNING_RATE * 0.5 * (1.0 + math.cos(math.pi * progress))


def shape_of(args) -> dict:
    """The case, keyed as ``benchmarks.train_step``'s ``shape``."""
    return {
        "model": "resnet18",
        "stem": "cifar",
        "width": 64,
        "batch": args.batch,
        "bits": args.bits,
        "dtype": args.dtype,
    }


def row(impl: str, shape: dict, median_ms: float | None, args, **extra) -> dict:
    """One JSON line in ``benchmarks.common.emit``'s format (torch_version for jax_version).

    ``extra`` leads with ``device`` and ``torch_version`` where PyTorch is there.
    """
    reference_ms = args.reference_ms
    versions = {k: extra.pop(k) for k in ("device", "torch_version") if k in extra}
    line = {
        "benchmark": BENCHMARK,
        "impl": impl,
        **versions,
        "shape": shape,
        "median_ms": None if median_ms is None else round(median_ms, 4),
        "reference": REFERENCE,
        "speedup": (
            None
            if reference_ms is None or median_ms is None
            else round(reference_ms / median_ms, 3)
        ),
        **({"reference_ms": reference_ms} if reference_ms is not None else {}),
        **({"reference_loss": args.reference_loss} if args.reference_loss is not None else {}),
        **extra,
    }
    print(json.dumps(line), flush=True)
    return line


def make_optimizer(params, device, tensor_lr: bool):
    """SGD as ``state.make_optimizer`` builds it from the defaults (rate set by ``set_rate``).

    ``tensor_lr``: the rate as a device tensor, so that a compiled optimizer step does not
    recompile when it changes; eagerly a float saves a device-to-host read in every update.
    """
    import torch

    return torch.optim.SGD(
        params,
        lr=torch.tensor(0.0, device=device) if tensor_lr else 0.0,
        momentum=MOMENTUM,
        nesterov=NESTEROV,
        weight_decay=WEIGHT_DECAY,
    )


def set_rate(optimizer, step: int) -> None:
    """The schedule's rate for update ``step`` (0-based, as optax counts)."""
    import torch

    rate = learning_rate(step)
    for group in optimizer.param_groups:
        if isinstance(group["lr"], torch.Tensor):
            group["lr"].fill_(rate)
        else:
            group["lr"] = rate


class Step:
    """One implementation's model, optimizer and step function, called with the batch."""

    def __init__(self, model, table, args, device, compiled: bool):
        import torch

        from benchmarks.torch_model import hashing_loss, rademacher

        self.count, self.last_loss = 0, None
        cuda = device.type == "cuda"
        self.sync = (lambda: torch.cuda.synchronize(device)) if cuda else (lambda: None)
        optimizer = make_optimizer(model.parameters(), device, tensor_lr=compiled)
        self.optimizer = optimizer
        autocast = args.dtype == "bfloat16"

        def step(images, labels):
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                z, logits = model(images)
            loss = hashing_loss(z, logits, labels, table, rademacher(z.shape, z.device))
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            return loss.detach()

        self.fn = torch.compile(step, mode=args.compile_mode) if compiled else step

    def __call__(self, images, labels):
        set_rate(self.optimizer, self.count)
        self.last_loss = self.fn(images, labels)
        self.count += 1
        return self.last_loss


def time_step(step: Step, images, labels, warmup: int, min_repeats: int, min_seconds: float):
    """Median milliseconds of a step, synchronised after each (``common.time_fn``'s rules)."""
    for _ in range(warmup):
        step(images, labels)
    step.sync()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < 100 and (
        len(times) < min_repeats or time.perf_counter() - start < min_seconds
    ):
        t0 = time.perf_counter()
        step(images, labels)
        step.sync()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


class Stopped(BaseException):
    """SIGTERM (e.g. ``timeout`` in benchmarks/gpu.sh): stop, and print what was measured."""


def _stop(signum, frame):
    raise Stopped(f"stopped by signal {signum} (a time limit) before this was measured")


def _error(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:500]


def run(args) -> list[dict]:
    import torch

    from benchmarks.torch_model import ResNet18Hashing

    if args.device == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.set_float32_matmul_precision("high")
        name = torch.cuda.get_device_name(device)
    else:
        name = device.type
    channels_last = torch.channels_last

    torch.manual_seed(0)
    initial = ResNet18Hashing(args.bits, NUM_CLASSES).to(device, memory_format=channels_last)
    table, host = train_step_inputs(args.batch)
    # NHWC host images viewed as NCHW: already channels_last in memory.
    images = torch.from_numpy(host["image"]).permute(0, 3, 1, 2).to(device)
    images = images.contiguous(memory_format=channels_last)
    labels = torch.from_numpy(host["label"]).long().to(device)
    table = torch.from_numpy(table).to(device)
    shape = shape_of(args)
    common = dict(device=name, torch_version=torch.__version__)

    steps, first, errors = {}, {}, {}
    rounds: dict[str, list[float]] = {}

    def measure(impl: str, warmup: int) -> None:
        try:
            ms = time_step(steps[impl], images, labels, warmup, args.min_repeats, 1.0)
            rounds.setdefault(impl, []).append(ms)
        except Exception as exc:
            errors[impl] = _error(exc)

    try:
        # A-B-B-A: each impl's warm-up and first round, then the second rounds in reverse
        # (drift of a shared machine falls on both alike; a slow compile cannot cost A's data).
        for impl in args.impl:
            try:
                step = Step(copy.deepcopy(initial), table, args, device, impl == IMPLS[1])
                torch.manual_seed(1)  # the same Rademacher targets at step 0 (eagerly)
                t0 = time.perf_counter()
                loss = float(step(images, labels))
                for _ in range(WARMUP_CALLS - 1):
                    step(images, labels)
                step.sync()
                first[impl] = (loss, time.perf_counter() - t0)
                steps[impl] = step
            except Exception as exc:  # a compiler or backend failure: report it, go on
                errors[impl] = _error(exc)
                continue
            measure(impl, warmup=2)
        for impl in reversed(args.impl):
            if impl not in errors:
                measure(impl, warmup=1)
    except Stopped as exc:  # a time limit: report what was measured
        for impl in args.impl:
            if impl not in errors and impl not in rounds:
                errors[impl] = str(exc)

    rows = []
    for impl in args.impl:
        if impl in errors:
            rows.append(row(impl, shape, None, args, **common, error=errors[impl]))
            continue
        ms = statistics.mean(rounds[impl])
        loss, warm_s = first[impl]
        warm_key = "compile_s" if impl == IMPLS[1] else "warmup_s"
        extra = {"compile_mode": args.compile_mode} if impl == IMPLS[1] else {}
        rows.append(
            row(
                impl,
                shape,
                ms,
                args,
                **common,
                images_per_s=round(args.batch / (ms / 1e3), 1),
                round_ms=[round(t, 4) for t in rounds[impl]],
                loss=loss,
                last_loss=float(steps[impl].last_loss),
                **{warm_key: round(warm_s, 2)},
                **extra,
            )
        )
        if not math.isfinite(rows[-1]["last_loss"]):
            print(f"warning: {impl}'s loss became {rows[-1]['last_loss']}", file=sys.stderr)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=512)
    parser.add_argument("--bits", type=int, default=64)
    parser.add_argument("--dtype", choices=("bfloat16", "float32"), default="bfloat16")
    parser.add_argument("--impl", nargs="+", choices=IMPLS, default=list(IMPLS))
    parser.add_argument("--device", default="auto", help="auto (cuda if present), cpu, cuda")
    parser.add_argument("--compile-mode", default="default", help="torch.compile's mode")
    parser.add_argument("--min-repeats", type=int, default=5, help="timed steps per round")
    parser.add_argument(
        "--reference-ms", type=float, help="the naive Flax step's ms, same case and device"
    )
    parser.add_argument("--reference-loss", type=float, help="its loss at step 0, recorded")
    args = parser.parse_args(argv)
    if args.batch < 2:
        parser.error(
            f"--batch must be at least 2 (the kNN term needs a neighbour); got {args.batch}"
        )
    try:
        import torch  # noqa: F401
    except ImportError as exc:
        row("torch", shape_of(args), None, args, skipped=f"PyTorch is not importable ({exc})")
        return 0
    signal.signal(signal.SIGTERM, _stop)
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
