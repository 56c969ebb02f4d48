"""Bad input to the `lmp-gnn` commands: one line naming the mistake, and nothing left behind.

One test per class of mistake: negative option values (parsed, then checked), network files that
are no 2D network, failures that must leave the output folder as it was, damaged outputs of an
earlier run that a rerun must redo, and workers whose parent was killed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lmp_gnn.cli import main
from lmp_gnn.files import removed_on_failure
from lmp_gnn.physics.md import compress
from lmp_gnn.physics.trajectory import save_trajectory
from test_md import triangular_lattice

FAST = ["--max-strain", "0.004", "--delta-l", "0.004"]


def error_line(err: str, command: str) -> str:
    """The message of the one line `lmp-gnn COMMAND: error: MESSAGE` that `err` must consist of."""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    prefix = f"lmp-gnn {command}: error: "
    assert lines[0].startswith(prefix), err
    return lines[0][len(prefix) :]


@pytest.fixture()
def netdir(tmp_path):
    d = tmp_path / "nets"
    triangular_lattice(6, 6).write_lammps_data(d / "a.data")
    return d


def test_negative_option_values_parse_and_are_checked(netdir, tmp_path, capsys):
    """`--delta-l -1e-3` is a value, not an unknown option (argparse before 3.13 said "expected one
    argument"); a value that means nothing physically is refused by name, before any output."""
    out = tmp_path / "out"
    cases = [
        (
            ["simulate", str(netdir), "-o", str(out), "--delta-l", "-1e-3"],
            "simulate",
            "--delta-l: expected delta_l > 0, got -0.001",
        ),
        (
            ["simulate", str(netdir), "-o", str(out), "--timestep", "-5E-2"],
            "simulate",
            "--timestep: expected timestep > 0, got -0.05",
        ),
        (
            ["rollout", "zero", str(tmp_path / "t.npz"), "-o", str(out), "--delta-l", "-2e-3"],
            "rollout",
            "--delta-l: expected Δl > 0 (the box shrinks by Δl per step), got -0.002",
        ),
        (
            ["rollout", "zero", str(tmp_path / "t.npz"), "-o", str(out), "--start", "-1"],
            "rollout",
            "--start: expected a snapshot index ≥ 0, got -1",
        ),
        (
            ["networks", "-o", str(out), "--nu-min", "-6e-1", "--nu-max", "-7e-1"],
            "networks",
            "--nu-min/--nu-max: expected -1 < nu_min ≤ nu_max < 1, got -0.6 and -0.7",
        ),
        (
            ["evaluate", "zero", "--data", str(tmp_path), "-o", str(out), "--start", "-2"],
            "evaluate",
            "expected --start >= 0, got -2",
        ),
    ]
    for argv, command, message in cases:
        assert main(argv) == 2
        assert error_line(capsys.readouterr().err, command) == message
        assert not out.exists()
    with pytest.raises(SystemExit):  # an argparse type check: usage line, then the error
        main(["evaluate", "zero", "--data", str(tmp_path), "-o", str(out), "--strains", "0.01", "-5e-1"])
    assert "expected a compressive strain in (0, 0.5), e.g. 0.01 for 1 %, got -5e-1" in capsys.readouterr().err


def _edit_atoms(path: Path, edit) -> list[list[str]]:
    """Rewrite the Atoms lines of a data file written by Network.write_lammps_data: edit(words) for
    each atom's ["id", "mol", "type", "x", "y", "z"]; returns the atoms' words before the edit."""
    lines = path.read_text().splitlines()
    start = lines.index("Atoms # bond") + 2
    end = lines.index("", start)
    atoms = [line.split() for line in lines[start:end]]
    lines[start:end] = [" ".join(edit(list(words))) for words in atoms]
    path.write_text("\n".join(lines) + "\n")
    return atoms


def test_simulate_refuses_files_that_are_not_2d_networks(netdir, tmp_path, capsys):
    """A 3D data file (read as its xy projection it would be another network) and one with two atoms
    at one place (no bond direction, division by zero): one line naming the file, nothing written."""
    bad = netdir / "a.data"
    original = bad.read_text()
    _edit_atoms(bad, lambda w: w[:5] + [str(0.01 * int(w[0]))])
    out = tmp_path / "traj"
    assert main(["simulate", str(netdir), "-o", str(out), *FAST]) == 2
    message = error_line(capsys.readouterr().err, "simulate")
    assert message.startswith(
        f"{bad}: expected a 2D network (every atom at z = 0, image flag iz = 0), got z from "
        "0.01 to 0.36: is this a 3D data file?"
    )
    assert not out.exists()

    bad.write_text(original)
    atom1 = _edit_atoms(bad, lambda w: w)[0]
    _edit_atoms(bad, lambda w: w[:3] + atom1[3:5] + w[5:] if w[0] == "7" else w)  # atom 7 onto atom 1
    assert main(["simulate", str(netdir), "-o", str(out), *FAST]) == 2
    message = error_line(capsys.readouterr().err, "simulate")
    assert message.startswith(f"{bad}: expected every atom at its own place, got atoms 1 and 7 at the same position")
    assert not out.exists()


def test_failed_commands_leave_no_output(netdir, tmp_path, capsys):
    """A command that fails leaves the output folder as it found it: a folder it made is gone,
    files that were there stay; a rerun of a failed evaluation starts from the same state."""
    long = compress(triangular_lattice(6, 6), max_strain=0.01, delta_l=0.002, seed=1, thermostat="viscous")
    short = compress(triangular_lattice(6, 6), max_strain=0.001, delta_l=0.002, seed=1, thermostat="viscous")
    data = tmp_path / "data"
    save_trajectory(data / "a_long.npz", long)
    save_trajectory(data / "b_short.npz", short)

    # evaluate: the first trajectory is scored and plotted, the second is too short for --start
    out = tmp_path / "eval"
    (out / "networks").mkdir(parents=True)
    (out / "notes.txt").write_text("mine")
    (out / "networks" / "old.json").write_text("{}")
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    assert main(["evaluate", "zero", "--data", str(data), "-o", str(out), "--plot-networks", "2"]) == 1
    message = error_line(capsys.readouterr().err.splitlines()[-1], "evaluate")  # after the progress bar
    assert message == (
        f"{data / 'b_short.npz'}: expected more than 6 snapshots to roll out from 5, got {short.n_snapshots}"
    )
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before
    assert (out / "notes.txt").read_text() == "mine"
    assert main(["evaluate", "zero", "--data", str(data / "a_long.npz"), "-o", str(tmp_path / "eval2")]) == 0
    assert (tmp_path / "eval2" / "networks" / "a_long.json").exists()  # the same command on good data
    capsys.readouterr()

    failing = [  # argv, exit status, the output it must not leave, message
        (
            ["rollout", "zero", str(tmp_path / "missing.npz"), "-o", str(tmp_path / "r")],
            2,
            tmp_path / "r",
            f"expected trajectory files, got {tmp_path / 'missing.npz'} (no such file)",
        ),
        (
            ["rollout", "zero", str(tmp_path / "nets" / "a.data"), "-o", str(tmp_path / "r")],
            1,
            tmp_path / "r",
            f"{tmp_path / 'nets' / 'a.data'}: not a readable trajectory file",
        ),
        (
            ["train", "--data", str(tmp_path / "nets"), "-o", str(tmp_path / "t"), "--steps", "2"],
            1,
            tmp_path / "t",
            f"expected trajectory files (*.npz) in ['{tmp_path / 'nets'}'], found none",
        ),
        (
            ["train", "--data", str(data), "-o", str(tmp_path / "t"), "--set", "train.lr"],
            1,
            tmp_path / "t",
            "--set: expected KEY=VALUE, e.g. train.lr=1e-3, got 'train.lr'",
        ),
        (
            ["demo", "-o", str(tmp_path / "d"), "--pretrained", str(tmp_path / "missing.pt")],
            1,
            tmp_path / "d",
            f"{tmp_path / 'missing.pt'}: no such model file",
        ),
        (["demo", "-o", str(tmp_path / "d"), "--workers", "0"], 1, tmp_path / "d", "--workers must be >= 1, got 0"),
    ]
    for argv, status, output, message in failing:
        try:
            rc = main(argv)
        except SystemExit as exc:  # demo's own checks
            rc = 1 if isinstance(exc.code, str) else exc.code
            print(exc.code, file=sys.stderr)
        assert rc == status, argv
        err = capsys.readouterr().err
        assert message in err and f"lmp-gnn {argv[0]}: error: " in err, err
        assert not output.exists(), argv

    # simulate: every network fails in MD (box too small for its bonds): no summary of nothing
    triangular_lattice(2, 2).write_lammps_data(netdir / "a.data")
    assert main(["simulate", str(netdir), "-o", str(tmp_path / "s"), *FAST]) == 1
    assert "expected box lengths above 2.2 × the longest bond" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def test_removed_on_failure_removes_only_what_the_failed_block_made(tmp_path):
    out = tmp_path / "out"
    (out / "old").mkdir(parents=True)
    (out / "old" / "a.txt").write_text("a")
    with pytest.raises(RuntimeError), removed_on_failure(out):
        (out / "old" / "b.txt").write_text("b")
        (out / "new" / "deep").mkdir(parents=True)
        (out / "new" / "deep" / "c.txt").write_text("c")
        raise RuntimeError("failed")
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == ["old", "old/a.txt"]
    with pytest.raises(RuntimeError), removed_on_failure(out, keep=lambda made: any(p.suffix == ".pt" for p in made)):
        (out / "best.pt").write_text("checkpoint")
        raise RuntimeError("diverged later")
    assert (out / "best.pt").exists()  # a failure after a checkpoint keeps the run's files
    with pytest.raises(KeyError), removed_on_failure(tmp_path / "fresh"):
        (tmp_path / "fresh").mkdir()
        raise KeyError("x")
    assert not (tmp_path / "fresh").exists()


def test_networks_rerun_redoes_damaged_networks(tmp_path, capsys):
    """A rerun skips only networks whose .data reads back as its record says: a truncated file is
    made again (the same network: the seeds are fixed), and the files are world-readable."""
    out = tmp_path / "nets"
    argv = ["networks", "-o", str(out), "--count", "2", "--nodes", "32", "--check-strain", "0", "--tol", "0.05"]
    assert main(argv) == 0
    good = (out / "net_0001.data").read_bytes()
    mask = os.umask(0)
    os.umask(mask)
    for path in out.iterdir():
        assert path.stat().st_mode & 0o777 == 0o666 & ~mask, path
    (out / "net_0001.data").write_bytes(good[: len(good) // 3])
    capsys.readouterr()
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert f"{out / 'net_0001.data'} is unreadable" in captured.err and "1 of 2 networks already in" in captured.out
    assert (out / "net_0001.data").read_bytes() == good
    assert main(argv) == 0
    assert "2 of 2 networks already in" in capsys.readouterr().out


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has ended
    except OSError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads process children from /proc (Linux)")
def test_simulate_workers_end_when_the_parent_is_killed(tmp_path):
    """SIGKILL to `lmp-gnn simulate --workers 2` alone: its workers end too (they would otherwise
    finish their networks, write them, and wait for tasks forever)."""
    nets = tmp_path / "nets"
    for k in range(4):
        triangular_lattice(10, 10, shift=0.1 * k).write_lammps_data(nets / f"n{k}.data")
    out = tmp_path / "traj"
    # a slow protocol: each network takes minutes, so none is done when the parent is killed
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lmp_gnn.cli",
            "simulate",
            str(nets),
            "-o",
            str(out),
            "--workers",
            "2",
            "--strain-rate",
            "2.5e-9",
            "--thermostat",
            "viscous",
        ],
        env=dict(os.environ, OMP_NUM_THREADS="1"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while len(_children(proc.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(5)  # the workers are in their first network's MD
        workers = _children(proc.pid)
        assert len(workers) >= 2 and all(_running(w) for w in workers)
    finally:
        proc.kill()
        proc.wait()
    deadline = time.monotonic() + 20
    while any(_running(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = [w for w in workers if _running(w)]
    for w in left:
        os.kill(w, signal.SIGKILL)
    assert not left, "workers outlived their parent"
    assert not list(out.glob("*.npz"))
