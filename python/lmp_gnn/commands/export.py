"""`lmp-gnn export CKPT -o MODEL.pt`: a training checkpoint -> TorchScript for fix gnn/rollout."""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="training checkpoint (.pt) written by `lmp-gnn train`")
    parser.add_argument("-o", "--output", required=True, help="TorchScript file to write (e.g. model.pt)")
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                        help="dtype of the exported model's features and outputs (default: float32)")
    parser.add_argument("--no-check", action="store_true",
                        help="skip loading the file back and comparing it with the eager model")


def run(args: argparse.Namespace) -> int:
    from lmp_gnn.learning.export import export_checkpoint

    meta = export_checkpoint(args.checkpoint, args.output, dtype=args.dtype, check=not args.no_check)
    print(f"wrote {args.output}")
    for key, value in meta.items():
        print(f"  {key} = {value}")
    return 0
