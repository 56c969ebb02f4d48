"""The Python bridge: any Python callable as the model of `fix gnn/rollout` (docs/python_bridge.md).

A LAMMPS deck names a *model spec*, ``module:factory`` or ``path/to/file.py:factory``::

    fix g all gnn/rollout python model.py:make_model

and the fix's Python backend (libgnn_python.so, csrc/gnn_python_backend.cpp) calls
`load_model_spec` once, then the returned `BridgeModel` once per learned step. The backend runs
in the interpreter that drives LAMMPS (``import lammps``), or in an interpreter it embeds when
LAMMPS runs as ``lmp -in deck``.

The factory contract (the one thing a user writes):

    factory() -> (model, metadata)

- ``model(node_features, edge_index, edge_features) -> accelerations``: the signature of an
  exported model's forward (docs/formats.md): node_features [N, 2h], edge_index [2, E] int64
  (sender, receiver), edge_features [E, 4] = (dx, dy, |d|, 1/l_r); returns [N, 2] in distance
  per learned step². Inputs are torch tensors (``metadata["arrays"] = "torch"``, the default; the
  call runs under ``torch.no_grad()``) or read-only numpy arrays (``"numpy"``, e.g. for JAX or
  a hand-written rule), in the dtype ``metadata["dtype"]``. The output must be a torch tensor, a
  numpy array or anything with ``__array__`` (a JAX array), of exactly that shape and dtype.
- ``metadata``: a mapping with the keys of an exported model's metadata, checked by the one
  schema of lmp_gnn.step.metadata (``lmp_gnn.step.metadata.model_metadata(...)`` builds such a dict).
  Required: ``history`` (h), ``layers`` (message-passing layers k: the ghost-atom halo under
  MPI), ``delta_l`` (box-length change per learned step), ``md_steps_per_step`` (MD steps one
  learned step stands for). Optional: ``dtype`` ("float64" or "float32", default float64),
  ``arrays`` ("torch" or "numpy", default torch), ``hparams``, and the other keys of an exported
  model (``dimension``, ``feature_version``, ``lmp_gnn_format``, ``lmp_gnn_version``,
  ``strain_rate``, ``timestep``; defaults lmp_gnn.step.metadata.DEFAULTS; ``box_length``, default not
  recorded). Values may be numbers or
  numeric strings, so the metadata of an exported file serve as they are: a factory may simply
  ``return lmp_gnn.learning.export.load_exported("model.pt")``.

The model closes over whatever else it needs (its metadata included); per-call state of the
LAMMPS run is not passed.

Also here, for LAMMPS builds that have the PYTHON package: `PythonLeap`, one learned step of the
same model through the ``lammps`` Python API, and `make_move_class`, a class for
``fix python/move``. The PyPI wheel has no PYTHON package, so LAMMPS calling them is not tested in
this project; their steps are, driven from Python (tests/test_bridge.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import os
import sys
import traceback
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from lmp_gnn.step import metadata as schema
from lmp_gnn.step.metadata import DIMENSION, REQUIRED_KEYS

# the bridge's own keys next to the model metadata: how the model takes its arrays, and the
# hyper-parameters of an exported model (passed on unchecked)
DEFAULTS: dict[str, Any] = {**schema.DEFAULTS, "arrays": "torch"}
PASSED_KEYS = ("hparams",)
_ARRAYS = ("torch", "numpy")


class BridgeError(ValueError):
    """A model spec, factory or metadata that the bridge cannot use."""


class ModelOutputError(ValueError):
    """A model output of the wrong type, shape or dtype."""


class ProcessExitError(BridgeError):
    """A Python model that called os._exit() while the fix was calling it."""


# os._exit ends the process at once: no exception, no atexit handler, no flush, so LAMMPS would
# stop mid-deck with the status the model chose and no message. While the bridge calls a model's
# module, factory or forward, os._exit raises ProcessExitError instead, which the fix reports as
# an ERROR. (os.abort, os.kill and signals cannot be caught this way: docs/python_bridge.md.)
_real_exit = os._exit
_calling: list[str] = []          # what the bridge is calling now (innermost last)


def _exit_in_model(status: int = 0) -> NoReturn:
    if not _calling:              # a reference kept and called outside a model call: the real one
        _real_exit(status)
    raise ProcessExitError(f"{_calling[-1]} called os._exit({status}), which would end LAMMPS with the deck "
                           "unfinished; a Python model must return accelerations or raise an exception")


@contextlib.contextmanager
def _no_process_exit(where: str) -> Iterator[None]:
    """os._exit (and posix._exit, the same function) raise ProcessExitError naming `where` inside the block."""
    modules = [m for m in (os, sys.modules.get("posix")) if m is not None and getattr(m, "_exit", None) is _real_exit]
    _calling.append(where)
    for module in modules:
        module._exit = _exit_in_model  # type: ignore[assignment]
    try:
        yield
    finally:
        _calling.pop()
        if not _calling:
            for module in modules:
                module._exit = _real_exit


# ---------------------------------------------------------------------------- specs
def parse_spec(spec: str) -> tuple[str, str]:
    """``"module:factory"`` or ``"path/file.py:factory"`` -> (module or path, factory name)."""
    if not isinstance(spec, str):
        raise BridgeError(f"expected a model spec string 'module:factory' or 'file.py:factory', got {spec!r}")
    target, sep, attr = spec.rpartition(":")
    if not sep or not target or not attr or not attr.replace(".", "_").isidentifier():
        raise BridgeError(f"expected a model spec 'module:factory' or 'file.py:factory', got '{spec}'")
    return target, attr


def _is_path(target: str) -> bool:
    return target.endswith(".py") or os.sep in target or "/" in target


def import_factory(spec: str) -> Callable[[], Any]:
    """The factory named by `spec`. A file is imported as a module named after its path (its
    directory goes first on sys.path, so it can import its neighbours); a module by its name."""
    target, attr = parse_spec(spec)
    if _is_path(target):
        path = Path(target).expanduser().resolve()
        if not path.is_file():
            raise BridgeError(f"model spec '{spec}': no such file {path}")
        name = f"lmp_gnn_model_{path.stem}_{hashlib.sha1(str(path).encode()).hexdigest()[:10]}"
        module = sys.modules.get(name)
        if module is None:
            if str(path.parent) not in sys.path:
                sys.path.insert(0, str(path.parent))
            loader_spec = importlib.util.spec_from_file_location(name, path)
            if loader_spec is None or loader_spec.loader is None:
                raise BridgeError(f"model spec '{spec}': cannot import {path} as a Python module")
            module = importlib.util.module_from_spec(loader_spec)
            sys.modules[name] = module
            try:
                loader_spec.loader.exec_module(module)
            except BaseException:
                del sys.modules[name]
                raise
    else:
        module = importlib.import_module(target)
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise BridgeError(f"model spec '{spec}': {getattr(module, '__file__', target)} has no '{attr}'")
        obj = getattr(obj, part)
    if not callable(obj):
        raise BridgeError(f"model spec '{spec}': expected '{attr}' to be a callable factory, got {type(obj).__name__}")
    return obj


def check_metadata(metadata: Any, where: str = "Python model") -> dict[str, Any]:
    """Complete and check the factory's metadata; returns a new dict with typed values.

    The model metadata are checked by `lmp_gnn.step.metadata.parse` (the schema of exported models);
    raises `BridgeError` naming the key, what was expected and what was got.
    """
    if not isinstance(metadata, Mapping):
        raise BridgeError(f"{where} metadata: expected a mapping (dict), got {type(metadata).__name__}")
    known = set(schema.METADATA_KEYS) | set(DEFAULTS) | set(PASSED_KEYS)
    unknown = sorted(str(k) for k in metadata if k not in known)
    if unknown:
        raise BridgeError(f"{where} metadata: unknown key(s) {unknown}; expected a subset of {sorted(known)}")
    missing = [k for k in REQUIRED_KEYS if k not in metadata]
    if missing:
        raise BridgeError(f"{where} metadata: missing key(s) {missing}; required are {list(REQUIRED_KEYS)}")
    meta = {**DEFAULTS, **dict(metadata)}
    meta["dtype"] = str(meta["dtype"]).replace("torch.", "")      # torch.float32 as well as "float32"
    try:
        out = schema.parse(meta, where)
    except schema.MetadataError as exc:
        raise BridgeError(str(exc)) from None
    arrays = str(meta["arrays"])
    if arrays not in _ARRAYS:
        raise BridgeError(f"{where}: expected arrays {' or '.join(_ARRAYS)}, got '{arrays}'")
    out["arrays"] = arrays
    for key in PASSED_KEYS:
        if key in meta:
            out[key] = meta[key]
    return out


# ---------------------------------------------------------------------------- the model
def format_exception(exc: BaseException, tb: Any = None) -> str:
    """``Type: message`` of `exc`, then its traceback without the bridge's own frames.

    The text the fix puts in its LAMMPS ERROR when a model (or its factory) raises.
    """
    tb = exc.__traceback__ if tb is None else tb
    while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    head = "".join(traceback.format_exception_only(type(exc), exc)).rstrip("\n")
    if tb is None:
        return head
    return head + "\n" + "".join(traceback.format_exception(type(exc), exc, tb)).rstrip("\n")


def check_output(out: Any, n: int, dtype: str) -> np.ndarray:
    """The model output as a C-contiguous numpy array [n, 2] of `dtype`, or `ModelOutputError`."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(out, torch.Tensor):
        shape, got = tuple(out.shape), str(out.dtype).replace("torch.", "")
        if shape == (n, DIMENSION) and got == dtype:
            return np.ascontiguousarray(out.detach().cpu().numpy())
        kind = "torch tensor"
    elif isinstance(out, np.ndarray) or (hasattr(out, "__array__") and not isinstance(out, (str, bytes))):
        arr = np.asarray(out)
        shape, got = arr.shape, str(arr.dtype)
        if shape == (n, DIMENSION) and got == dtype:
            return np.ascontiguousarray(arr)
        kind = "array"
    else:
        raise ModelOutputError(f"expected the model to return a tensor or array of shape [{n}, {DIMENSION}] and "
                               f"dtype {dtype}, got a {type(out).__name__}")
    if shape != (n, DIMENSION):
        raise ModelOutputError(f"expected accelerations of shape [{n}, {DIMENSION}], got a {kind} of shape "
                               f"{list(shape)} (dtype {got})")
    raise ModelOutputError(f"expected accelerations of dtype {dtype} (metadata 'dtype'), got a {kind} of dtype {got}")


