"""A fuzz of fix gnn/rollout (issue 23): a few hundred generated decks with malformed keyword values,
models, groups and history files. Every deck must either run (with a finite state afterwards) or stop
with a LAMMPS ERROR: no crash, no hang, no exit without an ERROR, no non-finite state.

The decks run in worker processes (tests/fixtures/fuzz_worker.py), each deck in a fresh LAMMPS
instance, so that torch is loaded once per worker; a worker that dies or hangs is counted against
the deck it was running and replaced. A sample of the decks also runs as `lmp` and `mpirun -np 2
lmp` subprocesses, which must print an ERROR line and exit with a non-zero code. The counts are
printed (pytest -s).
"""

from __future__ import annotations

import json
import os
import random
import re
import select
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from fixtures.lammps_run import MPIRUN, run_lmp
from fixtures.lattice import deck_header, triangular_network

WORKER = Path(__file__).resolve().parent / "fixtures" / "fuzz_worker.py"
FACTORIES = Path(__file__).resolve().parent / "fixtures" / "bridge_models.py"
DEMO_MODEL = Path(__file__).resolve().parents[1] / "python" / "lmp_gnn" / "data" / "demo_model.pt"
DECK_TIMEOUT = 60.0  # seconds one deck may take before it counts as a hang

NUMBERS = [
    "",
    "abc",
    "0",
    "-1",
    "-0.001",
    "1e-300",
    "1e300",
    "1e400",
    "nan",
    "inf",
    "-inf",
    "0.5",
    "3",
    "100000",
    "2147483648",
    "1e9",
    "0x10",
]
WORDS = [
    "",
    "sideways",
    "0",
    "1",
    "yes",
    "no",
    "x",
    "y",
    "z",
    "cuda",
    "cuda:7",
    "file",
    "fix",
    "velocity",
    "-1",
    "nan",
    "leap",
    "shadow",
    "interleave",
    "adaptive",
]
NUMERIC_KEYS = ["every", "md", "learn", "tol", "pdamp", "modulus", "mdsteps", "dl", "threads"]
WORD_KEYS = ["mode", "box", "axis", "init", "device"]
# the keywords a mode needs to run, before the fuzzed ones
MODE_BASE = {
    "leap": "",
    "shadow": "mode shadow every 3",
    "interleave": "mode interleave md 6 learn 3 every 3",
    "adaptive": "mode adaptive md 6 learn 3 every 3 tol 1",
}


def mode_for(key: str) -> str:
    return {
        "md": "interleave",
        "learn": "interleave",
        "pdamp": "interleave",
        "modulus": "interleave",
        "tol": "adaptive",
        "every": "shadow",
    }.get(key, "leap")


def fix_line(model: str, mode: str, keywords: str, group: str = "all") -> str:
    base = MODE_BASE[mode]
    md = "fix md all nve\n" if mode == "shadow" else ""
    return f"{md}fix g {group} gnn/rollout {model} {base} {keywords}".rstrip() + "\nrun 8\n"


