"""Run one MD + learned + MD schedule with CompressionDriver and save the trajectory (rank 0).

    python examples/driver/mpi_parity.py NETWORK.data OUT.npz
    mpirun -np 2 python examples/driver/mpi_parity.py NETWORK.data OUT.npz

Both must write the same trajectory: LAMMPS decomposes the MD over the ranks, and the learned
steps (here the zero-acceleration rule, a stand-in for any model) run identically on each rank.
"""

import sys

from mpi4py import MPI

from lmp_gnn.coupling.driver import CompressionDriver
from lmp_gnn.physics.network import Network
from lmp_gnn.physics.trajectory import save_trajectory
from lmp_gnn.step.rollout import zero_acceleration_model

net = Network.read_lammps_data(sys.argv[1])
with CompressionDriver(net, strain_rate=2.5e-5, thermostat="viscous") as driver:
    driver.run_schedule([("md", 4), ("learned", 3), ("md", 3)], zero_acceleration_model, history=2)
    traj = driver.trajectory()
if MPI.COMM_WORLD.rank == 0:
    save_trajectory(sys.argv[2], traj)
