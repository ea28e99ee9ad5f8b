"""The ``jaxhash`` command (also ``python -m jaxhash``): thin flag parsing over the library.

jaxhash demo [--workdir DIR] [--quick]           train + evaluate the demo config
jaxhash train --config configs/X.py[:arg] --workdir DIR [--set key.path=value ...]
      [--allow-config-change]                      resume although the config changed
jaxhash evaluate --workdir DIR                   evaluate the last checkpoint again
jaxhash encode --workdir DIR --out codes.npy [--split test]    packed codes, and ids
jaxhash search --queries q.npy --database db.npy|INDEX.npz --k 10 --out result.npz
jaxhash index --workdir DIR --images FOLDER --out INDEX.npz [--faiss [FACTORY]]  image codes
jaxhash query --index INDEX.npz --image FILE [--k 10] [--out grid.png]  nearest indexed files
jaxhash serve --index INDEX.npz [--workdir DIR] [--host 127.0.0.1] [--port 8000]  web page + API

``--set`` overrides config fields: ``key.path=value`` items, each value a Python literal, else
a string; repeated ``--set`` flags add up (``--set model.bits=32 data.mean="(0.5, 0.5, 0.5)"
--set data.manual_dir=/data``); see :mod:`jaxhash.config`. Each evaluation writes
``DIR/eval/step_<N>/report.json``; checkpoints hold the config the run was trained with.

The console (:mod:`jaxhash.console`): a few lines (the data set, built or reused; model and
devices; where the checkpoints go), one progress bar, then a table of the results and the
report's path. Library logs and TensorFlow's start-up lines stay out. A failure is one line,
``jaxhash: error: <what>; <how to fix>``, and a non-zero exit status. ``--verbose`` (before or
after the command) shows every library's log and the tracebacks.

Each command is a :class:`Command` in :data:`COMMANDS`: its flags and the function that runs
it; heavy imports (JAX, TensorFlow) happen inside the functions, after the console is set up.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Callable
from pathlib import Path

from jaxhash import console


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line: ``jaxhash: error: ...; see --help``."""

    def error(self, message: str):
        raise _UsageError(f"{message}; see `{self.prog} --help`")


class _UsageError(ValueError):
    """A command line that does not parse."""


@dataclasses.dataclass(frozen=True)
class Command:
    """A subcommand: ``add_arguments(parser)`` declares its flags, ``run(args)`` runs it."""

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], None]


# ----------------------------------------------------------------------------- shared


def _results(report: dict | None, workdir: str) -> None:
    """The results table and the report's path on stdout."""
    if report is None:
        return
    from jaxhash.evaluation import report_dir

    print(console.results_table(report))
    print(f"report: {report_dir(workdir, report['step']) / 'report.json'}")


# ----------------------------------------------------------------------------- commands


def _demo_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workdir", default="runs/demo")
    parser.add_argument("--quick", action="store_true", help="the seconds-long version")


def _train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="configs/X.py or configs/X.py:arg")
    parser.add_argument("--workdir", required=True)
    parser.add_argument(
        "--set",
        nargs="+",
        action="extend",
        default=[],
        metavar="KEY=VALUE",
        help="override config fields: key.path=value, the value a Python literal else a string, "
        "e.g. --set model.bits=32 data.manual_dir=/data (repeated --set flags add up)",
    )
    parser.add_argument(
        "--allow-config-change",
        action="store_true",
        help="resume the workdir's checkpoint although the config differs from its own",
    )


def train_config(args: argparse.Namespace):
    """The config of ``jaxhash demo`` / ``jaxhash train`` (file, then the ``--set`` items)."""
    from jaxhash import config as config_lib

    if args.command == "demo":
        return config_lib.demo_config("quick" if args.quick else "")
    config = config_lib.load_config_file(args.config)
    config_lib.apply_overrides(config, args.set)
    return config


def _train(args: argparse.Namespace) -> None:
    from jaxhash import train

    allow = getattr(args, "allow_config_change", False)
    _, report = train.run(train_config(args), args.workdir, allow_config_change=allow)
    _results(report, args.workdir)


def _workdir_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workdir", required=True)


def _evaluate(args: argparse.Namespace) -> None:
    from jaxhash.run_folder import open_run

    report = open_run(args.workdir).evaluate()
    _results(report, args.workdir)


def _encode_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--split", default="")
    parser.add_argument("--out", required=True)


def _encode(args: argparse.Namespace) -> None:
    import numpy as np

    from jaxhash import retrieval
    from jaxhash.run_folder import open_run

    codes, _, ids, _ = open_run(args.workdir).encode_split(args.split or None)
    packed = np.asarray(retrieval.pack_codes(codes))
    np.save(args.out, packed)
    ids_path = str(Path(args.out).with_suffix("")) + "_ids.npy"
    np.save(ids_path, ids)
    print(
        f"wrote {args.out}: {packed.shape[0]} codes of {codes.shape[1]} bits (packed); "
        f"their example ids in {ids_path}"
    )


def _search_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--queries", required=True, help=".npy of packed uint8 codes")
    parser.add_argument(
        "--database",
        required=True,
        help=".npy of packed uint8 codes (brute force), or an INDEX.npz of jaxhash index "
        "(searched exactly by its multi-index hash)",
    )
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--exclude-self", action="store_true")
    parser.add_argument("--out", required=True, help=".npz with distances and indices")


def _packed_codes(path: str):
    """A .npy of packed codes; a ValueError naming the file when it is not one."""
    import zipfile

    import numpy as np

    try:
        codes = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
        raise ValueError(
            f"{path} is not a .npy of packed codes ({console.one_line(err)}); write it with "
            "jaxhash encode --out codes.npy."
        ) from err
    if not isinstance(codes, np.ndarray):  # an .npz archive
        codes.close()
        raise ValueError(
            f"{path} is not a .npy of packed codes (an .npz archive); write it with "
            "jaxhash encode --out codes.npy."
        )
    return codes


