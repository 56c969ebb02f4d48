"""MD and learned blocks in one deck: true MD with a shadow fix, then learned leaps started from the
true velocity history (`init fix <shadow>`), then MD again from the learned velocities. The learned
block equals lmp_gnn.rollout started from the dumped MD snapshots.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fixtures.lammps_run import read_dump, run_in_process, run_lmp, unwrapped_state
from fixtures.lattice import deck_header, triangular_network
from fixtures.make_models import DEFAULT_METADATA
from lmp_gnn.rollout import rollout

EVERY = 10
MDSTEPS = float(DEFAULT_METADATA["md_steps_per_step"])
DELTA_L = float(DEFAULT_METADATA["delta_l"])


def test_md_learned_md(models, tmp_path):
    net = triangular_network(8, 8, seed=7)
    data = net.write_lammps_data(tmp_path / "net.data")
    dump = tmp_path / "md.dump"
    lmp = run_in_process(deck_header(data) + f"""
velocity all create 1e-4 11 loop geom
fix md all nve
fix sh all gnn/rollout {models['spring']} mode shadow every {EVERY}
dump d all custom {EVERY} {dump} id xu yu
dump_modify d format float %.17g sort id
run {4 * EVERY}
undump d
unfix md
fix leap all gnn/rollout {models['spring']} init fix sh
unfix sh
run 6
""")
    r_leap, v_leap, L_leap = unwrapped_state(lmp)
    R, L = read_dump(dump, net.n_nodes)
    assert R.shape[0] == 5
    model = torch.jit.load(str(models["spring"]))
    ref = rollout(model, {"positions": R, "box": L, "bonds": net.bonds, "rest_length": net.rest_length},
                  start=4, n_steps=6, history=2, delta_l=DELTA_L)
    np.testing.assert_allclose(L_leap, ref.box[-1], rtol=0, atol=1e-12)
    np.testing.assert_allclose(r_leap, ref.positions[-1], rtol=0, atol=1e-12)
    # the learned velocities hand over to MD: v = (r(t+1) - r(t)) / (mdsteps dt)
    np.testing.assert_allclose(v_leap, (ref.positions[-1] - ref.positions[-2]) / (MDSTEPS * 0.05),
                               rtol=0, atol=1e-12)
    lmp.commands_string("""unfix leap
fix md all nve
run 20
""")
    r_md, _, _ = unwrapped_state(lmp)
    assert np.all(np.isfinite(r_md)) and np.abs(r_md - r_leap).max() > 0
    lmp.close()


def test_init_fix_needs_a_current_snapshot(models, tmp_path):
    data = triangular_network(6, 6, seed=1).write_lammps_data(tmp_path / "net.data")
    out = run_lmp(deck_header(data) + f"""fix md all nve
fix sh all gnn/rollout {models['spring']} mode shadow every {EVERY}
run 35
unfix md
fix leap all gnn/rollout {models['spring']} init fix sh
""", tmp_path)
    text = out.stdout + out.stderr
    assert out.returncode != 0
    assert ("ERROR: Fix gnn/rollout init fix sh: its last snapshot is from step 30, not the current "
            "step 35; end the MD run on a multiple of its every (10)") in text, text[-2000:]


def test_md_learned_md_ranks_agree(models, tmp_path):
    """The interleaved deck (MD with a shadow fix, a learned block started from its history, MD
    again) under `mpirun -np 2 lmp` gives the np = 1 positions."""
    net = triangular_network(10, 10, seed=7)
    net.write_lammps_data(tmp_path / "net.data")
    deck = deck_header("net.data", comm_cutoff=3.0) + f"""
velocity all create 1e-4 11 loop geom
fix md all nve
fix sh all gnn/rollout {models['spring']} mode shadow every {EVERY}
run {4 * EVERY}
unfix md
fix leap all gnn/rollout {models['spring']} init fix sh
unfix sh
run 6
unfix leap
fix md all nve
run 20
write_dump all custom final.dump id xu yu modify format float %.17g sort id
"""
    finals = {}
    for nprocs in (1, 2):
        work = tmp_path / f"np{nprocs}"
        work.mkdir()
        (work / "net.data").write_text((tmp_path / "net.data").read_text())
        out = run_lmp(deck, work, nprocs=nprocs)
        assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
        finals[nprocs] = np.loadtxt(work / "final.dump", skiprows=9)
    np.testing.assert_allclose(finals[2][:, 1:], finals[1][:, 1:], rtol=0, atol=1e-9)
