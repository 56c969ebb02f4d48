"""The Python backend of fix gnn/rollout (`fix ... gnn/rollout python FILE:FACTORY`, lmp_gnn.coupling.bridge).

- The same model through the TorchScript backend and the Python backend gives the same trajectory
  in mode leap and mode shadow (LAMMPS driven from this Python process: the running interpreter).
- An un-exported PyG model (GNNSimulator, eager) runs in a deck under plain `lmp -in` (the embedded
  interpreter) and equals the Python reference rollout; also under `mpirun -np 2`.
- A Python exception becomes a LAMMPS ERROR with the message and traceback text; a wrong output
  shape or dtype and a bad factory or metadata are named.

Factories: tests/fixtures/bridge_models.py; TorchScript models: tests/fixtures/make_models.py.
"""

from __future__ import annotations

import ctypes
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from fixtures.lammps_run import peratom_fix_array, run_in_process, run_lmp, unwrapped_state, write_history
from fixtures.lattice import deck_header, triangular_network
from fixtures.make_models import DEFAULT_METADATA
from lmp_gnn.coupling import bridge
from lmp_gnn.step.rollout import rollout

pytestmark = pytest.mark.filterwarnings(r"ignore:.*torch\.jit.*:DeprecationWarning")

FACTORIES = Path(__file__).resolve().parent / "fixtures" / "bridge_models.py"
DELTA_L = float(DEFAULT_METADATA["delta_l"])
PARITY_TOL = 1e-6     # the acceptance bound between the two backends


@pytest.fixture(scope="module")
def network():
    return triangular_network(10, 10, seed=3)


@pytest.fixture(scope="module")
def data_file(network, tmp_path_factory):
    return network.write_lammps_data(tmp_path_factory.mktemp("net") / "net.data")


@pytest.fixture(scope="module")
def lattice_data(tmp_path_factory):
    """An 8 x 8 triangular lattice for the MD-driven modes (shadow, interleave)."""
    return triangular_network(8, 8, seed=5).write_lammps_data(tmp_path_factory.mktemp("lattice") / "net.data")


def history(network, h, seed=2, scale=2e-3):
    """[h, N, 2] velocity history, newest first (drift across the boundary + affine part + noise)."""
    rng = np.random.default_rng(seed)
    affine = np.stack([5e-3 - 1e-3 * network.positions[:, 0], 4e-3 + 4e-4 * network.positions[:, 1]], axis=1)
    return np.stack([affine * (1 - 0.1 * k) + rng.normal(scale=scale, size=affine.shape) for k in range(h)])


def python_spec(factory: str) -> str:
    return f"python {FACTORIES}:{factory}"


# ------------------------------------------------------------------ TorchScript == Python backend
@pytest.mark.parametrize("torchscript,factory,h", [
    ("spring", "spring", 2),
    ("spring_h3", "spring_h3", 3),
    ("spring2", "spring2", 2),
    ("spring_f32", "spring_f32", 2),
    ("spring", "spring_numpy", 2),
])
def test_leap_same_trajectory_as_torchscript(models, data_file, network, tmp_path, torchscript, factory, h):
    hist = history(network, h)
    write_history(tmp_path / "hist.txt", hist)
    states = []
    for model in (models[torchscript], python_spec(factory)):
        lmp = run_in_process(deck_header(data_file) + f"""
fix g all gnn/rollout {model} init file {tmp_path / 'hist.txt'}
run 100
""")
        states.append((*unwrapped_state(lmp), peratom_fix_array(lmp, "g", 2), lmp.extract_fix("g", 0, 1, 0)))
        lmp.close()
    (r_ts, v_ts, L_ts, a_ts, n_ts), (r_py, v_py, L_py, a_py, n_py) = states
    assert n_ts == n_py == 100
    # the run moved atoms and changed both box lengths, so the comparison is not trivial
    assert np.abs(r_ts - network.positions).max() > 0.1 and abs(L_ts[1] - network.box[1]) > 1e-4
    np.testing.assert_allclose(r_py, r_ts, rtol=0, atol=PARITY_TOL)
    np.testing.assert_allclose(L_py, L_ts, rtol=0, atol=PARITY_TOL)
    np.testing.assert_allclose(v_py, v_ts, rtol=0, atol=PARITY_TOL)
    np.testing.assert_allclose(a_py, a_ts, rtol=0, atol=PARITY_TOL)


