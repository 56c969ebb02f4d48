"""`lmp-gnn import`: a compression run written by a plain LAMMPS deck (data file + dump) becomes a
trajectory that `lmp-gnn train` and `lmp-gnn evaluate` accept, with the dump read by LAMMPS itself."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fixtures.lammps_run import read_dump, run_in_process
from fixtures.lattice import deck_header, triangular_network
from lmp_gnn.cli import main
from lmp_gnn.coupling.dump_import import DumpImportError, import_dump
from lmp_gnn.physics.trajectory import load_trajectory

EVERY = 200     # MD steps per snapshot
FRAMES = 13


@pytest.fixture(scope="module")
def user_run(tmp_path_factory):
    """A user's own compression deck: fix deform + Berendsen + viscous drag, two dumps."""
    tmp = tmp_path_factory.mktemp("user_run")
    net = triangular_network(8, 8, seed=11)
    data = net.write_lammps_data(tmp / "my_network.data")
    lmp = run_in_process(deck_header(data) + f"""
velocity all set 0.2 -0.3 NULL sum yes
fix squeeze all deform 1 x erate -2.5e-5 remap x
fix baro all press/berendsen y 0.0 0.0 1.0 modulus 1.0 dilate all
fix drag all viscous 0.1
fix md all nve
fix flat all enforce2d
dump unwrapped all custom {EVERY} {tmp / 'run_xu.dump'} id xu yu
dump_modify unwrapped format float %.17g
dump images all custom {EVERY} {tmp / 'run_image.dump'} id x y ix iy
dump_modify images format float %.17g
run {EVERY * (FRAMES - 1)}
""")
    lmp.close()
    return net, data, tmp


def test_both_dump_layouts_give_the_dumped_positions(user_run):
    net, data, tmp = user_run
    R, L = read_dump(tmp / "run_xu.dump", net.n_nodes)
    a = import_dump(data, tmp / "run_xu.dump", timestep=0.05)
    b = import_dump(data, tmp / "run_image.dump", timestep=0.05)
    assert a.positions.shape == (FRAMES, net.n_nodes, 2)
    np.testing.assert_allclose(a.positions, R, rtol=0, atol=1e-12)     # box centred at 0 in this deck
    np.testing.assert_allclose(a.box, L, rtol=1e-15)
    np.testing.assert_allclose(b.positions, a.positions, rtol=0, atol=1e-9)
    crossed = np.round(R[-1] / L[-1]) != np.round(R[0] / L[0])
    assert crossed.any()                                              # the drift carried nodes across
    m = a.metadata
    assert m["md_steps_per_snapshot"] == EVERY and m["timestep"] == 0.05
    assert m["delta_l"] == pytest.approx(8.0 * 2.5e-5 * 0.05 * EVERY, rel=1e-6)
    assert m["strain_rate"] == pytest.approx(2.5e-5, rel=1e-6)
    assert m["nu_linear"] is None          # the jittered lattice is not at mechanical equilibrium
    np.testing.assert_array_equal(a.bonds, net.bonds)


@pytest.mark.slow
def test_import_train_evaluate(user_run, tmp_path, capsys):
    _, data, tmp = user_run
    trajs = tmp_path / "trajectories"
    trajs.mkdir()
    for name in ("run_xu", "run_image"):
        assert main(["import", str(data), str(tmp / f"{name}.dump"), "-o", str(trajs / f"{name}.npz"),
                     "--timestep", "0.05"]) == 0
    assert "13 snapshots of 64 nodes" in capsys.readouterr().out
    assert load_trajectory(trajs / "run_xu.npz").n_snapshots == FRAMES
    assert main(["import", str(data), str(tmp / "run_xu.dump"), "-o", str(tmp_path / "half.npz"),
                 "--timestep", "0.05", "--every", "2"]) == 0
    assert load_trajectory(tmp_path / "half.npz").metadata["md_steps_per_snapshot"] == 2 * EVERY

    run = tmp_path / "run"
    assert main(["train", "examples/train_small.yaml", "--data", str(trajs), "-o", str(run), "--steps", "4",
                 "--set", "model.latent=16", "--set", "model.hidden=16", "--set", "train.val_every=4",
                 "--set", "train.ckpt_every=4", "--set", "train.rollout_steps=2", "--set", "data.val_fraction=0"]) == 0
    assert main(["export", str(run / "last.pt"), "-o", str(tmp_path / "model.pt")]) == 0
    assert main(["evaluate", str(tmp_path / "model.pt"), "--data", str(trajs), "-o", str(tmp_path / "eval"),
                 "--mse-steps", "1", "5", "--nu-steps", "5", "--strains", "0.002"]) == 0
    results = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert len(results["networks"]) == 2


def test_bad_dumps_are_refused(user_run, tmp_path):
    _, data, tmp = user_run
    with pytest.raises(DumpImportError, match="expected a positive MD timestep"):
        import_dump(data, tmp / "run_xu.dump", timestep=0.0)
    bad = tmp_path / "positions_only.dump"
    bad.write_text((tmp / "run_xu.dump").read_text().replace("ITEM: ATOMS id xu yu", "ITEM: ATOMS id vx vy"))
    with pytest.raises(DumpImportError, match=r"expected unwrapped coordinates \(columns xu yu\) or wrapped ones "
                                              r"with image flags \(x y ix iy\), got columns id vx vy"):
        import_dump(data, bad, timestep=0.05)
    with pytest.raises(DumpImportError, match="found no frame"):
        import_dump(data, data, timestep=0.05)
    uneven = tmp_path / "uneven.dump"
    text = (tmp / "run_xu.dump").read_text().split("ITEM: TIMESTEP\n")
    uneven.write_text("ITEM: TIMESTEP\n" + "ITEM: TIMESTEP\n".join(text[1:4] + text[5:]))   # frame 3 missing
    with pytest.raises(DumpImportError, match="expected snapshots at a fixed"):
        import_dump(data, uneven, timestep=0.05)
