"""MD and learned blocks in one deck: true MD with a shadow fix, then learned leaps started from the
true velocity history (`init fix <shadow>`), then MD again from the learned velocities. The learned
block equals lmp_gnn.step.rollout started from the dumped MD snapshots.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fixtures.lammps_run import read_dump, run_in_process, run_lmp, unwrapped_state
from fixtures.lattice import deck_header, triangular_network
from fixtures.make_models import DEFAULT_METADATA
from lmp_gnn.step.rollout import rollout

EVERY = 10
MDSTEPS = float(DEFAULT_METADATA["md_steps_per_step"])
DELTA_L = float(DEFAULT_METADATA["delta_l"])


def rollout_from_dump(model_file, dump, net, n_steps: int, delta_l: float):
    """lmp_gnn.step.rollout (h = 2) from the 5 MD snapshots of a dump, started at the last one."""
    R, L = read_dump(dump, net.n_nodes)
    assert R.shape[0] == 5
    model = torch.jit.load(str(model_file))
    return rollout(model, {"positions": R, "box": L, "bonds": net.bonds, "rest_length": net.rest_length},
                   start=4, n_steps=n_steps, history=2, delta_l=delta_l)


def assert_ranks_agree(deck: str, tmp_path) -> list[str]:
    """`deck` (reading net.data, writing final.dump) under `mpirun -np 2 lmp` equals np = 1;
    returns the screen output of np = 1 and 2."""
    finals, screens = {}, []
    for nprocs in (1, 2):
        work = tmp_path / f"np{nprocs}"
        work.mkdir()
        (work / "net.data").write_text((tmp_path / "net.data").read_text())
        out = run_lmp(deck, work, nprocs=nprocs)
        assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
        finals[nprocs] = np.loadtxt(work / "final.dump", skiprows=9)
        screens.append(out.stdout)
    np.testing.assert_allclose(finals[2][:, 1:], finals[1][:, 1:], rtol=0, atol=1e-9)
    return screens


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
    ref = rollout_from_dump(models["spring"], dump, net, 6, DELTA_L)
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


@pytest.mark.slow
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
    assert_ranks_agree(deck, tmp_path)


# --- mode interleave: MD and learned blocks in one run ------------------------------------------

DL = 2.0e-3


def interleave_fix(model, md: int, learn: int, extra: str = "") -> str:
    return (f"fix il all gnn/rollout {model} mode interleave md {md} learn {learn} every {EVERY} "
            f"mdsteps {EVERY} dl {DL} {extra}\n")


def test_single_run_md_equals_protocol_deck(models, tmp_path):
    """The fix's MD steps are the compression protocol of lmp_gnn.physics.md: velocity Verlet, Berendsen
    zero pressure on y, x shrinking by dl per `every` steps (fix nve + press/berendsen + deform)."""
    net = triangular_network(8, 8, seed=7)
    data = net.write_lammps_data(tmp_path / "net.data")
    head = deck_header(data) + "velocity all create 1e-4 11 loop geom\n"
    ours = run_in_process(head + "fix visc all viscous 0.1\n" + interleave_fix(models["spring"], 4 * EVERY, 0)
                          + f"fix flat all enforce2d\nrun {4 * EVERY}\n")
    rate = DL / (EVERY * 0.05 * net.box[0])
    ref = run_in_process(head + f"""fix press all press/berendsen y 0.0 0.0 1.0 modulus 1.0 dilate all
