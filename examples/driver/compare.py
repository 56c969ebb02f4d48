"""Compress one network on a live LAMMPS three ways — true MD all the way; MD for the first h + 2
snapshots (past the start-up, docs/protocol.md) then learned leaps; the same with the
zero-acceleration baseline — and plot ν vs strain of all three.

    python examples/driver/compare.py [NETWORK.data] [--model MODEL.pt] [-o compare.png]

Without a network file it makes one (`lmp_gnn.physics.generate` + `lmp_gnn.physics.tuning`, ν ≈ -0.2); without
--model it uses the model shipped with lmp-gnn (close to MD for ~100 learned steps, unstable beyond
on about half the networks: README, "Learned simulator accuracy"). Runs as is under `mpirun -np 2
python ...` too.
"""

import argparse
import time
from pathlib import Path

from mpi4py import MPI

from lmp_gnn import SHIPPED_MODEL
from lmp_gnn.coupling.driver import CompressionDriver
from lmp_gnn.evaluation import analysis, plots
from lmp_gnn.physics.network import Network
from lmp_gnn.step.rollout import load_model, zero_acceleration_model


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("network", nargs="?", help="LAMMPS data file of a network")
    p.add_argument("--model", default=str(SHIPPED_MODEL), help="exported model (default: the shipped one)")
    p.add_argument("--strain", type=float, default=0.01,
                   help="final compressive strain (default 0.01; the shipped model beats the zero-acceleration "
                        "baseline on most networks up to ~2.5 %%, and is far off on about half by 5 %%)")
    p.add_argument("-o", "--out", default="compare.png", help="plot to write (default compare.png)")
    args = p.parse_args()
    if args.network:
        net = Network.read_lammps_data(args.network)
    else:
        from lmp_gnn.physics.generate import jammed_network
        from lmp_gnn.physics.tuning import tune_poisson

        net, _ = tune_poisson(jammed_network(200, seed=42), -0.2, objective="joint")
    model = load_model(args.model)
    n_total = int(args.strain * net.box[0] / model.delta_l)
    h = model.history

    runs = {}
    md_first = h + 2
    for label, schedule, stepper in (("true", [("md", n_total)], None),
                                     ("learned", [("md", md_first), ("learned", n_total - md_first)], model),
                                     ("baseline", [("md", md_first), ("learned", n_total - md_first)],
                                      zero_acceleration_model)):
        t0 = time.perf_counter()
        # viscous drag, as the training data (docs/protocol.md): thermal noise is not in the model
        with CompressionDriver(net, delta_l=model.delta_l, thermostat="viscous") as driver:
            kwargs = {"history": h} if stepper is zero_acceleration_model else {}
            driver.run_schedule(schedule, stepper, **kwargs)
            runs[label] = driver.trajectory()
        runs[label].metadata["wall_s"] = time.perf_counter() - t0
    if MPI.COMM_WORLD.rank == 0:
        series = {who: analysis.poisson_series(traj) for who, traj in runs.items()}
        plots.plot_nu_vs_strain(series, args.out,
                                title=f"N = {net.n_nodes}: MD vs learned leaps after {md_first} MD snapshots",
                                start_strain=float(series["true"]["strain"][md_first]))
        last = {who: float(s["nu_box"][-1]) for who, s in series.items()}
        print(f"ν_box at {100 * series['true']['strain'][-1]:.2f} % strain: true MD {last['true']:+.4f}, "
              f"learned {last['learned']:+.4f}, baseline {last['baseline']:+.4f}; "
              f"wall time MD {runs['true'].metadata['wall_s']:.1f} s, "
              f"MD+learned {runs['learned'].metadata['wall_s']:.1f} s; wrote {Path(args.out).resolve()}")


if __name__ == "__main__":
    main()
