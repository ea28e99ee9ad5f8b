"""Caption embedding throughput: jaxhash's JAX all-MiniLM-L6-v2 against references, same process.

Encodes 1,000 distinct captions (``--captions``: a TSV of ``file<TAB>caption`` lines such as
Flickr8k's; deterministic synthetic sentences without it) at batch sizes 64 and 256,
tokenization included, compile time excluded (warm-up calls first), no cache. References:

* ``jax_unjitted_padded``: the same model (:func:`jaxhash.semantics.text.sentence_embeddings`)
  called without ``jax.jit``, one batch at a time in input order, padded to the batch's
  longest sentence: no sorting, packing or shape buckets. Always run.
* ``sentence-transformers``: ``SentenceTransformer.encode`` on torch CPU, when importable
  (it is not in jaxhash's own environment, and is then reported absent, not timed).

    python -m benchmarks.semantics_text
    python -m benchmarks.semantics_text --batch-sizes 64 --num 200   # quick

Each result line also gives ``sentences_per_s`` and ``token_fill`` (real tokens / computed
token slots of jaxhash's passes).
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import jax
import numpy as np

from benchmarks.common import device_name, emit, time_fn
from jaxhash.semantics import text

BENCHMARK = "semantics_text.embed"


def load_sentences(num: int, captions_tsv: str | None = None) -> tuple[list[str], str]:
    """``num`` distinct captions (file order), or synthetic ones without a file."""
    if captions_tsv is not None:
        path = Path(captions_tsv)
        if not path.is_file():
            raise SystemExit(f"--captions {path} is not a file (a TSV of file<TAB>caption lines).")
        lines = path.read_text(encoding="utf-8").splitlines()
        captions = list(dict.fromkeys(line.split("\t", 1)[1] for line in lines))
        if len(captions) >= num:
            return captions[:num], path.name
    rng = random.Random(0)
    words = (
        "a the dog man woman child runs jumps sits on in near red blue small big ball grass "
        "water street beach"
    ).split()
    sentences = {" ".join(rng.choices(words, k=rng.randint(4, 20))) + " ." for _ in range(2 * num)}
    return sorted(sentences)[:num], "synthetic"


def unjitted_padded(encoder: text.SentenceEncoder, sentences: list[str], batch_size: int):
    """The plain way: input order, pad each batch to its longest, no jit, no buckets."""
    out = []
    for start in range(0, len(sentences), batch_size):
        ids = encoder.tokenize(sentences[start : start + batch_size])
        width = max(len(x) for x in ids)
        input_ids = np.zeros((len(ids), width), np.int32)
        mask = np.zeros((len(ids), width), np.int32)
        for row, tokens in enumerate(ids):
            input_ids[row, : len(tokens)] = tokens
            mask[row, : len(tokens)] = 1
        out.append(text.sentence_embeddings(encoder.params, input_ids, mask, encoder.config))
    return np.concatenate([np.asarray(x) for x in out])


def sentence_transformers_model():
    """``SentenceTransformer`` over the packaged weights on CPU, or None if not importable."""
    try:
        import torch
        from sentence_transformers import SentenceTransformer
    except ImportError:
        return None
    model = SentenceTransformer(str(text.default_model_dir()), device="cpu", local_files_only=True)
    return model.eval(), torch


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num", type=int, default=1000, help="sentences per call")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--captions", default=None, help="TSV of file<TAB>caption lines (default: synthetic)"
    )
    args = parser.parse_args(argv)

    sentences, source = load_sentences(args.num, args.captions)
    encoder = text.SentenceEncoder.load()
    lengths = [len(x) for x in encoder.tokenize(sentences)]
    reference_st = sentence_transformers_model()
    st_status = "timed" if reference_st else "absent: sentence_transformers/torch not importable"
    timing = dict(warmup=1, min_repeats=args.repeats, max_repeats=args.repeats, min_seconds=0.0)

    for batch_size in args.batch_sizes:
        plans = text.plan_passes(lengths, batch_size, encoder.length_buckets, encoder.pack_length)
        slots = sum(plan.num_rows * plan.width for plan in plans)
        shape = {
            "sentences": len(sentences),
            "batch_size": batch_size,
            "mean_tokens": round(float(np.mean(lengths)), 2),
            "max_tokens": max(lengths),
        }
        common = {"data": source, "sentence_transformers": st_status}

        def rate(ms: float) -> float:
            return round(len(sentences) / (ms / 1e3), 1)

        ours = encoder.embed(sentences, batch_size)  # compiles
        ours_ms = time_fn(encoder.embed, sentences, batch_size, **timing)
        plain = unjitted_padded(encoder, sentences, batch_size)
        plain_ms = time_fn(unjitted_padded, encoder, sentences, batch_size, **timing)
        max_diff = float(np.abs(ours - plain).max())
        ref = "jax_unjitted_padded"
        emit(
            BENCHMARK, ref, shape, plain_ms, ref, plain_ms, sentences_per_s=rate(plain_ms), **common
        )
        emit(
            BENCHMARK,
            "jaxhash",
            shape,
            ours_ms,
            ref,
            plain_ms,
            sentences_per_s=rate(ours_ms),
            token_fill=round(sum(lengths) / slots, 3),
            compiled_shapes=len({(p.num_rows, p.width, p.num_segments) for p in plans}),
            max_abs_diff_vs_reference=max_diff,
            **common,
        )
        if reference_st:
            model, torch = reference_st

            def st_encode(model=model, torch=torch, batch_size=batch_size):
                with torch.inference_mode():
                    return model.encode(sentences, batch_size=batch_size, convert_to_numpy=True)

            st_ms = time_fn(st_encode, **timing)
            st_diff = float(np.abs(ours - st_encode()).max())
            ref = "sentence-transformers"
            extra = {"torch_version": torch.__version__, "torch_threads": torch.get_num_threads()}
            emit(
                BENCHMARK,
                ref,
                shape,
                st_ms,
                ref,
                st_ms,
                sentences_per_s=rate(st_ms),
                **extra,
                **common,
            )
            emit(
                BENCHMARK,
                "jaxhash",
                shape,
                ours_ms,
                ref,
                st_ms,
                sentences_per_s=rate(ours_ms),
                max_abs_diff_vs_reference=st_diff,
                **extra,
                **common,
            )
    if not reference_st:
        print(
            json.dumps(
                {
                    "benchmark": BENCHMARK,
                    "impl": "sentence-transformers",
                    "device": device_name(),
                    "jax_version": jax.__version__,
                    "reference": None,
                    "speedup": None,
                    "status": st_status,
                }
            )
        )


if __name__ == "__main__":
    main()
