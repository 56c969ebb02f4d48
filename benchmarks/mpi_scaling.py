"""fix gnn/rollout under MPI: ms per learned step at np = 1 and 2 (and more), and their ratio.

    python benchmarks/mpi_scaling.py [n] [--np 1 2] [--steps 10]   (default n = 316: N ≈ 100k)

Network: the jittered periodic triangular lattice `lmp_gnn.physics.generate.triangular_network(n, n)`;
model: the paper-size GNNSimulator (h = 3, k = 1, width 128), untrained, scripted in float32 with
its output scaled by 1e-6 so atoms stay put while timing (examples/leap/bench_leap.py's Quiet).
One torch thread per rank. Each rank count runs `lmp -in` under mpirun after a warm-up run;
"LAMMPS MB/rank" is LAMMPS's own "Per MPI rank memory allocation" (max over ranks; torch's
buffers are not in it).
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples" / "leap"))
from bench_leap import Quiet, timing_deck  # noqa: E402
from make_inputs import SPRINGS  # noqa: E402

from lmp_gnn.learning.export import script_model  # noqa: E402
from lmp_gnn.learning.model import GNNSimulator, ModelConfig  # noqa: E402
from lmp_gnn.physics.generate import triangular_network  # noqa: E402
from lmp_gnn.step.metadata import model_metadata, to_strings  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("n", nargs="?", type=int, default=316)
    p.add_argument("--np", type=int, nargs="+", default=[1, 2])
    p.add_argument("--steps", type=int, default=10)
    args = p.parse_args()
    torch.manual_seed(0)
    model = GNNSimulator(ModelConfig())
    meta = to_strings(model_metadata(**dict(SPRINGS, history=model.history, layers=model.config.layers,
                                            dtype="float32")))
    bindir = Path(sys.executable).parent
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        torch.jit.save(torch.jit.script(Quiet(script_model(model, "float32"))), str(tmp / "gnn.pt"),
                       _extra_files={k: v.encode() for k, v in meta.items()})
        net = triangular_network(args.n, args.n + (args.n % 2), seed=7)
        net.write_lammps_data(tmp / "net.data")
        (tmp / "in.bench").write_text(timing_deck(args.steps))
        print(f"N = {net.n_nodes}, {args.steps} learned steps per run")
        print(f"{'np':>3} {'ms/step':>10} {'speedup vs np=1':>16} {'LAMMPS MB/rank':>15}")
        base = None
        for nprocs in args.np:
            cmd = [str(bindir / "mpirun"), "-np", str(nprocs), str(bindir / "lmp"), "-in", "in.bench", "-log",
                   "none", "-nocite"]
            out = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True,
                                 env=dict(os.environ, OMP_NUM_THREADS="1"))
            text = out.stdout + out.stderr
            if out.returncode:
                sys.exit(text[-3000:])
            loop = float(re.findall(r"Loop time of ([0-9.eE+-]+) on", text)[-1])
            ms = 1000.0 * loop / args.steps
            base = base or ms
            mem = re.findall(r"Per MPI rank memory allocation \(min/avg/max\) = [0-9.]+ \| [0-9.]+ \| ([0-9.]+) Mbytes",
                             text)[-1]
            print(f"{nprocs:>3} {ms:>10.1f} {base / ms:>16.2f} {float(mem):>15.1f}")


if __name__ == "__main__":
    main()
