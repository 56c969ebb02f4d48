"""`lmp-gnn <command>`: the command-line interface.

Each command lives in lmp_gnn/commands/<name>.py and provides
`configure(parser: argparse.ArgumentParser) -> None` and `run(args) -> int`;
this file only dispatches, so commands stay next to nothing but their own options.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys

# name -> (module, one-line help). Modules are imported only when their command runs.
COMMANDS = {
    "networks": ("lmp_gnn.commands.networks", "generate disordered elastic networks and tune their Poisson's ratio"),
    "simulate": ("lmp_gnn.commands.simulate", "compress networks with LAMMPS MD and write trajectories"),
    "import": ("lmp_gnn.commands.import_dump", "turn a LAMMPS data file and dump of a compression into a trajectory"),
    "train": ("lmp_gnn.commands.train", "train a GNN simulator on trajectories"),
    "export": ("lmp_gnn.commands.export", "export a checkpoint to TorchScript for fix gnn/rollout"),
    "rollout": ("lmp_gnn.commands.rollout", "learned rollout of trajectories in Python (the reference)"),
    "evaluate": ("lmp_gnn.commands.evaluate", "compare learned, baseline and true trajectories; write plots and JSON"),
    "demo": ("lmp_gnn.commands.demo", "the end-to-end demo: networks, MD, training, LAMMPS comparison, report"),
}


# argparse (before Python 3.13) takes `-1e-3` for an option and answers "expected one argument":
# every number with a minus sign, exponents included, is a value (no option of ours looks like one)
NEGATIVE_NUMBER = re.compile(r"^-(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?$")


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lmp-gnn", description="Learned GNN simulators and LAMMPS MD in one place.")
    parser.add_argument("--version", action="version", version=f"lmp-gnn {_version()}")
    parser.add_argument("--debug", action="store_true",
                        help="show the Python traceback of an error (default: one line naming the problem)")
    sub = parser.add_subparsers(dest="command", metavar="<command>")
    for name, (module, helptext) in COMMANDS.items():
        p = sub.add_parser(name, help=helptext, description=helptext)
        p._negative_number_matcher = NEGATIVE_NUMBER
        if only is None or only == name:
            try:
                importlib.import_module(module).configure(p)
            except ModuleNotFoundError as exc:
                if exc.name != module:
                    raise
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    wanted = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(wanted if wanted in COMMANDS else None)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    module = importlib.import_module(COMMANDS[args.command][0])
    try:
        return int(module.run(args) or 0)
    except KeyboardInterrupt:
        if args.debug:
            raise
        print(f"lmp-gnn {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:   # bad input ends in one line; --debug shows where it came from
        if args.debug:
            raise
        print(f"lmp-gnn {args.command}: error: {exc}", file=sys.stderr)
        return 1


def _version() -> str:
    from lmp_gnn import __version__

    return __version__


if __name__ == "__main__":
    sys.exit(main())
