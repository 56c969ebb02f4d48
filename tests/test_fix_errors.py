"""Bad input to fix gnn/rollout: `lmp` in a subprocess must stop with the exact LAMMPS ERROR text,
never crash (no segfault, no libtorch trace).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest

from fixtures.lammps_run import MPIRUN, run_lmp
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
               tmp_path,
               "Fix gnn/rollout mode sideways is not supported: expected leap, shadow, interleave or adaptive")


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


# ------------------------------------------------------------------ issue 23: bad input
DEMO_MODEL = Path(__file__).resolve().parents[1] / "python" / "lmp_gnn" / "data" / "demo_model.pt"
FACTORIES = Path(__file__).resolve().parent / "fixtures" / "bridge_models.py"
needs_mpirun = pytest.mark.skipif(not MPIRUN.exists(), reason="mpirun of the mpich wheel not installed")


def fails_with_np(deck: str, workdir, expected: str, nprocs: int):
    out = run_lmp(deck, workdir, nprocs=nprocs, timeout=120)
    text = out.stdout + out.stderr
    assert out.returncode > 0, f"return code {out.returncode}:\n{text[-3000:]}"
    assert error_line(text) == expected, text[-3000:]
    return text


EMPTY_RANK_MODES = {
    "leap": "",
    "shadow": "mode shadow every 3",
    "interleave": "mode interleave md 6 learn 4 every 3",
}


@needs_mpirun
@pytest.mark.parametrize("mode", list(EMPTY_RANK_MODES))
def test_rank_without_group_atoms(data_file, tmp_path, mode):
    """`processors 2 1 1` and a group of the atoms with x < 0: rank 1 owns none of them. The shipped
    model must run on np 2 in every mode (the empty graph is not handed to the model) and give the
    np 1 result."""
    md = "fix md left nve\n" if mode == "shadow" else ""
    deck = deck_header(data_file, extra="processors 2 1 1") + f"""region left block INF 0 INF INF INF INF
group left region left
velocity left create 1e-8 4 loop geom
{md}fix g left gnn/rollout {DEMO_MODEL} {EMPTY_RANK_MODES[mode]}
run 24
write_dump left custom final.dump id xu yu modify format float %.17g sort id
print "DONE $(f_g[1]) $(lx:%.17g) $(ly:%.17g)"
"""
    results = []
    for nprocs in (1, 2):
        wd = tmp_path / f"np{nprocs}"
        out = run_lmp(deck.replace("processors 2 1 1", "") if nprocs == 1 else deck, wd, nprocs=nprocs,
                      timeout=180)
        text = out.stdout + out.stderr
        assert out.returncode == 0, text[-3000:]
        done = [ln.split() for ln in text.splitlines() if ln.startswith("DONE ")][0]
        results.append((float(done[1]), np.array([float(done[2]), float(done[3])]),
                        np.loadtxt(wd / "final.dump", skiprows=9)))
    (steps1, box1, pos1), (steps2, box2, pos2) = results
    assert steps1 == steps2 > 0
    np.testing.assert_array_equal(pos2[:, 0], pos1[:, 0])
    # float32 model, messages summed in another order on other ranks: last-bit differences only
    np.testing.assert_allclose(box2, box1, rtol=0, atol=1e-12)
    np.testing.assert_allclose(pos2[:, 1:], pos1[:, 1:], rtol=0, atol=1e-12)


def history_lines(n: int) -> list[str]:
    return [f"{i} 0.0 0.0 0.0 0.0" for i in range(1, n + 1)]


HISTORY_CASES = {
    # name: (deck lines before the fix, group, the file's lines, expected message after 'hist.txt ')
    "negative_id": ("", "all", history_lines(35) + ["-1 0 0 0 0"],
                    "line 36: expected an atom ID between 1 and 36, got -1"),
    "id_too_large": ("", "all", history_lines(35) + ["100000 0 0 0 0"],
                     "line 36: expected an atom ID between 1 and 36, got 100000"),
    "listed_twice": ("", "all", history_lines(35) + ["7 0 0 0 0"],
                     "line 36: atom 7 is listed twice (first on line 7); expected each atom of group "
                     "all once"),
    "not_in_group": ("group some id 1:35\n", "some", history_lines(36),
                     "line 36: atom 36 is not in group some; expected the atoms of the group only"),
    "no_such_atom": ("atom_modify map hash\n", "rest", history_lines(36),
                     "line 5: there is no atom 5; expected the atoms of group rest"),
}


@pytest.mark.parametrize("nprocs", [1, 2])
@pytest.mark.parametrize("case", list(HISTORY_CASES))
def test_history_file_atom_ids(models, data_file, tmp_path, case, nprocs):
    """`init file`: every ID is checked against the atom map's range before it is looked up, and the
    file must list each atom of the group once and nothing else (same error on 1 and 2 ranks)."""
    if nprocs > 1 and not MPIRUN.exists():
        pytest.skip("mpirun of the mpich wheel not installed")
    before, group, lines, expected = HISTORY_CASES[case]
    header = deck_header(data_file)
    if case == "no_such_atom":   # atom 5 deleted: IDs 1-36 stay in the map's range
        header = header.replace("atom_modify map array\n", "atom_modify map hash\n")
        before = "group gone id 5\ndelete_atoms group gone bond yes\ngroup rest subtract all gone\n"
    (tmp_path / "hist.txt").write_text("\n".join(lines) + "\n")
    fails_with_np(header + before + f"""fix g {group} gnn/rollout {models['spring']} init file hist.txt
run 1
""", tmp_path, f"Fix gnn/rollout history file hist.txt {expected}", nprocs)


def test_history_file_displacement_too_large(models, data_file, tmp_path):
    (tmp_path / "hist.txt").write_text("\n".join(history_lines(35) + ["36 50.0 0 0 0"]) + "\n")
    out = run_lmp(deck_header(data_file) + f"""fix g all gnn/rollout {models['spring']} init file hist.txt
