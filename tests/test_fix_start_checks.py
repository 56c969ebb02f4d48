"""Start checks of fix gnn/rollout (docs/fix_gnn_rollout.md, "Start checks"): a deck that does not
match what the model was trained on stops with a LAMMPS ERROR (units) or gets a WARNING naming both
values (time per learned step, snapshot interval, masses, bond style, box length, MD steps implied
by the strain of a learned step). `lmp` runs in a subprocess; the tests assert the exact text.
"""

from __future__ import annotations

import re

import pytest

from fixtures.lammps_run import run_lmp
from fixtures.lattice import deck_header, triangular_network
from fixtures.make_models import SPRING_K, Spring, fixture_metadata, write_model
from test_fix_errors import fails_with

# every test starts `lmp` in a subprocess: outside the fast inner loop (-m "not slow"), like test_fix_errors
pytestmark = pytest.mark.slow

DT = 0.05  # the deck_header time step
STEPS = 16.0  # the model's md_steps_per_step
DL = 0.002
NX, NY = 6, 6
LX = float(NX)  # triangular_network: spacing 1, Lx = nx
RATE = DL / (STEPS * DT * LX)  # the strain rate at which a learned step of DL on LX takes STEPS MD steps


def num(x: float) -> str:
    """A double as fmt's `{}` writes it (shortest round trip, no trailing '.0')."""
    s = repr(float(x))
    return s[:-2] if s.endswith(".0") else s


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    return triangular_network(NX, NY, seed=1).write_lammps_data(tmp_path_factory.mktemp("net") / "net.data")


def model(tmp_path, **changes):
    """A spring model trained (by its metadata) exactly for deck_header's deck on data_file."""
    meta = dict(timestep=DT, md_steps_per_step=STEPS, delta_l=DL, strain_rate=RATE, box_length=LX)
    meta.update(changes)
    meta = {k: v for k, v in meta.items() if v is not None}
    return write_model(Spring(SPRING_K), tmp_path / "model.pt", fixture_metadata(**meta))


def warnings_of(deck: str, workdir) -> list[str]:
    """The WARNING lines of fix gnn/rollout from a deck that must run to the end."""
    out = run_lmp(deck, workdir, timeout=120)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-3000:]
    return [m.group(1) for m in re.finditer(r"^WARNING: (Fix gnn/rollout.*?)(?: \([^()]*:\d+\))?$", text, re.M)]


def test_matching_deck_runs_without_warnings(data_file, tmp_path):
    path = model(tmp_path)
    deck = deck_header(data_file) + f"fix g all gnn/rollout {path}\nrun 2\n"
    assert warnings_of(deck, tmp_path) == []


def test_shadow_matching_deck_runs_without_warnings(data_file, tmp_path):
    path = model(tmp_path)
    deck = deck_header(data_file) + f"fix i all nve\nfix g all gnn/rollout {path} mode shadow\nrun 32\n"
    assert warnings_of(deck, tmp_path) == []


def test_units_other_than_lj_is_an_error(data_file, tmp_path):
    path = model(tmp_path)
    deck = deck_header(data_file).replace("units lj", "units real") + f"fix g all gnn/rollout {path}\nrun 0\n"
    fails_with(
        deck,
        tmp_path,
        "Fix gnn/rollout: the model is for units lj (lmp-gnn's training MD), the deck has "
        "units real; add 'units any' to the fix if the model was trained in units real",
    )


def test_units_any_accepts_other_units(data_file, tmp_path):
    path = model(tmp_path)
    deck = deck_header(data_file).replace("units lj", "units real") + f"fix g all gnn/rollout {path} units any\nrun 2\n"
    assert warnings_of(deck, tmp_path) == []


def test_bad_units_keyword(data_file, tmp_path):
    path = model(tmp_path)
    fails_with(
        deck_header(data_file) + f"fix g all gnn/rollout {path} units metal\n",
        tmp_path,
        "Fix gnn/rollout units must be lj or any, got metal",
    )


