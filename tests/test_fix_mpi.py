"""fix gnn/rollout under MPI: `mpirun -np 2|4 lmp` gives the np = 1 trajectory (positions and box),
for a one-layer and a two-layer model (the second needs ghost atoms two bonds deep), with atoms
migrating between ranks and across the periodic boundary.
"""

from __future__ import annotations

import numpy as np
import pytest

from fixtures.lammps_run import MPIRUN, run_lmp, write_history
from fixtures.lattice import deck_header, triangular_network

pytestmark = pytest.mark.skipif(not MPIRUN.exists(), reason="mpirun of the mpich wheel not installed")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("mpi")
    net = triangular_network(10, 10, seed=3)
    net.write_lammps_data(d / "net.data")
    rng = np.random.default_rng(0)
    write_history(d / "hist.txt", rng.normal(scale=3e-3, size=(2, net.n_nodes, 2)) + 4e-3)
    return d


_RUNS: dict = {}


def run(models, workdir, model, nprocs, steps=100, keywords=""):
    """(positions [N, 3] id xu yu, box [2]) after `steps` leap steps; each case runs once."""
    key = (str(workdir), model, nprocs, steps, keywords)
    if key not in _RUNS:
        _RUNS[key] = _run(models, workdir, model, nprocs, steps, keywords)
    return _RUNS[key]


def _run(models, workdir, model, nprocs, steps, keywords):
    tag = f"{model}_np{nprocs}_{steps}{keywords.replace(' ', '_')}"
    # k layers need ghosts k bonds deep (bonds ~1.05 here): 4.0 covers k = 3
    deck = deck_header("net.data", comm_cutoff=4.0)
    deck += f"""fix g all gnn/rollout {models[model]} init file hist.txt {keywords}
run {steps}
write_dump all custom {tag}.dump id xu yu modify format float %.17g sort id
print "BOX $(lx:%.17g) $(ly:%.17g) STEPS $(f_g[1])"
"""
    out = run_lmp(deck, workdir, nprocs=nprocs)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-3000:]
    line = [ln for ln in text.splitlines() if ln.startswith("BOX ")][0].split()
    assert line[4] == str(steps)
    return np.loadtxt(workdir / f"{tag}.dump", skiprows=9), np.array([float(line[1]), float(line[2])])


@pytest.mark.parametrize("model,nprocs", [
    ("spring2", 2),  # the fast inner loop keeps k = 2 (a two-bond halo) on 2 ranks
    pytest.param("spring", 2, marks=pytest.mark.slow),
    pytest.param("spring", 4, marks=pytest.mark.slow),
    pytest.param("spring2", 4, marks=pytest.mark.slow),
])
def test_ranks_agree(models, workdir, model, nprocs):
    ref_pos, ref_box = run(models, workdir, model, 1)
    pos, box = run(models, workdir, model, nprocs)
    np.testing.assert_array_equal(pos[:, 0], ref_pos[:, 0])
    # other ranks sum the messages in another order: last-bit differences only
    np.testing.assert_allclose(box, ref_box, rtol=0, atol=1e-12)
    np.testing.assert_allclose(pos[:, 1:], ref_pos[:, 1:], rtol=0, atol=1e-12)


@pytest.mark.parametrize("nprocs", [2])
def test_shadow_ranks_agree(models, workdir, nprocs):
    """Shadow scores (one-step MSE, rollout MSE, both nu_est) do not depend on the number of ranks."""
    def scores(n):
        deck = deck_header("net.data") + f"""velocity all create 1e-4 4 loop geom
fix md all nve
fix sh all gnn/rollout {models['spring2']} mode shadow every 10
run 150
print "SCORES $(f_sh[1]) $(f_sh[7]:%.17g) $(f_sh[8]:%.17g) $(f_sh[9]:%.17g) $(f_sh[10]:%.17g) $(f_sh[11])"
"""
        out = run_lmp(deck, workdir, nprocs=n)
        text = out.stdout + out.stderr
        assert out.returncode == 0, text[-3000:]
        line = [ln for ln in text.splitlines() if ln.startswith("SCORES ")][0]
        return np.array([float(v) for v in line.split()[1:]])

    ref, got = scores(1), scores(nprocs)
    assert ref[0] == 14 and ref[5] == 16 and ref[1] > 0 and ref[2] > 0
    np.testing.assert_allclose(got, ref, rtol=1e-9)


