"""Bad input to fix gnn/rollout: `lmp` in a subprocess must stop with the exact LAMMPS ERROR text,
never crash (no segfault, no libtorch trace).
"""

from __future__ import annotations

import re

import pytest

from fixtures.lammps_run import run_lmp
from fixtures.lattice import deck_header, triangular_network

# every test starts `lmp` in a subprocess (~0.3 s each): outside the fast inner loop (-m "not slow")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    return triangular_network(6, 6, seed=1).write_lammps_data(tmp_path_factory.mktemp("net") / "net.data")


def error_line(text: str) -> str:
    """The first LAMMPS error message, without the ' (source:line)' suffix."""
    m = re.search(r"^ERROR(?: on proc \d+)?: (.*?)(?: \([^()]*:\d+\))?$", text, re.M)
    assert m, f"no LAMMPS ERROR in the output:\n{text[-3000:]}"
    return m.group(1)


def fails_with(deck: str, workdir, expected: str):
    out = run_lmp(deck, workdir, timeout=120)
    text = out.stdout + out.stderr
    assert out.returncode != 0, text[-3000:]
    assert out.returncode > 0, f"killed by signal {-out.returncode}:\n{text[-3000:]}"
    assert error_line(text) == expected, text[-3000:]


def test_missing_model_file(data_file, tmp_path):
    fails_with(deck_header(data_file) + "fix g all gnn/rollout /nonexistent/model.pt\n", tmp_path,
               "Fix gnn/rollout: cannot open model file /nonexistent/model.pt")


def test_not_torchscript(models, data_file, tmp_path):
    path = models["not_torchscript"]
    out = run_lmp(deck_header(data_file) + f"fix g all gnn/rollout {path}\n", tmp_path)
    msg = error_line(out.stdout + out.stderr)
    assert msg.startswith(f"Fix gnn/rollout: cannot read {path} as a TorchScript model (")
    assert msg.endswith("); make one with `lmp-gnn export`")


def test_foreign_torchscript(models, data_file, tmp_path):
    path = models["foreign"]
    fails_with(deck_header(data_file) + f"fix g all gnn/rollout {path}\n", tmp_path,
               f"Fix gnn/rollout: model file {path} is a TorchScript file without lmp-gnn metadata "
               "(no 'lmp_gnn_format'); make one with `lmp-gnn export`")


@pytest.mark.parametrize("name,message", [
    ("bad_format", "expected lmp_gnn_format 1, got 2; re-export it with `lmp-gnn export`"),
    ("bad_feature_version", "expected feature_version 1, got 7"),
    ("bad_dimension", "expected dimension 2, got 3"),
    ("bad_history", "metadata 'history' must be an integer, got 'two'"),
])
def test_metadata_mismatch(models, data_file, tmp_path, name, message):
    path = models[name]
    fails_with(deck_header(data_file) + f"fix g all gnn/rollout {path}\n", tmp_path,
               f"Fix gnn/rollout: model file {path}: {message}")


def test_missing_metadata_key(models, data_file, tmp_path):
    path = models["no_delta_l"]
    fails_with(deck_header(data_file) + f"fix g all gnn/rollout {path}\n", tmp_path,
               f"Fix gnn/rollout: model file {path} lacks metadata 'delta_l'; re-export it with `lmp-gnn export`")


def test_atom_style_without_bonds(models, tmp_path):
    deck = f"""units lj
dimension 2
atom_style atomic
region box block 0 5 0 5 -0.5 0.5
create_box 1 box
create_atoms 1 random 10 1234 box
mass 1 1.0
fix g all gnn/rollout {models['spring']}
"""
    fails_with(deck, tmp_path,
               "Fix gnn/rollout requires an atom style with bonds (e.g. atom_style bond), got atom_style atomic")


def test_group_without_bonds(models, data_file, tmp_path):
    fails_with(deck_header(data_file) + f"""group lonely id 1
fix g lonely gnn/rollout {models['spring']}
run 1
""", tmp_path, "Fix gnn/rollout group lonely has no bonds between its atoms")