def fuzz_decks(models: dict, header: str) -> list[tuple[str, str]]:
    """(name, deck) of every fuzz case; files they name are made by write_inputs."""
    spring = models["spring"]
    decks = []
    # every keyword with every malformed value (a value "" leaves the keyword without its value)
    for key in NUMERIC_KEYS:
        for value in NUMBERS:
            mode = mode_for(key)
            decks.append((f"{key}={value!r}", header + fix_line(spring, mode, f"{key} {value}")))
    for key in WORD_KEYS:
        for value in WORDS:
            decks.append((f"{key}={value!r}", header + fix_line(spring, "leap", f"{key} {value}")))
    # models
    for name in [
        "not_torchscript",
        "foreign",
        "bad_format",
        "bad_feature_version",
        "bad_dimension",
        "bad_history",
        "no_delta_l",
        "nan",
        "huge",
        "int64_out",
        "float32_out",
        "spring_f32",
        "spring2",
        "spring3_f32",
        "constant",
        "linear",
        "spring_h3",
    ]:
        for mode in MODE_BASE:
            decks.append((f"model={name}/{mode}", header + fix_line(models[name], mode, "")))
    for model in [
        "/nonexistent/model.pt",
        ".",
        "empty.pt",
        "python",
        "python model.py",
        "python :f",
        "python /nonexistent.py:f",
        f"python {FACTORIES}:missing",
        f"python {FACTORIES}:no_metadata",
        f"python {FACTORIES}:bad_metadata",
        f"python {FACTORIES}:raises",
        f"python {FACTORIES}:wrong_shape",
        f"python {FACTORIES}:wrong_dtype",
        f"python {FACTORIES}:returns_list",
        f"python {FACTORIES}:factory_raises",
        str(DEMO_MODEL),
    ]:
        decks.append((f"model={model}", header + fix_line(model, "leap", "")))
    # groups
    for group_cmd, group in [
        ("group none empty", "none"),
        ("group one id 1", "one"),
        ("group left region left", "left"),
        ("group two id 1 20", "two"),
    ]:
        for mode in MODE_BASE:
            decks.append(
                (
                    f"group={group}/{mode}",
                    header
                    + "region left block INF 0 INF INF INF INF\n"
                    + group_cmd
                    + "\n"
                    + fix_line(spring, mode, "", group).replace("fix md all", f"fix md {group}"),
                )
            )
    # history files (written by write_inputs)
    for name in HISTORY_FILES:
        decks.append((f"init file {name}", header + fix_line(spring, "leap", f"init file {name}")))
    decks.append(("init file (directory)", header + fix_line(spring, "leap", "init file .")))
    decks.append(("init file (missing)", header + fix_line(spring, "leap", "init file /nonexistent/hist.txt")))
    for value in ["", "g", "nosuchfix", "md"]:
        decks.append(
            (f"init fix {value!r}", header + "fix md all nve\n" + fix_line(spring, "leap", f"init fix {value}"))
        )
    # runs and the deck around the fix
    for extra in [
        "run 0",
        "run -1",
        "run 1e9 upto",
        "minimize 1e-4 1e-6 10 100",
        "unfix g\nrun 2",
        "write_restart r.restart\nclear\nread_restart r.restart\nrun 2",
        "timestep 0\nrun 2",
        "change_box all x final -3 3.5 remap\nrun 2",
        "velocity all create 1e6 1\nrun 2",
    ]:
        decks.append((f"after fix: {extra!r}", header + fix_line(spring, "leap", "").replace("run 8\n", extra + "\n")))
    # random combinations of two or three fuzzed keywords
    rng = random.Random(23)
    pool = [(k, v) for k in NUMERIC_KEYS for v in NUMBERS if v] + [(k, v) for k in WORD_KEYS for v in WORDS if v]
    for n in range(100):
        picks = rng.sample(pool, rng.choice([2, 3]))
        mode = rng.choice(list(MODE_BASE))
        keywords = " ".join(f"{k} {v}" for k, v in picks)
        decks.append((f"combo {n}: {mode} {keywords}", header + fix_line(spring, mode, keywords)))
    return decks


ROWS = [f"{i} 0.001 -0.002 0.001 0.0" for i in range(1, 37)]
HISTORY_FILES = {
    "h_empty.txt": "",
    "h_garbage.txt": "this is not a history file\n",
    "h_binary.txt": "\x00\x01\x02\xff\n" * 4,
    "h_nan.txt": "\n".join(ROWS[:-1] + ["36 nan 0 0 0"]) + "\n",
    "h_huge.txt": "\n".join(ROWS[:-1] + ["36 1e300 0 0 0"]) + "\n",
    "h_overflow.txt": "\n".join(ROWS[:-1] + ["36 1e400 0 0 0"]) + "\n",
    "h_negative_id.txt": "\n".join(ROWS[:-1] + ["-3 0 0 0 0"]) + "\n",
    "h_zero_id.txt": "\n".join(ROWS[:-1] + ["0 0 0 0 0"]) + "\n",
    "h_big_id.txt": "\n".join(ROWS[:-1] + ["100000 0 0 0 0"]) + "\n",
    "h_huge_id.txt": "\n".join(ROWS[:-1] + ["99999999999999999999 0 0 0 0"]) + "\n",
    "h_ids_257.txt": "\n".join(ROWS[:-5] + [f"{i} 0 0 0 0" for i in range(257, 262)]) + "\n",
    "h_duplicate.txt": "\n".join(ROWS[:-1] + ["1 0 0 0 0"]) + "\n",
    "h_extra_column.txt": "\n".join(ROWS[:-1] + ["36 0 0 0 0 0"]) + "\n",
    "h_fewer_lines.txt": "\n".join(ROWS[:10]) + "\n",
    "h_more_lines.txt": "\n".join(ROWS + ["37 0 0 0 0"]) + "\n",
    "h_float_id.txt": "\n".join(ROWS[:-1] + ["36.5 0 0 0 0"]) + "\n",
    "h_ok.txt": "\n".join(ROWS) + "\n",
}


def write_inputs(workdir: Path) -> None:
    triangular_network(6, 6, seed=1).write_lammps_data(workdir / "net.data")
    (workdir / "empty.pt").write_bytes(b"")
    for name, text in HISTORY_FILES.items():
        (workdir / name).write_text(text, errors="surrogateescape")


