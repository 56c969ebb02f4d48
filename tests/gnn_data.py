"""Tiny real training data for the model/training tests: LAMMPS compressions of jammed networks.

`compressed_networks()` makes (once per test session, cached) three ~45-node jammed networks
(lmp_gnn.physics.generate) compressed to 2 % strain by lmp_gnn.physics.md.compress and saved as trajectory
files; a few seconds on one core. The viscous thermostat (T = 0) is used so that the
accelerations are deterministic and learnable within seconds of training; at T = 1e-10 the
per-snapshot accelerations of such tiny networks are dominated by thermal motion.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path

from lmp_gnn.physics.generate import jammed_network
from lmp_gnn.physics.md import compress
from lmp_gnn.physics.trajectory import save_trajectory

N_NETWORKS = 3


@functools.lru_cache(maxsize=1)
def compressed_networks() -> Path:
    """Directory with net0.npz, net1.npz, net2.npz (metadata 'network' = netK.data)."""
    out = Path(tempfile.mkdtemp(prefix="lmp_gnn_train_data_"))
    atexit.register(shutil.rmtree, out, True)
    for seed in range(N_NETWORKS):
        net = jammed_network(48, seed=seed)
        net.info["source"] = f"net{seed}.data"
        traj = compress(net, max_strain=0.02, delta_l=2e-3, seed=seed, thermostat="viscous")
        save_trajectory(out / f"net{seed}.npz", traj)
    return out
