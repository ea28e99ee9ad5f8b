"""The ``jaxhash`` command: thin argument parsing over the library."""

from __future__ import annotations

import argparse


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="jaxhash", description="Semantic hashing in JAX.")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="fit codes to a class tree with the paper's losses")
    demo.add_argument("--bits", type=int, default=16)
    demo.add_argument("--steps", type=int, default=300)
    args = parser.parse_args(argv)
    if args.command == "demo":
        from jaxhash import loss_demo

        loss_demo.run(bits=args.bits, steps=args.steps)


if __name__ == "__main__":
    main()