class Worker:
    """A fuzz_worker.py process; run() gives (status, message) of one deck."""

    def __init__(self, workdir: Path):
        env = dict(
            os.environ,
            OMP_NUM_THREADS="1",
            PYTHONPATH=os.pathsep.join([str(WORKER.parent)] + [p for p in [os.environ.get("PYTHONPATH")] if p]),
        )
        self.proc = subprocess.Popen(
            [sys.executable, str(WORKER)],
            cwd=workdir,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        self.buffer = b""

    def run(self, deck: str) -> tuple[str, str]:
        try:
            self.proc.stdin.write((json.dumps({"deck": deck}) + "\n").encode())
            self.proc.stdin.flush()
        except BrokenPipeError:
            return self.died()
        deadline = time.monotonic() + DECK_TIMEOUT
        fd = self.proc.stdout.fileno()
        while True:
            for line in self.buffer.split(b"\n")[:-1]:
                if line.startswith(b"@@FUZZ "):
                    self.buffer = self.buffer[self.buffer.index(line) + len(line) + 1 :]
                    result = json.loads(line[7:])
                    return result["status"], result["message"]
            left = deadline - time.monotonic()
            if left <= 0:
                self.proc.kill()
                self.proc.wait()
                return "hang", f"no answer in {DECK_TIMEOUT} s"
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    return self.died()
                self.buffer += chunk

    def died(self) -> tuple[str, str]:
        rc = self.proc.wait()
        if rc < 0:
            return "crash", f"killed by signal {-rc}"
        return "exit", f"the process exited with code {rc} without an ERROR"

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            self.proc.wait(timeout=30)


def classify(status: str, message: str) -> str:
    if status == "ok":
        return "nonsense" if message else "ran"
    if status == "error":
        return "error" if re.search(r"ERROR(?: on proc \d+)?: \S", message) else "error without ERROR text"
    return status


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("fuzz")
    write_inputs(d)
    return d


def test_fuzz_decks(models, fuzz_dir):
    """Every deck runs or stops with an ERROR; the counts per outcome are printed."""
    decks = fuzz_decks({k: str(v) for k, v in models.items()}, deck_header("net.data"))
    assert len(decks) >= 300
    counts, bad = Counter(), []
    worker = Worker(fuzz_dir)
    t0 = time.monotonic()
    for name, deck in decks:
        status, message = worker.run(deck)
        outcome = classify(status, message)
        counts[outcome] += 1
        if outcome not in ("ran", "error"):
            bad.append(f"{name}: {outcome}: {message[:300]}")
        if status in ("crash", "exit", "hang"):
            worker = Worker(fuzz_dir)
    worker.close()
    print(
        f"\nfuzz of fix gnn/rollout: {len(decks)} decks in {time.monotonic() - t0:.0f} s: "
        + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
    )
    for k in ("crash", "hang", "exit", "nonsense", "error without ERROR text"):
        print(f"  {k}: {counts.get(k, 0)}")
    assert not bad, "\n".join(bad)


SUBPROCESS_SAMPLE = [
    "mdsteps='1e-300'",
    "dl='-0.001'",
    "threads='-1'",
    "init file h_big_id.txt",
    "init file h_duplicate.txt",
    "model=huge/leap",
    "model=int64_out/leap",
    "dl='1e300'",
]


@pytest.mark.skipif(not MPIRUN.exists(), reason="mpirun of the mpich wheel not installed")
@pytest.mark.parametrize("nprocs", [1, 2])
def test_fuzz_sample_as_lmp(models, fuzz_dir, nprocs):
    """A sample of the fuzz decks as `lmp` / `mpirun -np 2 lmp`: an ERROR line and a non-zero exit."""
    decks = dict(fuzz_decks({k: str(v) for k, v in models.items()}, deck_header("net.data")))
    for name in SUBPROCESS_SAMPLE:
        wd = fuzz_dir / f"lmp_np{nprocs}_{re.sub(r'[^A-Za-z0-9]+', '_', name)}"
        wd.mkdir()
        for f in fuzz_dir.iterdir():
            if f.is_file():
                (wd / f.name).write_bytes(f.read_bytes())
        out = run_lmp(decks[name], wd, nprocs=nprocs, timeout=120)
        text = out.stdout + out.stderr
        assert out.returncode > 0, f"{name}: return code {out.returncode}\n{text[-2000:]}"
        assert re.search(r"^ERROR(?: on proc \d+)?: Fix gnn/rollout", text, re.M), f"{name}:\n{text[-2000:]}"