run 1
""", tmp_path)
    msg = error_line(out.stdout + out.stderr)
    assert re.fullmatch(r"Fix gnn/rollout history file hist.txt: the velocity histories of 1 atom\(s\) hold "
                        r"displacements of up to 50 per learned step: expected at most the longest bond of "
                        r"the group \([0-9.]+\)", msg), msg


@needs_mpirun
@pytest.mark.parametrize("factory,expected", [
    ("raises_on_rank1", "raised RuntimeError: learned rule diverged (scale 4.0)"),
    ("wrong_shape_on_rank1", ": expected accelerations of shape [30, 2], got a torch tensor of shape [30, 3] "
                             "(dtype float64)"),
])
def test_model_error_on_one_rank_reaches_the_user(data_file, tmp_path, factory, expected):
    """A model that fails on one MPI rank only: every rank stops with that rank's message (error->all
    after a reduction), so the ERROR line is printed every time (3 runs)."""
    for attempt in range(3):
        out = run_lmp(deck_header(data_file, extra="processors 2 1 1") +
                      f"fix g all gnn/rollout python {FACTORIES}:{factory}\nrun 3\n",
                      tmp_path / f"run{attempt}", nprocs=2, timeout=120)
        text = out.stdout + out.stderr
        assert out.returncode > 0, text[-3000:]
        msg = re.findall(r"^ERROR(?: on proc \d+)?: (.*)$", text, re.M)
        assert msg, text[-3000:]
        sep = " " if expected.startswith("raised") else ""
        assert msg[0].startswith(f"Fix gnn/rollout at step 1 (MPI rank 1): Python model {FACTORIES}:{factory}"
                                 f"{sep}{expected}"), msg[0]


def test_threads_clamped_to_the_cores(models, data_file, tmp_path):
    ncores = len(os.sched_getaffinity(0))
    out = run_lmp(deck_header(data_file) + f"fix g all gnn/rollout {models['spring']} threads 100000\nrun 2\n",
                  tmp_path)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-3000:]
    assert (f"WARNING: Fix gnn/rollout threads 100000 is more than the {ncores} core(s) this process can use; "
            f"using threads {ncores}") in text, text[-3000:]


@pytest.mark.parametrize("keywords,expected", [
    ("mdsteps 1e-300", "Fix gnn/rollout mdsteps: expected the MD steps one learned step stands for, between 1 "
                       "and 2147483647, got 1e-300"),
    ("mdsteps 0.5", "Fix gnn/rollout mdsteps: expected the MD steps one learned step stands for, between 1 "
                    "and 2147483647, got 0.5"),
    ("mdsteps 1e400", "Floating point number 1e400 in input script or data file is out of range"),
    ("dl -1e-3", "Fix gnn/rollout dl: expected the box-length decrease per learned step along the driven axis, "
                 "a finite number >= 0, got -1e-3"),
    ("dl 1e400", "Floating point number 1e400 in input script or data file is out of range"),   # LAMMPS's
])
def test_keyword_values_out_of_bounds(models, data_file, tmp_path, keywords, expected):
    fails_with(deck_header(data_file) + f"fix g all gnn/rollout {models['spring']} {keywords}\n", tmp_path,
               expected)


@pytest.mark.parametrize("model,got", [("int64_out", "int64"), ("float32_out", "float32")])
def test_torchscript_output_dtype(models, data_file, tmp_path, model, got):
    fails_with(deck_header(data_file) + f"fix g all gnn/rollout {models[model]}\nrun 2\n", tmp_path,
               f"Fix gnn/rollout at step 1: expected accelerations of dtype float64 (metadata 'dtype'), got a "
               f"tensor of dtype {got}")


def test_dl_too_large_for_the_bonds(models, data_file, tmp_path):
    out = run_lmp(deck_header(data_file) + f"fix g all gnn/rollout {models['spring']} dl 1.0\nrun 10\n", tmp_path)
    msg = error_line(out.stdout + out.stderr)
    m = re.fullmatch(r"Fix gnn/rollout dl 1 is too large for the bonds of group all: the box change per learned "
                     r"step must be less than the shortest bond rest length ([0-9.]+), which a bond across the "
                     r"boundary of the driven axis shortens by every learned step; dl exceeds it by ([0-9.]+)", msg)
    assert m, msg
    assert float(m.group(1)) + float(m.group(2)) == pytest.approx(1.0, abs=1e-3)


def test_box_compressed_below_twice_the_longest_bond(models, data_file, tmp_path):
    out = run_lmp(deck_header(data_file) + f"fix g all gnn/rollout {models['spring']} dl 0.5\nrun 20\n", tmp_path)
    msg = error_line(out.stdout + out.stderr)
    assert re.fullmatch(r"Fix gnn/rollout at step \d+: the box rule shrinks the box along x from [0-9.]+ to "
                        r"[0-9.]+, less than twice the longest bond of the group \([0-9.]+\); bonds across the "
                        r"boundary would lose their minimum image: end the run before that or use a smaller dl",
                        msg), msg


def test_huge_accelerations(models, data_file, tmp_path):
    out = run_lmp(deck_header(data_file) + f"fix g all gnn/rollout {models['huge']}\nrun 3\n", tmp_path)
    msg = error_line(out.stdout + out.stderr)
    assert re.fullmatch(r"Fix gnn/rollout: the model returned accelerations of magnitude up to 5 \(distance per "
                        r"learned step\^2\) for 36 atom\(s\) at step 1: expected at most the longest bond of the "
                        r"group \([0-9.]+\); positions were not updated", msg), msg