def _search(args: argparse.Namespace) -> None:
    import numpy as np

    from jaxhash import retrieval

    queries = _packed_codes(args.queries)
    if Path(args.database).suffix == ".npz":
        from jaxhash import image_index

        tables = image_index.load_index(args.database).multi_index
        distances, indices = tables.search(queries, args.k, exclude_self=args.exclude_self)
    else:
        distances, indices = retrieval.hamming_topk(
            queries, _packed_codes(args.database), args.k, exclude_self=args.exclude_self
        )
    np.savez(args.out, distances=np.asarray(distances), indices=np.asarray(indices))
    print(f"wrote {args.out}: top-{args.k} of {len(indices)} queries")


def _index_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workdir", required=True, help="the trained run")
    parser.add_argument("--images", required=True, help="folder of images (recursive)")
    parser.add_argument("--out", required=True, help="index file (.npz)")
    parser.add_argument(
        "--faiss",
        nargs="?",
        const="BFlat",
        default=None,
        metavar="FACTORY",
        help="also write INDEX.faiss: an IndexBinaryFlat, or the faiss.index_binary_factory "
        "string FACTORY (BIVF1024, BHNSW32, BHash4x16, ...)",
    )


def _index(args: argparse.Namespace) -> None:
    from jaxhash import image_index

    index, path = image_index.build_index(args.workdir, args.images, args.out, faiss=args.faiss)
    print(f"wrote {path}: {len(index)} images, {index.bits}-bit codes")


def _query_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--index", required=True, help="index file of jaxhash index")
    parser.add_argument("--image", required=True, help="the query image file")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--workdir", default=None, help="encoding run (default: the index's)")
    parser.add_argument("--out", default=None, help="grid picture (default: beside the index)")


def _query(args: argparse.Namespace) -> None:
    from jaxhash import image_index

    result = image_index.query_index(
        args.index, args.image, k=args.k, workdir=args.workdir, out=args.out
    )
    print(image_index.format_results(result))
    print(f"picture: {result.picture}")


def _serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--index", required=True, help="index file of jaxhash index")
    parser.add_argument("--workdir", default=None, help="encoding run (default: the index's)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: local)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--max-upload-mb", type=float, default=20.0, help="largest upload")
    parser.add_argument("--max-megapixels", type=float, default=50.0, help="largest image")
    parser.add_argument("--max-k", type=int, default=100, help="most results per search")
    parser.add_argument("--threads", type=int, default=None, help="uploads at once (cores)")
    parser.add_argument(
        "--max-batch",
        type=int,
        default=64,
        help="most concurrent searches answered by one batched search (default 64; 1: alone)",
    )


def _serve(args: argparse.Namespace) -> None:
    from jaxhash import serve

    limits = serve.Limits(
        max_upload_bytes=int(args.max_upload_mb * 2**20),
        max_pixels=int(args.max_megapixels * 1e6),
        max_k=args.max_k,
    )
    serve.serve(
        args.index,
        workdir=args.workdir,
        host=args.host,
        port=args.port,
        limits=limits,
        threads=args.threads,
        max_batch=args.max_batch,
    )


COMMANDS: list[Command] = [
    Command("demo", "train + evaluate the demo (no download)", _demo_arguments, _train),
    Command("train", "train (resumes) and evaluate", _train_arguments, _train),
    Command("evaluate", "evaluate a run's last checkpoint", _workdir_argument, _evaluate),
    Command("encode", "packed codes of a split to .npy", _encode_arguments, _encode),
    Command("search", "Hamming top-k of packed codes", _search_arguments, _search),
    Command("index", "encode a folder of images into an index", _index_arguments, _index),
    Command("query", "nearest indexed images of an image", _query_arguments, _query),
    Command("serve", "web page and JSON API over an index", _serve_arguments, _serve),
]


# ----------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command in :data:`COMMANDS`, with the global ``--verbose``."""
    verbose = dict(action="store_true", help="show library logs and tracebacks")
    parser = _Parser(prog="jaxhash", description="Semantic hashing in JAX.")
    parser.add_argument("--verbose", "-v", **verbose)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        sub = commands.add_parser(command.name, help=command.help)
        # after the command too; SUPPRESS keeps a --verbose given before it
        sub.add_argument("--verbose", "-v", **verbose, default=argparse.SUPPRESS)
        command.add_arguments(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run ``jaxhash`` with ``argv`` (default: ``sys.argv[1:]``); the exit status.

    Errors: one line on stderr (:func:`jaxhash.console.error_line`), status 1 (2 for a command
    line that does not parse, 130 when interrupted); with ``--verbose`` the traceback first.
    Training stopped by SIGTERM or SIGINT after saving a checkpoint: one line saying so and
    where, status 128 + the signal's number (143, 130).
    """
    try:
        args = build_parser().parse_args(sys.argv[1:] if argv is None else list(argv))
    except _UsageError as error:
        print(f"jaxhash: error: {error}", file=sys.stderr)
        return 2
    console.configure(verbose=args.verbose)
    run = next(c.run for c in COMMANDS if c.name == args.command)
    try:
        run(args)
    except (Exception, KeyboardInterrupt) as error:
        if args.verbose:
            print(console.traceback_text(error), file=sys.stderr, end="")
        print(console.error_line(error), file=sys.stderr)
        signal_number = getattr(error, "signal_number", None)  # interruptions.TrainingInterrupted
        if isinstance(error, KeyboardInterrupt) and signal_number:
            return 128 + signal_number
        return 130 if isinstance(error, KeyboardInterrupt) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