def test_time_per_learned_step(data_file, tmp_path):
    """A deck with dt 0.05 and mdsteps 10 against a model trained at 0.05 x 16: the learned step
    stands for 0.5 time units here, 0.8 in training."""
    path = model(tmp_path, strain_rate=0.0)  # strain_rate 0 (not recorded): no strain check
    deck = deck_header(data_file) + f"fix g all gnn/rollout {path} mdsteps 10\nrun 0\n"
    assert warnings_of(deck, tmp_path) == [
        "Fix gnn/rollout: one learned step stands for dt * mdsteps = 0.05 * 10 = 0.5 time units here, but for "
        "timestep * md_steps_per_step = 0.05 * 16 = 0.8 in the model's training data; set timestep 0.08 or "
        "mdsteps 16"
    ]


def test_time_step_within_tolerance(data_file, tmp_path):
    path = model(tmp_path, timestep=DT * 1.04)  # 4 %: within the 5 % of the check
    assert warnings_of(deck_header(data_file) + f"fix g all gnn/rollout {path}\nrun 0\n", tmp_path) == []


def test_snapshot_interval(data_file, tmp_path):
    """Mode shadow: snapshots every 18 MD steps of 0.05 against a learned step of 0.05 x 16."""
    path = model(tmp_path)
    deck = deck_header(data_file) + f"fix i all nve\nfix g all gnn/rollout {path} mode shadow every 18\nrun 0\n"
    assert warnings_of(deck, tmp_path) == [
        "Fix gnn/rollout: snapshots every 18 MD steps of dt 0.05 are 0.9 time units apart, but a learned step stood "
        "for timestep * md_steps_per_step = 0.05 * 16 = 0.8 in the model's training data; set every 16"
    ]


def test_masses(data_file, tmp_path):
    path = model(tmp_path)
    deck = deck_header(data_file) + f"mass 1 2.5\nfix g all gnn/rollout {path}\nrun 0\n"
    assert warnings_of(deck, tmp_path) == [
        "Fix gnn/rollout: the model was trained on atoms of mass 1, group all has atoms of type 1 mass 2.5; "
        "the learned motion is that of mass 1"
    ]


def test_per_atom_masses(data_file, tmp_path):
    path = model(tmp_path)
    deck = deck_header(data_file) + (
        "fix pm all property/atom rmass\nset atom * mass 1.0\nset atom 1*3 mass 0.5\n"
        f"fix g all gnn/rollout {path}\nrun 0\n"
    )
    assert warnings_of(deck, tmp_path) == [
        "Fix gnn/rollout: the model was trained on atoms of mass 1, group all has per-atom masses from 0.5 to 1; "
        "the learned motion is that of mass 1"
    ]


def test_bond_style(data_file, tmp_path):
    """bond_style gromos reads the data file's K r0 too, but is not what the model was trained with."""
    path = model(tmp_path)
    deck = (
        deck_header(data_file).replace("bond_style harmonic", "bond_style gromos")
        + f"fix g all gnn/rollout {path}\nrun 0\n"
    )
    assert warnings_of(deck, tmp_path) == [
        "Fix gnn/rollout: the model was trained with bond_style harmonic, the deck has bond_style gromos; the rest "
        "lengths of the edge features are its equilibrium distances"
    ]


def test_accelerated_harmonic_is_harmonic(data_file, tmp_path):
    path = model(tmp_path)
    deck = (
        "package omp 1\n"
        + deck_header(data_file).replace("bond_style harmonic", "bond_style harmonic/omp")
        + f"fix g all gnn/rollout {path}\nrun 0\n"
    )
    assert warnings_of(deck, tmp_path) == []


def test_box_length(data_file, tmp_path):
    """A model of boxes 4 long on a box 6 long (the strain check agrees: the model's strain rate is
    that of its own boxes, and its learned step is a strain step, dl = DL 6 / 4)."""
    path = model(tmp_path, box_length=4.0, strain_rate=RATE * LX / 4.0)
    deck = deck_header(data_file) + f"fix g all gnn/rollout {path}\nrun 0\n"
    assert warnings_of(deck, tmp_path) == [
        "Fix gnn/rollout: the box is 6 long along the driven axis x, the model's training boxes were 4 (metadata "
        "box_length), 50% off; the model was trained on networks of another size"
    ]


