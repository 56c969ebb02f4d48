"""`lmp-gnn export CKPT -o MODEL.pt`: a training checkpoint -> TorchScript for fix gnn/rollout.

`lmp-gnn export zero --like MODEL.pt -o ZERO.pt`: the zero-acceleration predictor with MODEL's metadata."""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="training checkpoint (.pt) written by `lmp-gnn train`, or `zero`: the "
                        "zero-acceleration predictor a = 0 with the metadata of --like")
    parser.add_argument("--like", help="with `zero`: the exported model whose metadata (history, strain step, box "
                        "length, dtype, ...) the predictor takes")
    parser.add_argument("-o", "--output", required=True, help="TorchScript file to write (e.g. model.pt)")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                        help="dtype of the exported model's features and outputs (default: float32)")
    parser.add_argument("--no-check", action="store_true",
                        help="skip loading the file back and comparing it with the eager model")


def run(args: argparse.Namespace) -> int:
    from lmp_gnn.learning.export import export_checkpoint, export_zero_acceleration

    if (args.checkpoint == "zero") != (args.like is not None):
        raise ValueError("expected --like MODEL with `zero` and only with it, got "
                         + (f"--like {args.like} with checkpoint {args.checkpoint}" if args.like else "`zero` alone"))
    if args.like is not None:
        meta = export_zero_acceleration(args.like, args.output)
    else:
        meta = export_checkpoint(args.checkpoint, args.output, dtype=args.dtype, check=not args.no_check)
    print(f"wrote {args.output}")
    for key, value in meta.items():
        print(f"  {key} = {value}")
    return 0