def test_shadow_same_scores_as_torchscript(models, lattice_data):
    results = []
    for model in (models["spring"], python_spec("spring")):
        lmp = run_in_process(deck_header(lattice_data) + f"""
velocity all create 1e-4 4 loop geom
fix md all nve
fix sh all gnn/rollout {model} mode shadow every 10
run 110
""")
        results.append((np.array([lmp.extract_fix("sh", 0, 1, k) for k in range(11)]),
                        peratom_fix_array(lmp, "sh", 2), unwrapped_state(lmp)[0]))
        lmp.close()
    (vec_ts, a_ts, r_ts), (vec_py, a_py, r_py) = results
    assert vec_ts[10] == vec_py[10] == 12          # snapshots recorded
    assert vec_ts[0] == vec_py[0] > 0              # learned steps of the copy
    assert vec_ts[6] > 0 and vec_ts[7] > 0         # one-step and rollout MSE
    np.testing.assert_array_equal(r_py, r_ts)      # true MD: the model does not act on it
    np.testing.assert_allclose(a_py, a_ts, rtol=0, atol=PARITY_TOL)
    np.testing.assert_allclose(vec_py[6:8], vec_ts[6:8], rtol=PARITY_TOL, atol=0)   # MSEs
    np.testing.assert_allclose(vec_py[8:10], vec_ts[8:10], rtol=0, atol=PARITY_TOL)  # nu_est
    np.testing.assert_allclose(vec_py[4:6], vec_ts[4:6], rtol=0, atol=PARITY_TOL)


def test_interleave_and_restart_same_as_torchscript(models, data_file, tmp_path):
    """MD with a shadow fix, a learned block taking its histories (init fix), write_restart and
    read_restart, a second learned block: the Python backend gives the TorchScript trajectory."""
    finals = []
    for k, model in enumerate((models["spring"], python_spec("spring"))):
        restart = tmp_path / f"half{k}.restart"
        first = run_in_process(deck_header(data_file) + f"""
velocity all create 1e-4 4 loop geom
fix sh all gnn/rollout {model} mode shadow every 10
fix md all nve
run 60
unfix md
fix leap all gnn/rollout {model} init fix sh
unfix sh
run 20
write_restart {restart}
""")
        first.close()
        second = run_in_process(f"""read_restart {restart}
comm_modify cutoff 3.0
fix leap all gnn/rollout {model}
run 20
""")
        assert second.extract_fix("leap", 0, 1, 0) == 40
        finals.append(unwrapped_state(second))
        second.close()
    (r_ts, v_ts, L_ts), (r_py, v_py, L_py) = finals
    np.testing.assert_allclose(r_py, r_ts, rtol=0, atol=PARITY_TOL)
    np.testing.assert_allclose(v_py, v_ts, rtol=0, atol=PARITY_TOL)
    np.testing.assert_allclose(L_py, L_ts, rtol=0, atol=PARITY_TOL)


def test_mode_interleave_same_as_torchscript(models, lattice_data):
    """One run of mode interleave (two cycles of 40 MD and 6 learned steps): the Python backend
    gives the TorchScript trajectory."""
    finals = []
    for model in (models["spring"], python_spec("spring")):
        lmp = run_in_process(deck_header(lattice_data) + f"""
velocity all create 1e-4 4 loop geom
fix visc all viscous 0.1
fix il all gnn/rollout {model} mode interleave md 40 learn 6 every 10 mdsteps 10
run 92
""")
        assert lmp.extract_fix("il", 0, 1, 0) == 12 and lmp.extract_fix("il", 0, 1, 11) == 80
        finals.append(unwrapped_state(lmp))
        lmp.close()
    for ts, py in zip(*finals, strict=True):
        np.testing.assert_allclose(py, ts, rtol=0, atol=PARITY_TOL)


def test_exported_file_through_python_backend(models, data_file, network, tmp_path, monkeypatch):
    """A factory may return lmp_gnn.learning.export.load_exported(path): the file's module and metadata."""
    monkeypatch.setenv("LMP_GNN_BRIDGE_MODEL", str(models["spring_f32"]))
    write_history(tmp_path / "hist.txt", history(network, 2))
    out = []
    for model in (models["spring_f32"], python_spec("exported")):
        lmp = run_in_process(deck_header(data_file) + f"""
fix g all gnn/rollout {model} init file {tmp_path / 'hist.txt'}
run 50
""")
        out.append(unwrapped_state(lmp))
        lmp.close()
    np.testing.assert_allclose(out[1][0], out[0][0], rtol=0, atol=PARITY_TOL)
    np.testing.assert_allclose(out[1][2], out[0][2], rtol=0, atol=PARITY_TOL)