class BridgeModel:
    """A factory's callable with its checked metadata: numpy graph in, checked numpy accelerations out.

    Args:
        model: the callable (module docstring).
        metadata: the factory's metadata (checked by `check_metadata`).
        spec: where it came from, for messages.
        threads: torch intra-op threads to set when torch is loaded (0: leave torch's setting).
    """

    def __init__(self, model: Callable, metadata: Mapping[str, Any], spec: str = "", threads: int = 0):
        if not callable(model):
            raise BridgeError(f"model spec '{spec}': expected the factory to return (callable, metadata), "
                              f"got a {type(model).__name__} as the model")
        self.model = model
        self.metadata = check_metadata(metadata, f"model spec '{spec}'" if spec else "Python model")
        self.spec = spec
        self.dtype: str = self.metadata["dtype"]
        self.arrays: str = self.metadata["arrays"]
        self.history: int = self.metadata["history"]
        self._torch = None
        if self.arrays == "torch":
            import torch

            self._torch = torch
        torch = sys.modules.get("torch")
        if threads > 0 and torch is not None:
            torch.set_num_threads(int(threads))

    @property
    def description(self) -> str:
        name = getattr(self.model, "__name__", None) or type(self.model).__name__
        return f"Python model {self.spec} ({name}, {self.arrays} arrays, {self.dtype})"

    def info(self) -> dict[str, str]:
        """The model metadata as the strings of an exported file (lmp_gnn.step.metadata.to_strings),
        which the fix reads with the parser of exported files."""
        return schema.to_strings(self.metadata)

    def __call__(self, node_features: np.ndarray, edge_index: np.ndarray, edge_features: np.ndarray) -> np.ndarray:
        """node_features [N, 2h], edge_index [2, E] int64, edge_features [E, 4] (numpy, model dtype)
        -> accelerations [N, 2] as a numpy array of the model dtype."""
        n = node_features.shape[0]
        with _no_process_exit("the model"):
            if self._torch is None:
                out = self.model(node_features, edge_index, edge_features)
            else:
                torch = self._torch
                with warnings.catch_warnings():
                    # the fix hands read-only views of its own buffers; torch warns about any such array
                    warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
                    x, ei, e = (torch.from_numpy(node_features), torch.from_numpy(edge_index),
                                torch.from_numpy(edge_features))
                with torch.no_grad():
                    out = self.model(x, ei, e)
        return check_output(out, n, self.dtype)


