"""Where a learned rollout's Poisson's ratio error lies: by the network's ν and by snap-through events.

    python benchmarks/nu_error_by_class.py RUN/eval/results.json [--event-ratio 100] [--startup 20]

Reads the per-network results of `lmp-gnn evaluate` (results.json) and the MD trajectories they
name. For every strain and step count evaluated, prints the mean |ν_est - MD's ν_est| of the learned
rollout and of the zero-acceleration baseline, and the learned mean signed error, for networks
grouped by linear-response ν (metadata `nu_linear`: < -0.3, -0.3..0, >= 0) and split by whether
MD shows an event after the start-up: a snapshot at or past --startup whose mean-square
acceleration is above --event-ratio × the trajectory's median (a snap-through; the measure of the
training's `data.event_ratio`, `lmp_gnn.learning.dataset.event_snapshots`). The first ~20 snapshots are the
start from rest, not quasi-static (docs/protocol.md), so they do not count as events here.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from lmp_gnn.learning.dataset import event_snapshots
from lmp_gnn.physics.trajectory import load_trajectory

CLASSES = (("nu < -0.3", -np.inf, -0.3), ("-0.3 <= nu < 0", -0.3, 0.0), ("nu >= 0", 0.0, np.inf))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("results", type=Path, help="results.json written by lmp-gnn evaluate")
    parser.add_argument("--event-ratio", type=float, default=100.0,
                        help="event threshold, × the trajectory's median mean-square acceleration (default 100)")
    parser.add_argument("--startup", type=int, default=20,
                        help="snapshots at the start that are not counted as events (default 20)")
    args = parser.parse_args(argv)

    networks = json.loads(args.results.read_text())["networks"]
    rows = []
    for net in networks:
        if net.get("nu_linear") is None:
            raise SystemExit(f"{net['name']}: expected metadata nu_linear in the results, got none")
        source = Path(net["source"])      # as evaluate saw it: run from the same directory
        if not source.is_file():
            raise SystemExit(f"{net['name']}: expected its trajectory at {source}, got no such file")
        positions = torch.as_tensor(load_trajectory(source).positions)
        event = bool(event_snapshots(positions, args.event_ratio)[args.startup:].any())
        rows.append((net, float(net["nu_linear"]), event))

    print(f"{len(rows)} networks from {args.results}; events: {sum(e for _, _, e in rows)} networks with a "
          f"snapshot >= {args.startup} above {args.event_ratio:g}x the median mean-square acceleration")
    for key in networks[0]["nu"]:
        print(f"\nν_est at {key}: mean |Δν| learned (baseline), learned mean signed Δν")
        for label, lo, hi in CLASSES:
            for event in (False, True):
                errs = [(n["nu"][key]["learned"]["nu_est"], n["nu"][key]["baseline"]["nu_est"],
                         n["nu"][key]["true"]["nu_est"])
                        for n, nu, e in rows if lo <= nu < hi and e == event]
                errs = [(l - t, b - t) for l, b, t in errs if None not in (l, b, t)]
                if not errs:
                    continue
                d = np.array(errs)
                print(f"  {label:16s} {'events' if event else 'no events':9s} n = {len(d):3d}  "
                      f"{np.abs(d[:, 0]).mean():.3f} ({np.abs(d[:, 1]).mean():.3f})  signed {d[:, 0].mean():+.3f}")


if __name__ == "__main__":
    main()
