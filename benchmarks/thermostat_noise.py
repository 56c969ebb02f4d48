"""Langevin (T = 1e-10) vs viscous drag (T = 0): same ν, but how noisy are the snapshots?

    python benchmarks/thermostat_noise.py [NETWORK_DIR]   (default: makes 3 networks with
                                                            `lmp-gnn networks --count 4 --seed 100`; the first 3)

Prints, per network, the wall time of each compression, the box ν at 1 % and 4.9 % strain and the
RMS per-snapshot acceleration a(t) = r(t+1) - 2r(t) + r(t-1) (snapshots 20 onwards). Source of the
table in docs/protocol.md.
"""

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from lmp_gnn.physics import md, poisson
from lmp_gnn.physics.network import Network


def main() -> None:
    if len(sys.argv) > 1:
        net_dir = Path(sys.argv[1])
    else:
        net_dir = Path(tempfile.mkdtemp(prefix="lmp_gnn_thermo_"))
        subprocess.run([sys.executable, "-m", "lmp_gnn.cli", "networks", "-o", str(net_dir), "--count", "4",
                        "--seed", "100"], check=True)
    print(f"{'network':12s} {'thermostat':10s} {'wall s':>7s} {'nu@1%':>8s} {'nu@4.9%':>8s} {'rms a':>9s}")
    for path in sorted(net_dir.glob("*.data"))[:3]:
        net = Network.read_lammps_data(path)
        for thermostat in ("langevin", "viscous"):
            t0 = time.perf_counter()
            traj = md.compress(net, thermostat=thermostat)
            wall = time.perf_counter() - t0
            acc = traj.positions[2:] - 2 * traj.positions[1:-1] + traj.positions[:-2]
            rms = float(np.sqrt((acc[20:] ** 2).mean()))
            print(f"{path.stem:12s} {thermostat:10s} {wall:7.1f} {poisson.box_poisson(traj, 0.01):8.4f} "
                  f"{poisson.box_poisson(traj, 0.049):8.4f} {rms:9.2e}")


if __name__ == "__main__":
    main()