fix visc all viscous 0.1
fix md all nve
fix squeeze all deform 1 x erate {-rate:.17g} remap x
fix flat all enforce2d
run {4 * EVERY}
""")
    r, v, L = unwrapped_state(ours)
    r_ref, v_ref, L_ref = unwrapped_state(ref)
    assert abs(L[0] - (net.box[0] - 4 * DL)) < 1e-12
    np.testing.assert_allclose(L, L_ref, rtol=0, atol=1e-12)
    np.testing.assert_allclose(r, r_ref, rtol=0, atol=1e-11)
    np.testing.assert_allclose(v, v_ref, rtol=0, atol=1e-11)
    assert ours.extract_fix("il", 0, 1, 11) == 4 * EVERY and ours.extract_fix("il", 0, 1, 0) == 0
    ours.close()
    ref.close()


def test_single_run_learned_block_equals_rollout(models, tmp_path):
    """In one `run`: 4 snapshots of MD, then 6 learned steps from the true history, equal to
    lmp_gnn.step.rollout from the dumped snapshots; time advances by mdsteps per learned step; the
    velocities handed to the next MD block are the non-affine part of the learned motion."""
    net = triangular_network(8, 8, seed=7)
    data = net.write_lammps_data(tmp_path / "net.data")
    dump = tmp_path / "md.dump"
    lmp = run_in_process(deck_header(data) + "velocity all create 1e-4 11 loop geom\n"
                         + interleave_fix(models["spring"], 4 * EVERY, 6) + f"""fix flat all enforce2d
dump d all custom {EVERY} {dump} id xu yu
dump_modify d format float %.17g sort id
run {4 * EVERY}
undump d
run 6
""")
    r, v, L = unwrapped_state(lmp)
    ref = rollout_from_dump(models["spring"], dump, net, 6, DL)
    np.testing.assert_allclose(L, ref.box[-1], rtol=0, atol=1e-12)
    np.testing.assert_allclose(r, ref.positions[-1], rtol=0, atol=1e-12)
    # v = (u - strain (x - c)) / (mdsteps dt), x the wrapped position before the step
    u = ref.positions[-1] - ref.positions[-2]
    strain = ref.box[-1] / ref.box[-2] - 1.0
    boxlo, boxhi = lmp.extract_box()[:2]
    centre = 0.5 * (np.array(boxlo[:2]) + np.array(boxhi[:2]))
    rel = ref.positions[-2] - centre
    rel -= ref.box[-2] * np.round(rel / ref.box[-2])
    np.testing.assert_allclose(v, (u - strain * rel) / (EVERY * 0.05), rtol=0, atol=1e-12)
    assert lmp.get_thermo("time") == pytest.approx((4 * EVERY + 6 * EVERY) * 0.05, rel=1e-12)
    assert lmp.extract_fix("il", 0, 1, 0) == 6 and lmp.extract_fix("il", 0, 1, 11) == 4 * EVERY
    lmp.close()


def test_single_run_handover_without_velocity_jump(models, tmp_path):
    """Quasi-static compression of a jammed network; a learned block of the zero-acceleration
    rule (accurate over a few steps there) in the middle of one run. The MD velocities handed
    over equal the MD velocities before the block, and the first MD snapshot after it moves
    the atoms as the learned steps did. (Handing over the whole learned displacement, affine
    part included, would make them ~3x too large: the box remap carries the affine part.)"""
    from lmp_gnn.physics.generate import jammed_network

    net = jammed_network(60, seed=3)
    data = net.write_lammps_data(tmp_path / "net.data")
    every, dl = 200, 2.0e-4
    lmp = run_in_process(deck_header(data, comm_cutoff=4.0) + f"""minimize 0 1e-12 10000 10000