# ------------------------------------------------------------------ plain lmp: embedded interpreter
def read_final_dump(path: Path, n: int) -> np.ndarray:
    """[N, 2] unwrapped positions of the last snapshot of a `dump custom id xu yu`, by atom ID."""
    lines = path.read_text().splitlines()
    rows = np.array([list(map(float, ln.split())) for ln in lines[-n:]])
    return rows[np.argsort(rows[:, 0])][:, 1:3]


def gnn_reference(network, hist, n_steps):
    from fixtures.bridge_models import gnn_model

    h = hist.shape[0]
    snaps = [network.positions]
    for k in range(h):
        snaps.insert(0, snaps[0] - hist[k])
    arrays = {"positions": np.stack(snaps), "box": np.tile(network.box, (h + 1, 1)),
              "bonds": network.bonds, "rest_length": network.rest_length}
    return rollout(gnn_model(), arrays, start=h, n_steps=n_steps, history=h, delta_l=DELTA_L, dtype=torch.float64)


@pytest.mark.slow
@pytest.mark.parametrize("nprocs", [1, 2])
def test_pyg_model_in_plain_lmp(data_file, network, tmp_path, nprocs):
    """An un-exported GNNSimulator (PyG eager) as the model of a deck run by `lmp -in`."""
    hist = history(network, 2)
    write_history(tmp_path / "hist.txt", hist)
    n_steps = 20
    out = run_lmp(deck_header(data_file) + f"""
fix g all gnn/rollout {python_spec('gnn')} init file {tmp_path / 'hist.txt'}
dump d all custom {n_steps} final.dump id xu yu
dump_modify d format float %.17g sort id
run {n_steps}
""", tmp_path, nprocs=nprocs, timeout=120)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-3000:]
    assert f"Python model {FACTORIES}:gnn (GNNSimulator, torch arrays, float64)" in text
    ref = gnn_reference(network, hist, n_steps)
    r = read_final_dump(tmp_path / "final.dump", network.n_nodes)
    assert np.abs(ref.positions[-1] - network.positions).max() > 1e-3     # the model moved the atoms
    np.testing.assert_allclose(r, ref.positions[-1], rtol=0, atol=1e-9)


@pytest.mark.slow
def test_python_model_example_runs(tmp_path):
    """examples/python_model/in.python_model runs as is (in a copy of the folder) under `lmp`."""
    import os
    import shutil
    import subprocess
    import sys

    example = Path(__file__).resolve().parents[1] / "examples" / "python_model"
    work = tmp_path / "python_model"
    shutil.copytree(example, work, ignore=shutil.ignore_patterns("*.data", "log.*", "*.dump", "__pycache__"))
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}", OMP_NUM_THREADS="1")
    out = subprocess.run([str(Path(sys.executable).parent / "lmp"), "-in", "in.python_model"], cwd=work, env=env,
                         capture_output=True, text=True, timeout=300)
    text = out.stdout + out.stderr
    assert out.returncode == 0, text[-3000:]
    assert "fix gnn/rollout: Python model model.py:damped_springs (rule, numpy arrays, float64)" in text
    m = re.search(r"after (\d+) learned steps of the Python model: strain ([0-9.]+), eps_yy ([0-9.e+-]+)", text)
    assert m, text[-3000:]
    assert m.group(1) == "200" and float(m.group(2)) == 0.025      # 200 x 0.002 on Lx = 16
    assert float(m.group(3)) != 0.0                                 # the free axis followed the model
    assert (work / "python_model.dump").stat().st_size > 0


def test_python_leap_entry_point_equals_fix(data_file, network):
    """lmp_gnn.coupling.bridge.PythonLeap (the entry point for fix python/move or python/invoke in LAMMPS
    builds with the PYTHON package) takes the same steps as fix gnn/rollout python ... box no.
    Driven here from Python through the class that fix python/move would construct, since the
    wheel has no fix python/move."""
    deck = deck_header(data_file) + "velocity all set 0.01 -0.02 0.0\n"
    ref = run_in_process(deck + f"fix g all gnn/rollout {python_spec('spring')} init velocity box no\nrun 20\n")
    r_ref, v_ref, _ = unwrapped_state(ref)
    ref.close()

    lmp = run_in_process(deck)
    move_class = bridge.make_move_class(f"{FACTORIES}:spring", dict(enumerate(network.rest_length, start=1)))
    # fix python/move hands the class a PyCapsule of its LAMMPS pointer: the same here
    capsule_new = ctypes.pythonapi.PyCapsule_New
    capsule_new.restype, capsule_new.argtypes = ctypes.py_object, [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p]
    move = move_class(capsule_new(lmp.lmp.value, None, None))
    move.init()
    for _ in range(20):
        move.initial_integrate(0)
        move.final_integrate()
    r, v, L = unwrapped_state(lmp)
    lmp.close()
    assert np.abs(r - network.positions).max() > 0.05
    np.testing.assert_allclose(L, network.box, rtol=0, atol=0)
    np.testing.assert_allclose(r, r_ref, rtol=0, atol=1e-12)
    np.testing.assert_allclose(v, v_ref, rtol=0, atol=1e-12)


