"""`lmp-gnn train [CONFIG.yaml] [flags]`: train a GNN simulator on trajectory files.

Flags override the config file; `--set section.key=value` overrides any key (YAML value).
The keys, their defaults and their checks: lmp_gnn/learning/train_config.py; the training itself:
lmp_gnn/learning/train.py; an example: examples/train_small.yaml. Under
`torchrun --nproc_per_node P -m lmp_gnn.cli train ...` it trains with DistributedDataParallel
(gloo on CPU).
"""

from __future__ import annotations

import argparse
from pathlib import Path


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", nargs="?", type=Path,
                        help="YAML config (keys and defaults: lmp_gnn.learning.train_config)")
    parser.add_argument("--data", action="append", metavar="PATH",
                        help="training trajectories: file, directory or glob (repeatable; replaces data.train)")
    parser.add_argument("--val-data", action="append", metavar="PATH",
                        help="validation trajectories (repeatable; replaces data.val)")
    parser.add_argument("-o", "--out", help="output directory for checkpoints and metrics (out)")
    parser.add_argument("--steps", type=int, help="optimiser steps (train.steps)")
    parser.add_argument("--batch-size", type=int, help="graphs per batch per process (train.batch_size)")
    parser.add_argument("--lr", type=float, help="initial learning rate (train.lr)")
    parser.add_argument("--lr-final", type=float, help="learning rate at the last step (train.lr_final)")
    parser.add_argument("--history", type=int, help="velocities per node h, 1..3 (model.history)")
    parser.add_argument("--layers", type=int, help="message-passing layers k (model.layers)")
    parser.add_argument("--noise-std", type=float, help="random-walk input noise, distance/step (data.noise_std)")
    parser.add_argument("--seed", type=int, help="random seed (train.seed)")
    parser.add_argument("--device", help="auto, cpu, cuda or cuda:N (train.device)")
    parser.add_argument("--dtype", choices=("float32", "float64"), help="training dtype (train.dtype)")
    parser.add_argument("--threads", type=int, help="torch threads per process (train.num_threads)")
    parser.add_argument("--time-limit", type=float, metavar="MIN",
                        help="stop cleanly after this many minutes, writing last.pt (train.time_limit)")
    parser.add_argument("--unroll", type=int, metavar="K",
                        help="learned steps per training window, loss over all K (train.unroll; 1 = one-step)")
    parser.add_argument("--init", metavar="CKPT",
                        help="start from this checkpoint's weights and normalisers, with a fresh optimiser "
                             "and schedule: fine-tuning (train.init)")
    parser.add_argument("--resume", nargs="?", const="last", metavar="CKPT",
                        help="continue from a checkpoint (default: OUT/last.pt)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override any config key, e.g. --set train.val_every=200 (repeatable)")


def overrides_from_args(args: argparse.Namespace) -> dict:
    """The nested config overrides the flags stand for."""
    import yaml

    over: dict = {}

    def put(path: str, value) -> None:
        if value is None:
            return
        node = over
        keys = path.split(".")
        for k in keys[:-1]:
            node = node.setdefault(k, {})
        node[keys[-1]] = value

    put("data.train", [str(p) for p in args.data] if args.data else None)
    put("data.val", [str(p) for p in args.val_data] if args.val_data else None)
    put("out", args.out)
    put("train.steps", args.steps)
    put("train.batch_size", args.batch_size)
    put("train.lr", args.lr)
    put("train.lr_final", args.lr_final)
    put("model.history", args.history)
    put("model.layers", args.layers)
    put("data.noise_std", args.noise_std)
    put("train.seed", args.seed)
    put("train.device", args.device)
    put("train.dtype", args.dtype)
    put("train.num_threads", args.threads)
    put("train.time_limit", args.time_limit)
    put("train.unroll", args.unroll)
    put("train.init", args.init)
    if args.no_progress:
        put("train.progress", False)
    for item in args.set:
        if "=" not in item:
            raise ValueError(f"--set: expected KEY=VALUE, e.g. train.lr=1e-3, got {item!r}")
        key, value = item.split("=", 1)
        put(key.strip(), yaml.safe_load(value))
    return over


def run(args: argparse.Namespace) -> int:
    from lmp_gnn.files import removed_on_failure
    from lmp_gnn.learning.train import load_config, run_training

    cfg = load_config(args.config, overrides_from_args(args))
    resume = None
    if args.resume is not None:
        resume = Path(cfg.out) / "last.pt" if args.resume == "last" else Path(args.resume)
    # a run that fails before its first checkpoint leaves nothing (a later failure keeps its
    # checkpoints and metrics: they are the training so far)
    with removed_on_failure(cfg.out, keep=lambda created: any(p.suffix == ".pt" for p in created)):
        summary = run_training(cfg, resume=resume)
    return 0 if summary["step"] > 0 or resume is not None else 1
