"""Per-step cost of fix gnn/rollout's Python backend against its TorchScript backend, N = 1k and 10k.

One paper-size model (GNNSimulator, h = 3, k = 1, width 128, untrained, float32) three ways, each
in a deck run by plain `lmp -in` (so the Python backend embeds its interpreter), on a perturbed
periodic triangular lattice, with the fix's default of 1 torch thread:

    torchscript      the exported TorchScript file through the TorchScript backend (no Python)
    python/scripted  the same file loaded in Python (lmp_gnn.learning.export.load_exported) through the
                     Python backend: the same kernels, so the difference is the bridge itself
    python/eager     the un-exported GNNSimulator in eager PyTorch through the Python backend

and, to isolate the bridge's fixed cost per call from the model's, a model that returns zeros
(torch.zeros [N, 2]) through both backends (torchscript/zero, python/zero).

Per-step time = LAMMPS loop time / steps of a measured run after a warm-up run, the best of
`--repeats` rounds in which one `lmp` process runs the three in turn (so that load from other
processes biases none of them); printed with the ratio to torchscript, in one run of this script:

    .venv/bin/python benchmarks/bridge_overhead.py [--sizes 1000 10000] [--threads 1]

This file is also the factory module of the Python backend (FACTORY specs below); the model and
its metadata are read from $LMP_GNN_BENCH_DIR, written by the main program.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from lmp_gnn.step.metadata import model_metadata, to_strings

THIS = Path(__file__).resolve()
# the extra files of the exported model and the metadata of the Python factories
METADATA = to_strings(model_metadata(history=3, layers=1, delta_l=0.002, strain_rate=2.5e-6, timestep=0.05,
                                     md_steps_per_step=900.0, dtype="float32"))


# ------------------------------------------------------------------ factories (Python backend)
def scripted():
    from lmp_gnn.learning.export import load_exported

    return load_exported(Path(os.environ["LMP_GNN_BENCH_DIR"]) / "model.pt")


def zero():
    import torch

    return (lambda x, ei, e: torch.zeros(x.shape[0], 2, dtype=x.dtype)), dict(METADATA)


def eager():
    import torch

    from lmp_gnn.learning.model import GNNSimulator

    model = GNNSimulator()
    model.load_state_dict(torch.load(Path(os.environ["LMP_GNN_BENCH_DIR"]) / "state.pt"))
    return model.float().eval(), dict(METADATA)


# ------------------------------------------------------------------ the benchmark
def _zero_module():
    import torch

    class ZeroModule(torch.nn.Module):
        """TorchScript twin of `zero`."""

        def forward(self, node_features: torch.Tensor, edge_index: torch.Tensor,
                    edge_features: torch.Tensor) -> torch.Tensor:
            return torch.zeros(node_features.shape[0], 2, dtype=node_features.dtype)

    return ZeroModule


def make_model(outdir: Path) -> None:
    import torch

    from lmp_gnn.learning.export import quiet_jit, script_model
    from lmp_gnn.learning.model import GNNSimulator

    ZeroModule = _zero_module()
    torch.manual_seed(0)
    model = GNNSimulator()                        # paper size: h = 3, k = 1, width 128
    model.node_norm.std.fill_(1e-3)
    model.target_norm.std.fill_(1e-6)             # small steps: nothing leaves the box
    torch.save(model.state_dict(), outdir / "state.pt")
    extra = {k: v.encode() for k, v in METADATA.items()}
    with quiet_jit():
        torch.jit.save(script_model(model, "float32"), str(outdir / "model.pt"), _extra_files=extra)
        torch.jit.save(torch.jit.script(ZeroModule()), str(outdir / "zero.pt"), _extra_files=extra)


def lattice(n_target: int, seed: int = 0):
    """A jittered periodic triangular network of about n_target nodes."""
    from lmp_gnn.physics.generate import triangular_network

    nx = int(round(np.sqrt(n_target)))
    return triangular_network(nx, nx + (nx % 2), seed=seed)


def ms_per_step(variants: list[tuple[str, str]], data: Path, workdir: Path, steps: int, threads: int,
                repeats: int) -> dict[str, float]:
    """{name: ms per step}: one `lmp` process runs the variants in turn, `repeats` rounds (each
    from the same start: read_data, a warm-up run and a measured run); the best round of each is
    kept, so that load from other processes on a shared machine biases none of them."""
    setup = f"""clear
units lj
dimension 2
atom_style bond
boundary p p p
atom_modify map array
bond_style harmonic
read_data {data}
pair_style zero 1.0 nocoeff
pair_coeff * *
comm_modify cutoff 3.0
timestep 0.05
velocity all set 0.0 0.0 0.0
thermo 0
"""
    blocks = []
    for _ in range(repeats):
        for _, model in variants:      # every block from the same start (read_data)
            blocks.append(setup + f"fix g all gnn/rollout {model} threads {threads}\nrun 3\nrun {steps}\n")
    deck = "".join(blocks)
    (workdir / "in.bench").write_text(deck)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    out = subprocess.run([str(Path(sys.executable).parent / "lmp"), "-in", "in.bench", "-log", "none", "-nocite"],
                         cwd=workdir, capture_output=True, text=True, env=env, timeout=1800)
    text = out.stdout + out.stderr
    if out.returncode != 0:
        raise RuntimeError(f"lmp failed:\n{text[-3000:]}")
    loops = re.findall(r"Loop time of ([0-9.eE+-]+) on \d+ procs for (\d+) steps", text)
    measured = [1000.0 * float(sec) / int(n) for sec, n in loops[1::2]]      # every second run
    best: dict[str, float] = {}
    for k, ms in enumerate(measured):
        name = variants[k % len(variants)][0]
        best[name] = min(best.get(name, float("inf")), ms)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (fix keyword threads)")
    ap.add_argument("--steps", type=int, default=0, help="measured steps (default: 60 at 1k, 15 at 10k)")
    ap.add_argument("--repeats", type=int, default=3, help="rounds over the variants; the best is kept")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bridge_overhead.") as tmp:
        tmp = Path(tmp)
        os.environ["LMP_GNN_BENCH_DIR"] = str(tmp)
        make_model(tmp)
        variants = [("torchscript", str(tmp / "model.pt")),
                    ("python/scripted", f"python {THIS}:scripted"),
                    ("python/eager", f"python {THIS}:eager"),
                    ("torchscript/zero", str(tmp / "zero.pt")),
                    ("python/zero", f"python {THIS}:zero")]
        print(f"fix gnn/rollout per learned step, GNNSimulator h=3 k=1 width 128 float32, "
              f"{args.threads} torch thread(s), lmp -in")
        print(f"{'N':>7} {'backend':>16} {'ms/step':>9} {'ratio':>7} {'diff ms':>8}   "
              f"(best of {args.repeats} rounds; ratio and diff against the torchscript row above)")
        for n_target in args.sizes:
            net = lattice(n_target)
            data = net.write_lammps_data(tmp / f"net{n_target}.data")
            steps = args.steps or (60 if net.n_nodes <= 2000 else 15)
            best = ms_per_step(variants, data, tmp, steps, args.threads, args.repeats)
            for name, _ in variants:
                base = best["torchscript/zero" if name.endswith("zero") else "torchscript"]
                print(f"{net.n_nodes:>7} {name:>16} {best[name]:9.3f} {best[name] / base:7.3f} "
                      f"{best[name] - base:8.3f}", flush=True)


if __name__ == "__main__":
    main()