def load_model_spec(spec: str, threads: int = 0) -> BridgeModel:
    """Import the factory of `spec`, call it, check what it returned; the fix's entry point.

    Args:
        spec: ``module:factory`` or ``path/to/file.py:factory`` (relative to the working directory).
        threads: torch intra-op threads (> 0 sets them once torch is loaded; the fix's *threads*).
    """
    with _no_process_exit(f"model spec '{spec}': the model's module or factory"):
        factory = import_factory(spec)
        made = factory()
    if isinstance(made, BridgeModel):
        return made
    if not (isinstance(made, tuple) and len(made) == 2):
        raise BridgeError(f"model spec '{spec}': expected the factory to return (model, metadata), "
                          f"got {type(made).__name__}")
    return BridgeModel(made[0], made[1], spec=spec, threads=threads)


# ---------------------------------------------------------------------------- LAMMPS's own PYTHON package
class PythonLeap:
    """Learned leap steps of a bridge model through the ``lammps`` Python API.

    For LAMMPS builds with the PYTHON package, where ``fix python/move`` or ``fix python/invoke``
    can call Python every step. Each `step` gathers the group's unwrapped positions on every rank
    (``gather_atoms``, ordered by atom ID), builds the graph with `lmp_gnn.step.features` (bonds of the
    group from ``gather_bonds``, rest lengths from the bond style's ``r0``), calls the model, and
    scatters r(t+1) = r(t) + v(t) + a(t) and v = v(t+1) / (mdsteps dt) back. The box is not
    changed (like ``fix gnn/rollout ... box no``), and the whole group is gathered on every rank:
    use ``fix gnn/rollout python`` for the box rule, MPI domain decomposition, shadow mode and
    restarts. Histories start from the atoms' velocities (``init velocity``). Atom IDs must be
    1..N (node i = atom ID i+1), as in the data files of lmp_gnn.physics.network.

    Tested here by calling `step` from Python between LAMMPS commands (tests/test_bridge.py); the
    call from ``fix python/move`` or ``fix python/invoke`` is not (no PYTHON package in the wheel).

    Args:
        lmp: a ``lammps.lammps`` instance (``lammps.lammps(ptr=ptr)`` inside a callback).
        spec: model spec, as for `load_model_spec`.
        mdsteps: MD steps per learned step (default: the metadata's md_steps_per_step).
    """

    def __init__(self, lmp, spec: str, mdsteps: float | None = None):
        import torch

        from lmp_gnn.step import features

        self.lmp = lmp
        self.model = load_model_spec(spec)
        self.mdsteps = float(mdsteps or self.model.metadata["md_steps_per_step"])
        self._features = features
        self._torch = torch
        self.hist: np.ndarray | None = None       # [h, N, 2] newest first, distance per learned step
        n = int(lmp.get_natoms())
        nbonds, data = lmp.gather_bonds()
        bonds = np.array(data[: 3 * nbonds], dtype=np.int64).reshape(nbonds, 3)   # type, id1, id2
        self.n = n
        self.bond_types = bonds[:, 0]
        self.bonds = bonds[:, 1:] - 1             # 0-based atom indices (atom IDs 1..N)
        self.edge_index = features.edge_index_from_bonds(torch.as_tensor(self.bonds))
        self.rest = None                         # set by set_rest_lengths

    def set_rest_lengths(self, r0_of_type: Mapping[int, float]) -> None:
        """Rest length l_r of every bond type (the bond style's r0; the caller knows its deck)."""
        rest = np.array([float(r0_of_type[int(t)]) for t in self.bond_types])
        self.rest = self._torch.as_tensor(np.concatenate([rest, rest]))

    def _gather(self, name: str, dtype: int, count: int) -> np.ndarray:
        return np.array(self.lmp.gather_atoms(name, dtype, count)[: count * self.n]).reshape(self.n, count)

    def step(self) -> None:
        """One learned step of every atom (positions and velocities scattered back)."""
        if self.rest is None:
            raise BridgeError("PythonLeap: call set_rest_lengths({bond type: r0}) before the first step")
        from lmp_gnn.step.rules import advance, unwrap

        torch, features = self._torch, self._features
        lmp = self.lmp
        boxlo, boxhi = lmp.extract_box()[:2]
        L = np.array(boxhi[:2]) - np.array(boxlo[:2])
        x = self._gather("x", 1, 3)
        img = self._gather("image", 0, 3)
        r = unwrap(x[:, :2], img[:, :2], L)
        dt = float(lmp.extract_global("dt"))
        h = self.model.history
        if self.hist is None:
            v = self._gather("v", 1, 3)[:, :2] * dt * self.mdsteps
            self.hist = np.repeat(v[None], h, axis=0)
        nf = features.node_features(torch.as_tensor(self.hist)).numpy()
        ef = features.edge_features(torch.as_tensor(r), torch.as_tensor(L), self.edge_index, self.rest).numpy()
        np_dtype = np.dtype(self.model.dtype)
        a = self.model(np.ascontiguousarray(nf, np_dtype), self.edge_index.numpy(),
                       np.ascontiguousarray(ef, np_dtype)).astype(np.float64)
        r_new, hist = advance(torch.as_tensor(r), torch.as_tensor(self.hist), torch.as_tensor(a))
        r_new, self.hist = r_new.numpy(), hist.numpy()
        v_new = self.hist[0]
        x[:, :2] = r_new - img[:, :2] * L
        v = np.zeros((self.n, 3))
        v[:, :2] = v_new / (self.mdsteps * dt)
        from ctypes import c_double

        lmp.scatter_atoms("x", 1, 3, (c_double * (3 * self.n))(*x.ravel()))
        lmp.scatter_atoms("v", 1, 3, (c_double * (3 * self.n))(*v.ravel()))


def make_move_class(spec: str, r0_of_type: Mapping[int, float], mdsteps: float | None = None) -> type:
    """A class for LAMMPS's ``fix python/move`` (PYTHON package builds only; the fix calling it is
    not tested here, its methods are).

    In a module on the PYTHONPATH of such a LAMMPS::

        from lmp_gnn.coupling.bridge import make_move_class
        GNNLeap = make_move_class("model.py:make_model", {1: 1.0})

    and in the deck ``fix leap all python/move mymodule.GNNLeap`` with ``timestep`` 1 learned step
    = mdsteps MD steps. Every ``initial_integrate`` takes one `PythonLeap.step`.
    """

    class GNNLeapMove:
        def __init__(self, ptr, group_name: str = "all"):
            import lammps

            self.leap = PythonLeap(lammps.lammps(ptr=ptr), spec, mdsteps)
            self.leap.set_rest_lengths(r0_of_type)

        def init(self):
            pass

        def initial_integrate(self, vflag):
            self.leap.step()

        def final_integrate(self):
            pass

        def initial_integrate_respa(self, vflag, ilevel, iloop):
            self.leap.step()

        def final_integrate_respa(self, ilevel, iloop):
            pass

        def reset_dt(self):
            pass

    return GNNLeapMove