fix visc all viscous 0.1
fix il all gnn/rollout {models['zero']} mode interleave md {8 * every} learn 2 every {every} mdsteps {every} dl {dl}
fix flat all enforce2d
run {8 * every}
""")
    _, v_md, _ = unwrapped_state(lmp)
    lmp.command("run 1")
    r1, _, _ = unwrapped_state(lmp)
    lmp.command("run 1")
    r2, v_handed, _ = unwrapped_state(lmp)
    lmp.command(f"run {every}")
    r3, _, _ = unwrapped_state(lmp)
    u_learned, u_md = r2 - r1, r3 - r2
    v_jump = np.abs(v_handed - v_md).mean() / np.abs(v_md).mean()
    u_jump = np.abs(u_md - u_learned).mean() / np.abs(u_learned).mean()
    naive = np.abs(u_learned).mean() / (every * 0.05) / np.abs(v_md).mean()
    assert v_jump < 0.1, v_jump
    assert u_jump < 0.05, u_jump
    assert naive > 2.0, naive        # the affine part the handover leaves out is large
    lmp.close()


def test_single_run_restart_equals_continuous_run(models, tmp_path):
    """run 46 (one cycle: 40 MD and 6 learned steps) + write_restart, read_restart + run 46 ==
    run 92: histories, last snapshots and the cycle position restored. (Written inside an MD
    block, a restart continues as fix nve + press/berendsen + deform do: the setup recomputes
    the forces after the end-of-step box remap, a difference of one step's strain.)"""
    net = triangular_network(8, 8, seed=7)
    data = net.write_lammps_data(tmp_path / "net.data")
    head = deck_header(data) + "velocity all create 1e-4 11 loop geom\n"
    fixes = "fix visc all viscous 0.1\n" + interleave_fix(models["spring"], 4 * EVERY, 6)
    full = run_in_process(head + fixes + "run 92\n")
    first = run_in_process(head + fixes + f"run 46\nwrite_restart {tmp_path / 'half.restart'}\n")
    first.close()
    second = run_in_process(f"read_restart {tmp_path / 'half.restart'}\ncomm_modify cutoff 3.0\n"
                            + fixes + "run 46\n")
    for a, b in zip(unwrapped_state(full), unwrapped_state(second), strict=True):
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-14)
    assert second.extract_fix("il", 0, 1, 0) == 12 and second.extract_fix("il", 0, 1, 11) == 80
    full.close()
    second.close()


@pytest.mark.slow
def test_single_run_ranks_agree(models, tmp_path):
    """mode interleave under `mpirun -np 2 lmp` gives the np = 1 positions (two cycles)."""
    net = triangular_network(10, 10, seed=7)
    net.write_lammps_data(tmp_path / "net.data")
    deck = (deck_header("net.data") + "velocity all create 1e-4 11 loop geom\nfix visc all viscous 0.1\n"
            + interleave_fix(models["spring"], 3 * EVERY, 4) + "run 68\n"
            "write_dump all custom final.dump id xu yu vx vy modify format float %.17g sort id\n")
    assert_ranks_agree(deck, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("fix, message", [
    ("mode interleave md 35 learn 2 every 10", "Fix gnn/rollout mode interleave needs md N with N > 0 "
                                               "a multiple of every (10), got md 35"),
    ("mode interleave md 40 learn 2 every 10 box no", "Fix gnn/rollout mode interleave drives the box; "
                                                      "box no is not allowed"),
    ("mode interleave md 40 learn -1", "Fix gnn/rollout learn must be >= 0, got -1"),
    ("mode interleave md 40 pdamp 0", "Fix gnn/rollout pdamp must be > 0, got 0"),
])
def test_interleave_bad_keywords(models, tmp_path, fix, message):
    data = triangular_network(6, 6, seed=1).write_lammps_data(tmp_path / "net.data")
    out = run_lmp(deck_header(data) + f"fix il all gnn/rollout {models['spring']} {fix}\nrun 1\n", tmp_path)
    text = out.stdout + out.stderr
    assert out.returncode != 0 and "ERROR: " + message in text, text[-2000:]


def test_interleave_refuses_a_second_integrator(models, tmp_path):
    data = triangular_network(6, 6, seed=1).write_lammps_data(tmp_path / "net.data")
    out = run_lmp(deck_header(data) + "fix md all nve\n" + interleave_fix(models["spring"], 40, 2) + "run 1\n",
                  tmp_path)
    text = out.stdout + out.stderr
    assert out.returncode != 0
    assert "ERROR: Fix gnn/rollout mode interleave integrates group all, but fix md (nve) also integrates" in text
