"""fix gnn/rollout speed, measured in one run: learned step vs Python/PyG eager, vs LAMMPS MD, vs
the machine's matmul rate, and resident memory over a long run.

    python benchmarks/fix_speed.py [--sizes 32 100 316] [--steps 20] [--memory-steps 10000] [--width 128]

For each n the network is the jittered periodic triangular lattice
`lmp_gnn.physics.generate.triangular_network(n, n)` (N ≈ n²: 1k, 10k, 100k) and the model the paper-size
GNNSimulator (h = 3, k = 1, width 128, or --width), untrained, float32, output scaled by 1e-6 so atoms stay
put while timing (examples/leap/bench_leap.py's Quiet). One torch thread, one MPI rank, everywhere.

- fix: `lmp -in` with `fix gnn/rollout` (TorchScript through libtorch, box held), ms per learned
  step (LAMMPS loop time / steps) and the last model call's ms (f_ID[2]);
- PyG eager: `lmp_gnn.step.rollout.rollout` (features, box rule and update in Python) driving the same
  weights through `GNNSimulator.forward_reference` (PyG MessagePassing, eager), ms per step;
- MD: `lmp -in` with the compression protocol of lmp_gnn.physics.md (nve, langevin T = 1e-10,
  press/berendsen on y, deform on x) on the same network, ms per MD step; one learned step
  is the shipped model's strain step (its delta_l over its box_length, the fix's default:
  Δl = that strain × Lx, docs/formats.md "A learned step is a strain step") and stands for
  ξ = round(Δl / (rate dt Lx)) MD steps at the data's rate 2.5e-6 and dt 0.05, the same ξ at every
  size; the leap-frog speedup is ξ × MD ms / fix ms, also shown as seconds per 1 % strain, beside
  the speedup a fixed Δl = delta_l would give (ξ falling as 1/Lx: the step before strain steps);
- GFLOP/s: floating-point operations of one model call (torch.utils.flop_counter on the eager
  factored forward, the ops the TorchScript runs) over the fix's model-call time, beside
  torch.mm's rate on this machine (float32, 1 thread) for the model's largest matmul shape
  [E, 128] x [128, 128] and for [2048, 2048]²;
- memory (`--memory-steps`, N ≈ 1k): resident set size of a process running the fix in
  LAMMPS (in process) after 100 learned steps and after --memory-steps, and their ratio.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples" / "leap"))
from bench_leap import NETWORK_DECK, Quiet, timing_deck  # noqa: E402
from make_inputs import SPRINGS  # noqa: E402

from lmp_gnn.learning.export import script_model  # noqa: E402
from lmp_gnn.learning.model import GNNSimulator, ModelConfig  # noqa: E402
from lmp_gnn.physics.generate import triangular_network  # noqa: E402
from lmp_gnn.physics.md import md_steps_per_snapshot  # noqa: E402
from lmp_gnn.step.metadata import model_metadata, to_strings  # noqa: E402
from lmp_gnn.step.rollout import rollout  # noqa: E402
from lmp_gnn.step.rules import step_delta_l  # noqa: E402

warnings.filterwarnings("ignore", category=DeprecationWarning, message=r".*torch\.jit.*")
RATE, DT = 2.5e-6, 0.05     # the data protocol (NETWORK_DECK has dt 0.05)
SHIPPED = ROOT / "python" / "lmp_gnn" / "data" / "demo_model.pt"


def shipped_step() -> tuple[float, float]:
    """(delta_l, box_length) of the shipped model: its strain step is delta_l / box_length."""
    from lmp_gnn.learning.export import load_exported

    _, meta = load_exported(SHIPPED)
    return float(meta["delta_l"]), float(meta["box_length"])
BINDIR = Path(sys.executable).parent


class EagerPyG(torch.nn.Module):
    """The same weights through plain PyG eager message passing, output scaled as Quiet's."""

    def __init__(self, model: GNNSimulator):
        super().__init__()
        self.model = model

    @torch.no_grad()
    def forward(self, node_features, edge_index, edge_features):
        return 1e-6 * self.model.forward_reference(node_features, edge_index, edge_features)


