"""The ``jaxhash`` command (also ``python -m jaxhash``): thin flag parsing over the library.

jaxhash demo [--workdir DIR]                     train + evaluate the demo config
jaxhash train --config configs/X.py[:arg] --workdir DIR [--set key.path=value ...]
jaxhash evaluate --workdir DIR                   evaluate the last checkpoint again
jaxhash encode --workdir DIR --out codes.npy [--split test]    packed codes, and ids
jaxhash search --queries q.npy --database db.npy --k 10 --out result.npz
jaxhash index --workdir DIR --images FOLDER --out INDEX.npz [--faiss]   codes of image files
jaxhash query --index INDEX.npz --image FILE [--k 10] [--out grid.png]  nearest indexed files

``--set`` overrides config fields: ``key.path=value`` items after one ``--set``, each value a
Python literal, else a string (``--set model.bits=32 data.mean="(0.5, 0.5, 0.5)"
data.manual_dir=/data``); see :mod:`jaxhash.config`. Each evaluation writes
``DIR/eval/step_<N>/report.json``; checkpoints hold the config the run was trained with.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path


def _trained(workdir: str):
    """A run folder's config (saved with its newest checkpoint), data info, model, mesh and
    newest state (``checkpoints.RunSetup``)."""
    from jaxhash import checkpoints

    config = checkpoints.saved_config(workdir)
    if config is None:
        raise SystemExit(f"{workdir} has no checkpoint: train into it first (jaxhash train).")
    return checkpoints.restore_run(config, workdir)


def _summary(report: dict | None, workdir: str) -> None:
    if report is None:
        return
    from jaxhash.model_eval import report_dir

    random_codes = report["rows"].get("random_codes", {}).get("summary")
    print(json.dumps({"metrics": report["metrics"], "random_codes": random_codes}, indent=1))
    print(f"report: {report_dir(workdir, report['step']) / 'report.json'}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="jaxhash", description="Semantic hashing in JAX.")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="train + evaluate the demo (no download)")
    demo.add_argument("--workdir", default="runs/demo")
    demo.add_argument("--quick", action="store_true", help="the seconds-long version")
    train_p = commands.add_parser("train", help="train (resumes) and evaluate")
    train_p.add_argument("--config", required=True, help="configs/X.py or configs/X.py:arg")
    train_p.add_argument("--workdir", required=True)
    train_p.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="override config fields: key.path=value, the value a Python literal else a string, "
        "e.g. --set model.bits=32 data.manual_dir=/data",
    )
    evaluate_p = commands.add_parser("evaluate", help="evaluate a run's last checkpoint")
    evaluate_p.add_argument("--workdir", required=True)
    encode_p = commands.add_parser("encode", help="packed codes of a split to .npy")
    encode_p.add_argument("--workdir", required=True)
    encode_p.add_argument("--split", default="")
    encode_p.add_argument("--out", required=True)
    search_p = commands.add_parser("search", help="Hamming top-k of packed codes")
    search_p.add_argument("--queries", required=True, help=".npy of packed uint8 codes")
    search_p.add_argument("--database", required=True, help=".npy of packed uint8 codes")
    search_p.add_argument("--k", type=int, default=10)
    search_p.add_argument("--exclude-self", action="store_true")
    search_p.add_argument("--out", required=True, help=".npz with distances and indices")
    index_p = commands.add_parser("index", help="encode a folder of images into an index")
    index_p.add_argument("--workdir", required=True, help="the trained run")
    index_p.add_argument("--images", required=True, help="folder of images (recursive)")
    index_p.add_argument("--out", required=True, help="index file (.npz)")
    index_p.add_argument("--faiss", action="store_true", help="also write INDEX.faiss")
    query_p = commands.add_parser("query", help="nearest indexed images of an image")
    query_p.add_argument("--index", required=True, help="index file of jaxhash index")
    query_p.add_argument("--image", required=True, help="the query image file")
    query_p.add_argument("--k", type=int, default=10)
    query_p.add_argument("--workdir", default=None, help="encoding run (default: the index's)")
    query_p.add_argument("--out", default=None, help="grid picture (default: beside the index)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    if args.command in ("demo", "train"):
        from jaxhash import config as config_lib
        from jaxhash import train

        if args.command == "demo":
            config = config_lib.demo_config("quick" if args.quick else "")
        else:
            config = config_lib.load_config_file(args.config)
            config_lib.apply_overrides(config, args.set)
        _, report = train.run(config, args.workdir)
        _summary(report, args.workdir)
    elif args.command == "evaluate":
        from jaxhash.model_eval import Evaluator

        run = _trained(args.workdir)
        report = Evaluator(run.config, run.info, run.model, run.mesh).evaluate(
            run.state, args.workdir
        )
        _summary(report, args.workdir)
    elif args.command == "encode":
        import numpy as np

        from jaxhash import retrieval
        from jaxhash.model_eval import Evaluator

        run = _trained(args.workdir)
        codes, _, ids, _ = Evaluator(run.config, run.info, run.model, run.mesh).encode(
            run.state.variables, args.split or run.info.eval_split
        )
        packed = np.asarray(retrieval.pack_codes(codes))
        np.save(args.out, packed)
        ids_path = str(Path(args.out).with_suffix("")) + "_ids.npy"
        np.save(ids_path, ids)
        print(
            f"wrote {args.out}: {packed.shape[0]} codes of {codes.shape[1]} bits (packed); "
            f"their example ids in {ids_path}"
        )
    elif args.command == "search":
        import numpy as np

        from jaxhash import retrieval

        distances, indices = retrieval.hamming_topk(
            np.load(args.queries),
            np.load(args.database),
            args.k,
            exclude_self=args.exclude_self,
        )
        np.savez(args.out, distances=np.asarray(distances), indices=np.asarray(indices))
        print(f"wrote {args.out}: top-{args.k} of {len(indices)} queries")
    elif args.command == "index":
        from jaxhash import image_index

        index, path = image_index.build_index(args.workdir, args.images, args.out, faiss=args.faiss)
        print(f"wrote {path}: {len(index)} images, {index.bits}-bit codes")
    elif args.command == "query":
        from jaxhash import image_index

        result = image_index.query_index(
            args.index, args.image, k=args.k, workdir=args.workdir, out=args.out
        )
        print(image_index.format_results(result))
        print(f"picture: {result.picture}")


if __name__ == "__main__":
    main(sys.argv[1:])