# ------------------------------------------------------------------ errors
def lammps_errors(text: str) -> list[str]:
    return re.findall(r"^ERROR(?: on proc \d+)?: (.*)$", text, re.M)


@pytest.mark.slow
def test_exception_becomes_lammps_error_with_traceback(data_file, tmp_path):
    out = run_lmp(deck_header(data_file) + f"fix g all gnn/rollout {python_spec('raises')}\nrun 5\n",
                  tmp_path, timeout=120)
    text = out.stdout + out.stderr
    assert out.returncode > 0, f"return code {out.returncode} (negative: killed by a signal):\n{text[-3000:]}"
    assert lammps_errors(text)[0] == (f"Fix gnn/rollout at step 1: Python model {FACTORIES}:raises raised "
                                      "RuntimeError: learned rule diverged (scale 4.0)")
    tb = text[text.index("Traceback (most recent call last):"):]
    assert f'File "{FACTORIES}", line' in tb
    assert "in _raises" in tb and "in _inner_failure" in tb
    assert 'raise RuntimeError(f"learned rule diverged (scale {scale})")' in tb
    assert "RuntimeError: learned rule diverged (scale 4.0)" in tb
    assert "bridge.py" not in tb        # the bridge's own frames are left out


@pytest.mark.slow
def test_factory_exception_becomes_lammps_error(data_file, tmp_path):
    out = run_lmp(deck_header(data_file) + f"fix g all gnn/rollout {python_spec('factory_raises')}\n",
                  tmp_path, timeout=120)
    text = out.stdout + out.stderr
    assert out.returncode > 0, text[-3000:]
    assert lammps_errors(text)[0] == (f"Fix gnn/rollout: Python model {FACTORIES}:factory_raises could not be "
                                      "loaded: FileNotFoundError: weights.pt not found")
    assert "in factory_raises" in text[text.index("Traceback (most recent call last):"):]


EXIT_MESSAGE = ("which would end LAMMPS with the deck unfinished; a Python model must return accelerations or "
                "raise an exception")


@pytest.mark.slow
@pytest.mark.parametrize("factory,expected", [
    ("exits_in_factory", f"Fix gnn/rollout: model spec '{FACTORIES}:exits_in_factory': the model's module or factory "
                         f"called os._exit(0), {EXIT_MESSAGE}"),
    ("exits_in_forward", f"Fix gnn/rollout at step 1: Python model {FACTORIES}:exits_in_forward: the model called "
                         f"os._exit(3), {EXIT_MESSAGE}"),
])
def test_os_exit_in_a_python_model_is_a_lammps_error(data_file, tmp_path, factory, expected):
    """os._exit skips every handler: without the bridge's guard LAMMPS would end with the model's
    status (0) and the deck unfinished, and nothing said."""
    out = run_lmp(deck_header(data_file) + f"fix g all gnn/rollout {python_spec(factory)}\nrun 3\n", tmp_path,
                  timeout=120)
    text = out.stdout + out.stderr
    assert out.returncode > 0, text[-3000:]
    assert re.sub(r" \([^()]*:\d+\)$", "", lammps_errors(text)[0]) == expected


