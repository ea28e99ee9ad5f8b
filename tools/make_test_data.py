"""Build the small real data committed under ``tests/data/`` from full copies of its sources.

    python tools/make_test_data.py --wordnet DIR --tiny-wnids WNIDS_TXT

* ``tests/data/wordnet/corpora/wordnet.zip``: the part of WordNet 3.0 the tests and the
  shipped class hierarchies touch: the CIFAR-100 senses, HashNet's ImageNet-100 and Tiny
  ImageNet's 200 ids, the synsets the tests name, and every hypernym above them. Unused lines of
  the data files are blanked to spaces of the same length, so every synset keeps its Princeton
  offset (``n02084071`` is still ``dog.n.01``) and the archive stays small; the index files keep
  the whole line of every lemma of a kept synset, so sense numbers are unchanged. WordNet 3.0's
  license allows redistribution with its notice, which the archive carries (``LICENSE``).
  ``DIR`` holds ``corpora/wordnet.zip`` or ``corpora/wordnet/`` (nltk's layout).
* ``tests/data/tiny_imagenet_wnids.txt``: Tiny ImageNet's 200 WordNet ids (identifiers only).
"""

from __future__ import annotations

import argparse
import zipfile
from pathlib import Path

from jaxhash.semantics import known, load_wordnet

OUT = Path(__file__).resolve().parents[1] / "tests" / "data"
# Synsets the tests name beyond the shipped class lists.
TEST_SYNSETS = (
    "tiger.n.02",
    "leopard.n.02",
    "apple.n.01",
    "dog.n.01",
    "domestic_cat.n.01",
    "person.n.01",
    "canine.n.02",
    "big_cat.n.01",
    "cat.n.01",
    "run.v.01",
)
POS_FILES = {"n": "noun", "v": "verb", "a": "adj", "s": "adj", "r": "adv"}


def _closure(wn, seeds) -> set:
    """The seeds and every (instance) hypernym above them."""
    kept, todo = set(), list(seeds)
    while todo:
        synset = todo.pop()
        if synset not in kept:
            kept.add(synset)
            todo += synset.hypernyms() + synset.instance_hypernyms()
    return kept


def _read_corpus(wordnet_dir: Path) -> dict[str, bytes]:
    archive = wordnet_dir / "corpora" / "wordnet.zip"
    if archive.is_file():
        with zipfile.ZipFile(archive) as z:
            return {Path(n).name: z.read(n) for n in z.namelist() if not n.endswith("/")}
    folder = wordnet_dir / "corpora" / "wordnet"
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def _blank_data(text: bytes, offsets: set[int]) -> bytes:
    """Lines at ``offsets`` and the license header kept; every other byte but newlines -> space."""
    out = bytearray(text)
    position = 0
    for line in text.splitlines(keepends=True):
        if not (line.startswith(b" ") or position in offsets):
            end = position + len(line.rstrip(b"\r\n"))
            out[position:end] = b" " * (end - position)
        position += len(line)
    return bytes(out)


def _subset_index(text: bytes, lemmas: set[str]) -> bytes:
    keep = [
        line
        for line in text.splitlines(keepends=True)
        if line.startswith(b" ") or line.split(b" ", 1)[0].decode() in lemmas
    ]
    return b"".join(keep)


def make_wordnet(wordnet_dir: Path, tiny_wnids: list[str]) -> Path:
    wn = load_wordnet(wordnet_dir)
    seeds = [wn.synset(name) for name in (*known.cifar100_synsets().values(), *TEST_SYNSETS)]
    for wnid in (*known.imagenet100_wnids(), *tiny_wnids):
        seeds.append(wn.synset_from_pos_and_offset("n", int(wnid[1:])))
    kept = _closure(wn, seeds)
    files = _read_corpus(wordnet_dir)
    out = {}
    for pos in ("noun", "verb", "adj", "adv"):
        synsets = [s for s in kept if POS_FILES[s.pos()] == pos]
        lemmas = {lemma.name().lower() for s in synsets for lemma in s.lemmas()}
        out[f"data.{pos}"] = _blank_data(files[f"data.{pos}"], {s.offset() for s in synsets})
        out[f"index.{pos}"] = _subset_index(files[f"index.{pos}"], lemmas)
        out[f"{pos}.exc"] = b""
    keys = {lemma.key() for s in kept for lemma in s.lemmas()}
    for name, key_field in (("index.sense", 0), ("cntlist.rev", 0)):
        lines = files[name].splitlines(keepends=True)
        out[name] = b"".join(x for x in lines if x.split(b" ")[key_field].decode() in keys)
    out["lexnames"] = files["lexnames"]
    out["LICENSE"] = files["LICENSE"]
    target = OUT / "wordnet" / "corpora" / "wordnet.zip"
    target.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        for name in sorted(out):
            info = zipfile.ZipInfo(f"wordnet/{name}", date_time=(2006, 12, 6, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, out[name])
    print(f"{target}: {len(kept)} synsets, {target.stat().st_size / 1e6:.2f} MB")
    return target


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wordnet", type=Path, required=True, help="holds corpora/wordnet.zip")
    parser.add_argument("--tiny-wnids", type=Path, required=True, help="Tiny ImageNet wnids.txt")
    args = parser.parse_args(argv)
    wnids = args.tiny_wnids.read_text().split()
    (OUT / "tiny_imagenet_wnids.txt").write_text("\n".join(wnids) + "\n")
    make_wordnet(args.wordnet, wnids)


if __name__ == "__main__":
    main()
