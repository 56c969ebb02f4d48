"""fix gnn/rollout mode adaptive: mode interleave whose learned blocks follow the live error
signal f_ID[13]. A learned step whose state is further from force balance than `tol` is not
taken (MD takes over at once, the next block as long as the steps taken); a block that ends under
tol doubles the next, up to `learn`; an MD-only cycle is followed by a block of 1.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from fixtures.lammps_run import run_in_process, run_lmp, unwrapped_state
from fixtures.lattice import deck_header, triangular_network
from test_fix_interleave import EVERY, assert_ranks_agree, interleave_fix

MD, LEARN = 4 * EVERY, 8
# on the test network the spring model's learned states have signals of 0.4-3.5: TRIPPING stops
# some blocks and not others, ABOVE_ALL none; BELOW_MD is under the MD states' own signal
TRIPPING, ABOVE_ALL, BELOW_MD = 1.0, 1e3, 1e-9
BLOCK_END = re.compile(r"fix gnn/rollout ad: step (\d+): (.*)")


def adaptive_fix(model, tol: float, extra: str = "") -> str:
    return (
        f"fix ad all gnn/rollout {model} mode adaptive md {MD} learn {LEARN} every {EVERY} "
        f"mdsteps {EVERY} dl 2e-3 tol {tol} {extra}\n"
    )


def network_deck(tmp_path) -> str:
    data = triangular_network(8, 8, seed=7).write_lammps_data(tmp_path / "net.data")
    return deck_header(data) + "velocity all create 1e-4 11 loop geom\nfix visc all viscous 0.1\n"


def block_ends(log) -> list[tuple[int, str]]:
    return [(int(m[1]), m[2]) for m in BLOCK_END.finditer(log.read_text())]


def test_blocks_follow_the_signal(models, tmp_path):
    """The schedule of one run: a full block (signal under tol, next doubled up to learn), a block
    stopped after 5 of 8 steps (next 5, the steps that passed), one after 1 of 5 (next 1), a full
    block of 1 (next 2), one stopped at its first step (next 0), an MD-only cycle (next 1); every
    switch logged with the signal, and the outputs count the steps."""
    log = tmp_path / "log.lammps"
    lmp = run_in_process(network_deck(tmp_path) + adaptive_fix(models["spring"], TRIPPING) + "run 300\n", log=log)
    ends = block_ends(log)
    assert [step for step, _ in ends] == [48, 94, 135, 175, 216, 255, 296]
    texts = [text for _, text in ends]
    assert texts[0].startswith("8 learned steps with signal <= 1 (largest 0.42")
    assert texts[0].endswith("next learned block 8")
    assert texts[1].startswith("signal 1.067 > tol 1 after 5 of 8 learned steps; MD takes over, next learned block 5")
    assert texts[2].endswith("after 1 of 5 learned steps; MD takes over, next learned block 1")
    assert texts[3].startswith("1 learned steps with signal <= 1") and texts[3].endswith("next learned block 2")
    assert texts[4].endswith("after 0 of 2 learned steps; MD takes over, next learned block 0")
    assert texts[5] == "an MD-only cycle; next learned block 1"
    learned, md = lmp.extract_fix("ad", 0, 1, 0), lmp.extract_fix("ad", 0, 1, 11)
    assert (learned, md) == (15, 285)  # 8 + 5 + 1 + 1 learned steps, every other step MD
    assert lmp.extract_fix("ad", 0, 1, 13) == pytest.approx(md / (md + learned * EVERY), rel=1e-15)
    assert lmp.extract_fix("ad", 0, 1, 14) == 0  # the block stopped at step 296
    assert lmp.extract_fix("ad", 0, 1, 12) > TRIPPING  # the signal of the step that was refused
    lmp.close()


def test_signal_never_over_tol_equals_interleave(models, tmp_path):
    """With no block stopped, mode adaptive is mode interleave with learn = the longest block."""
    head = network_deck(tmp_path)
    ad = run_in_process(head + adaptive_fix(models["spring"], ABOVE_ALL) + "run 150\n")
    il = run_in_process(head + interleave_fix(models["spring"], MD, LEARN) + "run 150\n")
    for a, b in zip(unwrapped_state(ad), unwrapped_state(il), strict=True):
        np.testing.assert_array_equal(a, b)
    assert ad.extract_fix("ad", 0, 1, 0) == il.extract_fix("il", 0, 1, 0) == 24
    ad.close()
    il.close()


def test_tol_below_md_is_pure_md(models, tmp_path):
    """A tolerance below MD's own force balance refuses every learned step: the run is the
    protocol MD (mode interleave with learn 0), MD-only cycles and single refused steps logged."""
    log = tmp_path / "log.lammps"
    head = network_deck(tmp_path)
    ad = run_in_process(head + adaptive_fix(models["spring"], BELOW_MD) + "run 150\n", log=log)
    md = run_in_process(head + interleave_fix(models["spring"], MD, 0) + "run 150\n")
    for a, b in zip(unwrapped_state(ad), unwrapped_state(md), strict=True):
        np.testing.assert_array_equal(a, b)
    assert ad.extract_fix("ad", 0, 1, 0) == 0 and ad.extract_fix("ad", 0, 1, 13) == 1.0
    texts = [text for _, text in block_ends(log)]
    assert len(texts) == 3 and texts[1] == "an MD-only cycle; next learned block 1"
    assert "> tol 1e-09 after 0 of 8 learned steps; MD takes over, next learned block 0" in texts[0]
    assert "> tol 1e-09 after 0 of 1 learned steps; MD takes over, next learned block 0" in texts[2]
    ad.close()
    md.close()


def test_restart_equals_continuous_run(models, tmp_path):
    """run 90 (inside the block that the signal stops at step 94) + restart + run 60 == run 150:
    the block length, its largest signal and the cycle position restored; the same switches."""
    head = network_deck(tmp_path)
    fix = adaptive_fix(models["spring"], TRIPPING)
    full = run_in_process(head + fix + "run 150\n", log=tmp_path / "full.log")
    first = run_in_process(head + fix + f"run 90\nwrite_restart {tmp_path / 'half.restart'}\n")
    first.close()
    second = run_in_process(
        f"read_restart {tmp_path / 'half.restart'}\ncomm_modify cutoff 3.0\n"
        "fix visc all viscous 0.1\n" + fix + "run 60\n",
        log=tmp_path / "second.log",
    )
    for a, b in zip(unwrapped_state(full), unwrapped_state(second), strict=True):
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-14)
    assert block_ends(tmp_path / "second.log") == block_ends(tmp_path / "full.log")[1:]
    assert second.extract_fix("ad", 0, 1, 0) == 14 and second.extract_fix("ad", 0, 1, 11) == 136
    full.close()
    second.close()


@pytest.mark.slow
def test_ranks_agree(models, tmp_path):
    """mode adaptive under `mpirun -np 2 lmp` gives the np = 1 positions, blocks stopped alike
    (the signal is reduced over the ranks)."""
    triangular_network(10, 10, seed=7).write_lammps_data(tmp_path / "net.data")
    deck = (
        deck_header("net.data")
        + "velocity all create 1e-4 11 loop geom\nfix visc all viscous 0.1\n"
        + adaptive_fix(models["spring"], TRIPPING)
        + "run 150\n"
        "write_dump all custom final.dump id xu yu vx vy modify format float %.17g sort id\n"
    )
    screens = assert_ranks_agree(deck, tmp_path)
    stops = [re.findall(r"step (\d+): signal .* MD takes over", text) for text in screens]
    assert stops[0] and stops[0] == stops[1]


@pytest.mark.parametrize(
    "fix, message",
    [
        ("mode adaptive md 40 learn 8 every 10", "Fix gnn/rollout mode adaptive needs the keyword tol"),
        (
            "mode adaptive md 40 every 10 tol 1",
            "Fix gnn/rollout mode adaptive needs learn M with M > 0, the longest learned block",
        ),
        (
            "mode adaptive md 35 learn 8 every 10 tol 1",
            "Fix gnn/rollout mode adaptive needs md N with N > 0 a multiple of every (10), got md 35",
        ),
        (
            "mode adaptive md 40 learn 8 every 10 tol 0",
            "Fix gnn/rollout tol: expected the largest RMS net bond "
            "force a learned step may start from, a finite number > 0, "
            "got 0",
        ),
        (
            "mode interleave md 40 learn 8 every 10 tol 1",
            "Fix gnn/rollout tol is a keyword of mode adaptive, not of mode interleave",
        ),
    ],
)
def test_adaptive_bad_keywords(models, tmp_path, fix, message):
    data = triangular_network(6, 6, seed=1).write_lammps_data(tmp_path / "net.data")
    out = run_lmp(deck_header(data) + f"fix ad all gnn/rollout {models['spring']} {fix}\nrun 1\n", tmp_path)
    text = out.stdout + out.stderr
    assert out.returncode != 0 and "ERROR: " + message in text, text[-2000:]