def test_os_exit_in_a_python_model_is_an_exception():
    """The bridge's guard in Python (in a child interpreter: were it missing, os._exit would end
    pytest itself with status 0)."""
    code = f"""
import os
from lmp_gnn.coupling import bridge
try:
    bridge.load_model_spec("{FACTORIES}:exits_in_factory")
except bridge.ProcessExitError as exc:
    print("factory:", exc)
model = bridge.load_model_spec("{FACTORIES}:exits_in_forward")
try:
    model(*[torch.zeros(s, dtype=torch.float64).numpy() for s in ((4, 4), (2, 0), (0, 4))])
except bridge.ProcessExitError as exc:
    print("forward:", exc)
assert os._exit is bridge._real_exit
"""
    out = subprocess.run([sys.executable, "-c", "import torch\n" + code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.splitlines() == [
        f"factory: model spec '{FACTORIES}:exits_in_factory': the model's module or factory called os._exit(0), "
        f"{EXIT_MESSAGE}",
        f"forward: the model called os._exit(3), {EXIT_MESSAGE}"]


def fails_in_process(deck: str) -> str:
    """The message of the LAMMPS error a deck stops with (LAMMPS inside this process), without
    the 'ERROR...: ' prefix and the ' (source:line)' suffix."""
    with pytest.raises(Exception) as info:
        run_in_process(deck)
    m = re.fullmatch(r"ERROR(?: on proc \d+)?: (.*?)(?: \([^()]*:\d+\))?", str(info.value), re.S)
    assert m, str(info.value)
    return m.group(1)


@pytest.mark.parametrize("factory,expected", [
    ("wrong_shape", "expected accelerations of shape [100, 2], got a torch tensor of shape [100, 3] "
                    "(dtype float64)"),
    ("wrong_dtype", "expected accelerations of dtype float64 (metadata 'dtype'), got a torch tensor of "
                    "dtype float32"),
    ("returns_list", "expected the model to return a tensor or array of shape [100, 2] and dtype float64, "
                     "got a list"),
])
def test_wrong_output_is_named(data_file, factory, expected):
    msg = fails_in_process(deck_header(data_file) + f"fix g all gnn/rollout {python_spec(factory)}\nrun 3\n")
    assert msg.startswith(f"Fix gnn/rollout at step 1: Python model {FACTORIES}:{factory}: {expected}"), msg


@pytest.mark.parametrize("spec,expected", [
    (f"{FACTORIES}:no_metadata", f"model spec '{FACTORIES}:no_metadata': expected the factory to return "
                                 "(model, metadata), got Spring"),
    (f"{FACTORIES}:bad_metadata", f"model spec '{FACTORIES}:bad_metadata': metadata 'history' must be "
                                  "an integer, got 'two'"),
    (f"{FACTORIES}:missing", f"model spec '{FACTORIES}:missing': {FACTORIES} has no 'missing'"),
    ("/nonexistent/model.py:make", "model spec '/nonexistent/model.py:make': no such file /nonexistent/model.py"),
    ("model.py", "expected a model spec 'module:factory' or 'file.py:factory', got 'model.py'"),
])
def test_bad_spec_or_factory_is_named(data_file, spec, expected):
    msg = fails_in_process(deck_header(data_file) + f"fix g all gnn/rollout python {spec}\n")
    assert msg.startswith(f"Fix gnn/rollout: {expected}"), msg


def test_device_keyword_refused(data_file):
    msg = fails_in_process(deck_header(data_file) + f"fix g all gnn/rollout {python_spec('spring')} device cuda\n")
    assert msg.startswith("Fix gnn/rollout: the python backend runs the model where its factory put it; "
                          "keyword device cuda applies to TorchScript models only"), msg


# ------------------------------------------------------------------ lmp_gnn.coupling.bridge alone
def test_check_metadata_defaults_and_strings():
    meta = bridge.check_metadata({"history": "3", "layers": 1, "delta_l": "0.002", "md_steps_per_step": 900})
    assert meta["history"] == 3 and meta["delta_l"] == 0.002 and meta["md_steps_per_step"] == 900.0
    assert meta["dtype"] == "float64" and meta["arrays"] == "torch" and meta["dimension"] == 2
    with pytest.raises(bridge.BridgeError, match=r"missing key\(s\) \['md_steps_per_step'\]"):
        bridge.check_metadata({"history": 1, "layers": 1, "delta_l": 0.002})
    with pytest.raises(bridge.BridgeError, match=r"unknown key\(s\) \['md_steps'\]"):
        bridge.check_metadata({"history": 1, "layers": 1, "delta_l": 0.002, "md_steps_per_step": 9, "md_steps": 9})
    with pytest.raises(bridge.BridgeError, match=r"expected dtype float32 or float64, got 'float16'"):
        bridge.check_metadata({"history": 1, "layers": 1, "delta_l": 0.002, "md_steps_per_step": 9,
                               "dtype": "float16"})


def test_check_output_accepts_tensor_array_and_array_like():
    a = np.arange(6.0).reshape(3, 2)
    np.testing.assert_array_equal(bridge.check_output(torch.as_tensor(a), 3, "float64"), a)
    np.testing.assert_array_equal(bridge.check_output(a.astype(np.float32), 3, "float32"), a)

    class ArrayLike:            # e.g. a JAX array
        def __array__(self, dtype=None, copy=None):
            return a

    np.testing.assert_array_equal(bridge.check_output(ArrayLike(), 3, "float64"), a)
    with pytest.raises(bridge.ModelOutputError, match=r"shape \[4, 2\], got an? array of shape \[3, 2\]"):
        bridge.check_output(a, 4, "float64")