def test_second_integrator(models, data_file, tmp_path):
    fails_with(deck_header(data_file) + f"""fix md all nve
fix g all gnn/rollout {models['spring']}
run 1
""", tmp_path, "Fix gnn/rollout mode leap integrates group all, but fix md (nve) also integrates "
                 "36 of its atoms; unfix it or exclude those atoms from its group")


def test_box_changed_by_another_fix(models, data_file, tmp_path):
    fails_with(deck_header(data_file) + f"""fix d all deform 1 x erate -1e-3 remap x
fix g all gnn/rollout {models['spring']}
run 1
""", tmp_path, "Must not have multiple fixes change box parameter x")   # LAMMPS's own check comes first


def test_unknown_keyword(models, data_file, tmp_path):
    fails_with(deck_header(data_file) + f"fix g all gnn/rollout {models['spring']} speed 2\n", tmp_path,
               "Unknown fix gnn/rollout keyword: speed")


def test_missing_value(models, data_file, tmp_path):
    fails_with(deck_header(data_file) + f"fix g all gnn/rollout {models['spring']} mdsteps\n", tmp_path,
               "Illegal fix gnn/rollout mdsteps command: missing argument(s)")


def test_bad_mode(models, data_file, tmp_path):
    fails_with(deck_header(data_file) + f"fix g all gnn/rollout {models['spring']} mode sideways\n",
               tmp_path, "Fix gnn/rollout mode sideways is not supported: expected leap, shadow or interleave")


@pytest.mark.parametrize("keywords", ["mode shadow", "init file mode mode shadow every 4"])
def test_restart_of_another_mode(models, data_file, tmp_path, keywords):
    """The restart record is read back by name: its mode field is checked against the mode the
    creator picked from the keywords (a file named `mode` is not the mode keyword)."""
    fails_with(deck_header(data_file) + f"""fix g all gnn/rollout {models['spring']} box no
run 2
write_restart {tmp_path / 'leap.restart'}
clear
read_restart {tmp_path / 'leap.restart'}
fix g all gnn/rollout {models['spring']} {keywords}
""", tmp_path, "Fix gnn/rollout restart file was written in mode leap, this fix runs mode shadow")


def test_missing_model_argument(data_file, tmp_path):
    fails_with(deck_header(data_file) + "fix g all gnn/rollout\n", tmp_path,
               "Illegal fix gnn/rollout command: missing argument(s)")


def test_non_finite_output(models, data_file, tmp_path):
    fails_with(deck_header(data_file) + f"""fix g all gnn/rollout {models['nan']}
run 3
""", tmp_path, "Fix gnn/rollout: the model returned non-finite accelerations for 36 atom(s) at step 1; "
               "positions were not updated")


def test_comm_cutoff_too_small(models, data_file, tmp_path):
    deck = deck_header(data_file, comm_cutoff=1.5) + f"""fix g all gnn/rollout {models['spring2']}
run 1
"""
    out = run_lmp(deck, tmp_path)
    msg = error_line(out.stdout + out.stderr)
    assert re.fullmatch(r"Fix gnn/rollout: the model's 2 message-passing layer\(s\) need ghost atoms 2 "
                        r"bond\(s\) deep, [0-9.]+ with the longest bond [0-9.]+, but the communication "
                        r"cutoff is 1\.5: use comm_modify cutoff [0-9.]+ \(or larger\)", msg), msg


def test_history_file_missing_atoms(models, data_file, tmp_path):
    (tmp_path / "hist.txt").write_text("1 0.0 0.0 0.0 0.0\n2 0.0 0.0 0.0 0.0\n")
    fails_with(deck_header(data_file) + f"""fix g all gnn/rollout {models['spring']} init file hist.txt
run 1
""", tmp_path, "Fix gnn/rollout history file hist.txt gives 2 of the 36 atoms of group all")


def test_history_file_short_line(models, data_file, tmp_path):
    (tmp_path / "hist.txt").write_text("# comment\n1 0.0 0.0 0.0\n")
    fails_with(deck_header(data_file) + f"""fix g all gnn/rollout {models['spring']} init file hist.txt
run 1
""", tmp_path, "Fix gnn/rollout history file hist.txt line 2: expected an atom ID and 4 values "
               "(vx, vy of v(t), ..., v(t-1)), got '1 0.0 0.0 0.0'")