def test_box_length_driven_axis_y(data_file, tmp_path):
    """axis y: the box check reads Ly (5.196, 22 % below the model's 6.7; Lx is 10 % below)."""
    path = model(tmp_path, strain_rate=0.0, box_length=6.7)
    ly = NY * 3**0.5 / 2
    deck = deck_header(data_file) + f"fix g all gnn/rollout {path} axis y\nrun 0\n"
    assert warnings_of(deck, tmp_path) == [
        f"Fix gnn/rollout: the box is {num(ly)} long along the driven axis y, the model's training boxes were 6.7 "
        f"(metadata box_length), {100 * (ly / 6.7 - 1):.0f}% off; the model was trained on networks of another size"
    ]


def test_learned_step_is_a_strain_step_kept_by_a_restart(data_file, tmp_path):
    """A model of boxes 4 long steps by the strain DL / 4 per learned step: dl = DL 6 / 4 on this box
    6 long (the driven length when the fix is defined). A restart goes on with that dl, not with
    one scaled from the box it is read in; the keyword dl overrides both."""
    path = model(tmp_path, box_length=4.0, strain_rate=RATE * LX / 4.0)
    step = DL * LX / 4.0
    first = (
        deck_header(data_file)
        + f"""fix g all gnn/rollout {path}
run 2
print "LX $(lx:%.15g)"
write_restart strain.restart
"""
    )
    out = run_lmp(first, tmp_path / "first", timeout=120)
    assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
    assert f"LX {LX - 2 * step:.15g}" in out.stdout
    for dl, expected in ((None, step), (0.001, 0.001)):
        keyword = "" if dl is None else f" dl {dl}"
        second = f"""read_restart {tmp_path / "first" / "strain.restart"}
pair_style zero 1.0 nocoeff
pair_coeff * *
comm_modify cutoff 3.0
fix g all gnn/rollout {path}{keyword}
run 1
print "LX $(lx:%.15g)"
"""
        out = run_lmp(second, tmp_path / f"second{dl}", timeout=120)
        assert out.returncode == 0, (out.stdout + out.stderr)[-3000:]
        assert f"LX {LX - 2 * step - expected:.15g}" in out.stdout


def test_model_without_box_length_has_no_box_check(data_file, tmp_path):
    path = model(tmp_path, box_length=None)
    deck = deck_header(data_file) + f"fix g all gnn/rollout {path}\nrun 0\n"
    assert warnings_of(deck, tmp_path) == []


def test_md_steps_implied_by_the_box(data_file, tmp_path):
    """The issue's case: a model of md_steps_per_step 16 (its training boxes and strain rate give 16
    MD steps per learned step) on a box where its strain rate makes a learned step 8 MD steps. The
    model carries no box_length (an older export), so only the strain check sees it."""
    rate = 2 * RATE
    path = model(tmp_path, strain_rate=rate, box_length=None)
    deck = deck_header(data_file) + f"fix g all gnn/rollout {path}\nrun 0\n"
    assert warnings_of(deck, tmp_path) == [
        f"Fix gnn/rollout: a learned step shrinks this box (Lx = 6) by dl = 0.002, which at the model's training "
        f"strain rate {num(rate)} takes dl / (strain_rate * dt * L) = 8 MD steps, but mdsteps is 16"
    ]


def test_each_warning_once(data_file, tmp_path):
    """A deck of several runs warns once per check, not once per run."""
    path = model(tmp_path)
    deck = deck_header(data_file) + f"mass 1 2.5\nfix g all gnn/rollout {path}\nrun 1\nrun 1\nrun 1\n"
    assert len(warnings_of(deck, tmp_path)) == 1
