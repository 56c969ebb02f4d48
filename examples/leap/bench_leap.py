"""Time fix gnn/rollout (C++, libtorch) against the Python reference rollout (lmp_gnn.step.rollout) on
the same model and network, in one run, and print ms per learned step and their ratio.
"fix own ms" is the last learned step minus its model call: features, update, box, communication.

Model: the paper-size GNNSimulator (lmp_gnn.learning.model defaults: k = 1, h = 3, width 128), untrained,
scripted by lmp_gnn.learning.export.script_model in float32 with full metadata; its random output is scaled
by 1e-6 (a scripted wrapper) so that atoms stay put while the step is timed. Networks: triangular lattices of
N ≈ n² nodes (lmp_gnn.physics.generate.triangular_network). One torch thread and one MPI rank on both sides.

    python bench_leap.py [n ...]        (default: 32 100, i.e. N = 1024 and 10000)
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from lmp_gnn.learning.export import script_model
from lmp_gnn.learning.model import GNNSimulator, ModelConfig
from lmp_gnn.step.metadata import model_metadata, to_strings
from lmp_gnn.step.rollout import rollout

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_inputs import SPRINGS  # noqa: E402

from lmp_gnn.physics.generate import triangular_network  # noqa: E402

STEPS = 50


class Quiet(torch.nn.Module):
    """The model's accelerations times 1e-6 (timing only: keeps an untrained model's atoms in place)."""

    def __init__(self, inner: torch.nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, node_features: torch.Tensor, edge_index: torch.Tensor,
                edge_features: torch.Tensor) -> torch.Tensor:
        return 1e-6 * self.inner(node_features, edge_index, edge_features)


# the network of net.data in the working directory (bonded only, LJ units, dt 0.05)
NETWORK_DECK = """units lj
dimension 2
atom_style bond
boundary p p p
bond_style harmonic
read_data net.data
pair_style zero 1.0 nocoeff
pair_coeff * *
comm_modify cutoff 2.5
timestep 0.05
"""


def timing_deck(steps: int) -> str:
    """LAMMPS input: net.data and gnn.pt from the working directory, the fix with the box held,
    a warm-up run and a timed run of `steps` learned steps (one torch thread per rank)."""
    return NETWORK_DECK + f"""fix g all gnn/rollout gnn.pt box no threads 1
thermo_style custom step f_g[3]
run 5
run {steps}
"""


def main(sizes: list[int]) -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = GNNSimulator(ModelConfig())
    meta = to_strings(model_metadata(**dict(SPRINGS, history=model.history, layers=model.config.layers,
                                            dtype="float32")))
    lmp = Path(sys.executable).parent / "lmp"
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        scripted = torch.jit.script(Quiet(script_model(model, "float32")))
        torch.jit.save(scripted, str(tmp / "gnn.pt"), _extra_files={k: v.encode() for k, v in meta.items()})
        print(f"{'N':>7} {'fix ms/step':>12} {'model ms':>9} {'fix own ms':>10} {'python ms/step':>15} "
              f"{'python/fix':>10}")
        for n in sizes:
            net = triangular_network(n, n + (n % 2), seed=7)
            net.write_lammps_data(tmp / "net.data")
            (tmp / "in.bench").write_text(timing_deck(STEPS) + 'print "MODELMS $(f_g[3]) OVERHEAD $(f_g[4]-f_g[2])"\n')
            out = subprocess.run([str(lmp), "-in", "in.bench", "-log", "none", "-nocite"], cwd=tmp,
                                 capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
            text = out.stdout + out.stderr
            if out.returncode:
                sys.exit(text[-3000:])
            loop = float(re.findall(r"Loop time of ([0-9.eE+-]+) on", text)[-1])
            m = re.search(r"MODELMS ([0-9.eE+-]+) OVERHEAD ([0-9.eE+-]+)", text)
            model_ms, overhead_ms = float(m.group(1)), float(m.group(2))
            fix_ms = 1000.0 * loop / STEPS
            h = model.history
            snaps = np.stack([net.positions] * (h + 1))
            arrays = {"positions": snaps, "box": np.tile(net.box, (h + 1, 1)), "bonds": net.bonds,
                      "rest_length": net.rest_length}
            rollout(scripted, arrays, start=h, n_steps=3, history=h, delta_l=0.0, dtype=torch.float32)
            t0 = time.perf_counter()
            rollout(scripted, arrays, start=h, n_steps=STEPS, history=h, delta_l=0.0, dtype=torch.float32)
            py_ms = 1000.0 * (time.perf_counter() - t0) / STEPS
            print(f"{n * n:>7} {fix_ms:>12.3f} {model_ms:>9.3f} {overhead_ms:>10.3f} {py_ms:>15.3f} "
                  f"{py_ms / fix_ms:>10.2f}")


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [32, 100])