@pytest.mark.slow
@pytest.mark.parametrize("model", ["spring_f32", "spring2_f32", "spring3_f32"])
@pytest.mark.parametrize("nprocs", [2, 4])
def test_float32_200_steps(models, workdir, model, nprocs):
    """The issue's check: float32 models with k = 1, 2, 3 layers, 200 learned steps in which atoms
    cross subdomain boundaries (the history drifts every atom by ~0.8), np = 2, 4 vs 1: ≤ 1e-6.
    With `box no`: the spring rule has no barostat, and under the box rule its free axis runs away
    (y grows ~7 in 200 steps) and amplifies float32 round-off (1.1e-6 measured); the box rule
    under MPI is checked in float64 by test_ranks_agree."""
    ref_pos, ref_box = run(models, workdir, model, 1, steps=200, keywords="box no")
    pos, box = run(models, workdir, model, nprocs, steps=200, keywords="box no")
    moved = np.abs(ref_pos[:, 1:] - workdir_positions(workdir)).max()
    assert moved > 0.5                # atoms crossed subdomain boundaries (10 x 8.7 box, 2-4 ranks)
    np.testing.assert_allclose(pos[:, 1:], ref_pos[:, 1:], rtol=0, atol=1e-6)
    np.testing.assert_allclose(box, ref_box, rtol=0, atol=1e-6)


def workdir_positions(workdir):
    from lmp_gnn.physics.network import Network

    return Network.read_lammps_data(workdir / "net.data").positions


@pytest.mark.slow
def test_restart_from_one_rank_continued_on_two(models, workdir):
    """A restart written on 1 rank and continued on 2 equals one run on 1 rank (100 steps)."""
    ref_pos, ref_box = run(models, workdir, "spring2", 1)
    deck = deck_header("net.data", comm_cutoff=4.0) + f"""fix g all gnn/rollout {models['spring2']} init file hist.txt
run 50
write_restart one.restart
"""
    out = run_lmp(deck, workdir, nprocs=1)
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    deck = f"""read_restart one.restart
comm_modify cutoff 4.0
fix g all gnn/rollout {models['spring2']}
run 50
write_dump all custom from_one.dump id xu yu modify format float %.17g sort id
"""
    out = run_lmp(deck, workdir, nprocs=2)
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    pos = np.loadtxt(workdir / "from_one.dump", skiprows=9)
    np.testing.assert_allclose(pos[:, 1:], ref_pos[:, 1:], rtol=0, atol=1e-12)


@pytest.mark.slow
def test_newton_bond_off_and_restart_across_rank_counts(models, workdir):
    """newton_bond off (bonds stored twice) gives the same trajectory; a restart written on 2 ranks
    and continued on 1 equals one run on 1 rank."""
    ref_pos, ref_box = run(models, workdir, "spring2", 1)
    deck = deck_header("net.data", extra="newton on off")
    deck += f"""fix g all gnn/rollout {models['spring2']} init file hist.txt
run 50
write_restart half.restart
"""
    out = run_lmp(deck, workdir, nprocs=2)
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    deck = f"""read_restart half.restart
comm_modify cutoff 3.0
fix g all gnn/rollout {models['spring2']}
run 50
write_dump all custom restarted.dump id xu yu modify format float %.17g sort id
print "BOX $(lx:%.17g) $(ly:%.17g) STEPS $(f_g[1])"
"""
    out = run_lmp(deck, workdir, nprocs=1)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-3000:]
    line = [ln for ln in text.splitlines() if ln.startswith("BOX ")][0].split()
    assert line[4] == "100"
    pos = np.loadtxt(workdir / "restarted.dump", skiprows=9)
    np.testing.assert_allclose([float(line[1]), float(line[2])], ref_box, rtol=0, atol=1e-12)
    np.testing.assert_allclose(pos[:, 1:], ref_pos[:, 1:], rtol=0, atol=1e-12)