def md_deck(steps: int) -> str:
    """The compression protocol (lmp_gnn.physics.md) on net.data: warm-up, then `steps` timed MD steps."""
    return NETWORK_DECK + f"""fix press all press/berendsen y 0.0 0.0 1.0 modulus 1.0 dilate all
fix bath all langevin 1e-10 1e-10 10.0 4928 zero yes
fix integrate all nve
fix squeeze all deform 1 x erate {-RATE} remap x
fix planar all enforce2d
thermo 0
run 20
run {steps}
"""


def lmp_loop_ms(deck: str, workdir: Path, steps: int, extra: str = "") -> tuple[float, str]:
    """Milliseconds per step of the last run of `deck` under `lmp -in`, and LAMMPS's output."""
    (workdir / "in.bench").write_text(deck + extra)
    out = subprocess.run([str(BINDIR / "lmp"), "-in", "in.bench", "-log", "none", "-nocite"], cwd=workdir,
                         capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    text = out.stdout + out.stderr
    if out.returncode:
        sys.exit(text[-3000:])
    loop = float(re.findall(r"Loop time of ([0-9.eE+-]+) on", text)[-1])
    return 1000.0 * loop / steps, text


def mm_gflops(m: int, k: int, n: int, seconds: float = 1.0) -> float:
    """torch.mm float32 rate (GFLOP/s) on [m, k] x [k, n] at the current thread count."""
    a, b = torch.randn(m, k), torch.randn(k, n)
    for _ in range(3):
        torch.mm(a, b)
    calls, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        torch.mm(a, b)
        calls += 1
    return 2.0 * m * k * n * calls / (time.perf_counter() - t0) / 1e9


def model_flops(model: GNNSimulator, net) -> tuple[float, int]:
    """(FLOPs of one forward on `net`'s graph, directed edges)."""
    from torch.utils.flop_counter import FlopCounterMode

    from lmp_gnn.step import features
    pos = torch.from_numpy(net.positions)
    box = torch.from_numpy(net.box)
    ei = features.edge_index_from_bonds(torch.from_numpy(net.bonds))
    rest = torch.from_numpy(net.rest_length)
    ef = features.edge_features(pos, box, ei, torch.cat([rest, rest])).float()
    nf = torch.zeros(net.n_nodes, 2 * model.history)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(nf, ei, ef)
    return float(counter.get_total_flops()), int(ei.shape[1])


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return float(line.split()[1]) / 1024.0
    return float("nan")


def memory_growth(model_file: Path, workdir: Path, steps: int) -> tuple[float, float]:
    """RSS (MB) of this process running the fix in LAMMPS after 100 and after `steps` learned steps."""
    from lmp_gnn.coupling._lammps import new_lammps

    triangular_network(32, 32, seed=7).write_lammps_data(workdir / "mem.data")
    deck = timing_deck(1).replace("read_data net.data", f"read_data {workdir / 'mem.data'}")
    deck = deck.replace("gnn.pt", str(model_file)).split("run 5")[0]
    lmp = new_lammps()
    lmp.commands_string(deck + "thermo 0\nrun 100\n")
    after_100 = rss_mb()
    lmp.command(f"run {steps - 100} pre no post no")
    after = rss_mb()
    lmp.close()
    return after_100, after


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[32, 100, 316], help="lattice side n (N ≈ n²)")
    p.add_argument("--steps", type=int, default=20, help="learned steps timed per size (fewer above 50k)")
    p.add_argument("--memory-steps", type=int, default=10000, help="learned steps of the memory check (0: skip)")
    p.add_argument("--width", type=int, default=128, help="hidden and latent width of the timed model (paper: 128)")
    args = p.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    delta_l, box_length = shipped_step()
    model = GNNSimulator(ModelConfig(hidden=args.width, latent=args.width)).float().eval()
    meta = to_strings(model_metadata(**dict(SPRINGS, history=model.history, layers=model.config.layers,
                                            dtype="float32")))
    eager = EagerPyG(model)
    peak_square = mm_gflops(2048, 2048, 2048)
    print(f"torch {torch.__version__}, 1 thread; torch.mm float32 [2048,2048]^2: {peak_square:.1f} GFLOP/s")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model_file = tmp / "gnn.pt"
        torch.jit.save(torch.jit.script(Quiet(script_model(model, "float32"))), str(model_file),
                       _extra_files={k: v.encode() for k, v in meta.items()})
        for n in args.sizes:
            net = triangular_network(n, n + (n % 2), seed=7)
            net.write_lammps_data(tmp / "net.data")
            big = net.n_nodes > 50_000
            steps = max(3, args.steps // 4) if big else args.steps
            fix_ms, text = lmp_loop_ms(timing_deck(steps), tmp, steps, 'print "MODELMS $(f_g[2])"\n')
            model_ms = float(re.search(r"MODELMS ([0-9.eE+-]+)", text).group(1))

            h = model.history
            arrays = {"positions": np.stack([net.positions] * (h + 1)), "box": np.tile(net.box, (h + 1, 1)),
                      "bonds": net.bonds, "rest_length": net.rest_length}
            py_steps = max(2, steps // 4) if big else steps
            rollout(eager, arrays, start=h, n_steps=1, history=h, delta_l=0.0, dtype=torch.float32)
            t0 = time.perf_counter()
            rollout(eager, arrays, start=h, n_steps=py_steps, history=h, delta_l=0.0, dtype=torch.float32)
            eager_ms = 1000.0 * (time.perf_counter() - t0) / py_steps

            md_steps = max(50, int(2_000_000 / net.n_nodes))
            md_ms, _ = lmp_loop_ms(md_deck(md_steps), tmp, md_steps)
            lx = float(net.box[0])
            xi = md_steps_per_snapshot(lx, step_delta_l(delta_l, box_length, lx), RATE, DT)
            xi_fixed = md_steps_per_snapshot(lx, delta_l, RATE, DT)

            flops, n_edges = model_flops(model, net)
            peak_shape = mm_gflops(n_edges, 128, 128, seconds=0.5)
            rows.append((net.n_nodes, n_edges, fix_ms, model_ms, eager_ms, md_ms, xi, xi_fixed, flops,
                         peak_shape, lx))
            print(f"  N = {net.n_nodes} done", flush=True)

        print(f"\n{'N':>7} {'E':>7} {'fix ms':>9} {'model ms':>9} {'PyG eager ms':>13} {'eager/fix':>9} "
              f"{'MD ms/step':>10} {'xi':>5} {'MD ms/snap':>10} {'speedup':>8} {'fixed Δl':>9} {'s/1% MD':>9} "
              f"{'s/1% fix':>9} {'GFLOP/s':>8} {'mm [E,128]':>10} {'fraction':>8}")
        for N, E, fix_ms, model_ms, eager_ms, md_ms, xi, xi_fixed, flops, peak_shape, _lx in rows:
            gflops = flops / (model_ms / 1000.0) / 1e9
            md_per_strain = 0.01 / (RATE * DT) * md_ms / 1000.0       # MD steps per 1 % strain x s/step
            fix_per_strain = 0.01 * box_length / delta_l * fix_ms / 1000.0   # learned steps per 1 % x s/step
            print(f"{N:>7} {E:>7} {fix_ms:>9.2f} {model_ms:>9.2f} {eager_ms:>13.2f} {eager_ms / fix_ms:>8.2f}x "
                  f"{md_ms:>10.4f} {xi:>5} {xi * md_ms:>10.2f} {xi * md_ms / fix_ms:>7.1f}x "
                  f"{xi_fixed * md_ms / fix_ms:>8.1f}x {md_per_strain:>9.1f} {fix_per_strain:>9.2f} "
                  f"{gflops:>8.1f} {peak_shape:>10.1f} {gflops / peak_shape:>8.2f}")
        print(f"\nspeedup = xi x MD ms/step / fix ms per learned step, the leap-frog speedup with the strain "
              f"step ({delta_l / box_length:.4g} per learned step, {box_length / delta_l:.0f} learned steps per "
              f"unit strain at every size); fixed Δl = the same with Δl = {delta_l} on every box; s/1% = wall "
              "seconds to compress by 1 % strain; fraction = model GFLOP/s over torch.mm's rate at the "
              f"model's largest matmul shape (square 2048: {peak_square:.1f} GFLOP/s)")

        if args.memory_steps > 100:
            before, after = memory_growth(model_file, tmp, args.memory_steps)
            print(f"\nresident memory, N = 1024: {before:.1f} MB after 100 learned steps, {after:.1f} MB after "
                  f"{args.memory_steps}: ratio {after / before:.4f}")


if __name__ == "__main__":
    main()
