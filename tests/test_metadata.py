"""One metadata schema: lmp_gnn.step.metadata (Python) and csrc/gnn_metadata.cpp (both backends of the fix).

- The C++ parser (through lmp_gnn._core.parse_metadata) and lmp_gnn.step.metadata.parse accept the same
  values with the same typed result and refuse the others with the same message, over every key
  and a pool of values at and beyond each key's bounds.
- A model whose metadata break the schema is refused with that message, naming the key, by
  lmp_gnn.learning.export.load_exported, by the fix's TorchScript backend, and (the bridge's check) by its
  Python backend.
- The writers (model_metadata, to_strings) give what the readers read back.
- An optional key (box_length, weights_crc32) may be missing or empty (None), never invalid.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from fixtures.lammps_run import run_in_process
from fixtures.lattice import deck_header, triangular_network
from fixtures.make_models import BASE_METADATA, DEFAULT_METADATA, SPRING_K, Spring, write_model
from lmp_gnn.learning.export import ExportedModelError, load_exported
from lmp_gnn.step import metadata
from lmp_gnn.step.features import FEATURE_VERSION

core = pytest.importorskip("lmp_gnn._core", reason="lmp_gnn._core is built by `pip install .`")

pytestmark = pytest.mark.filterwarnings(r"ignore:.*torch\.jit.*:DeprecationWarning")

SOURCE = "model file m.pt"
INTEGERS = ["0", "1", "2", "3", "4", "-1", "+2", " 2\t", "007", "63", "64", "65", "2.0", "1e1", "two", "0x2",
            "1_0", "9223372036854775807", "-9223372036854775808", "9223372036854775808", "99999999999999999999"]
NUMBERS = ["0", "-0", "+0.0", "1", "-1", "0.002", "2.5e-06", "937.6", ".5", "5.", "+.5E+3", "-1e-3", "1e-400",
           "1e308", "1e999", "-1e999", "1e", "e5", ".", "1.5.2", "inf", "-inf", "nan", "NaN", "infinity",
           "0x1p3", "1_000.5", "abc", " 3 "]
STRINGS = ["float32", "float64", "float16", "Float32", " float64 ", "torch.float32", "0.1.0", "x"]
POOL = {int: INTEGERS, float: NUMBERS, str: STRINGS}


def both(raw: dict[str, str]):
    """(C++ result, Python result): the typed dict, or the message of the refusal."""
    out = []
    for parse in (lambda: core.parse_metadata(SOURCE, raw), lambda: metadata.parse(raw, SOURCE)):
        try:
            out.append(parse())
        except ValueError as exc:
            out.append(str(exc))
    return out


def test_constants_agree():
    assert core.METADATA_KEYS == metadata.METADATA_KEYS
    assert core.MODEL_FORMAT == metadata.MODEL_FORMAT and core.FEATURE_VERSION == FEATURE_VERSION
    assert (core.MIN_HISTORY, core.MAX_HISTORY) == (metadata.MIN_HISTORY, metadata.MAX_HISTORY)
    assert (core.MIN_LAYERS, core.MAX_LAYERS) == (metadata.MIN_LAYERS, metadata.MAX_LAYERS)


def test_history_range_is_the_models():
    """The schema's history range is what the model and the datasets take (ModelConfig)."""
    from lmp_gnn.learning.model import ModelConfig

    for h in range(metadata.MIN_HISTORY, metadata.MAX_HISTORY + 1):
        ModelConfig(history=h)
    for h in (metadata.MIN_HISTORY - 1, metadata.MAX_HISTORY + 1):
        with pytest.raises(ValueError, match="history"):
            ModelConfig(history=h)


@pytest.mark.parametrize("key", metadata.METADATA_KEYS)
def test_cpp_and_python_agree_on_every_value(key):
    kind = metadata.KEY_TYPES[key]
    accepted = refused = 0
    for value in POOL[kind] + ["", "   "]:
        raw = dict(DEFAULT_METADATA, **{key: value})
        cpp, py = both(raw)
        assert cpp == py, (key, value)
        if isinstance(py, dict):
            accepted += 1
            assert py == dict(metadata.parse(DEFAULT_METADATA), **{key: py[key]})
            if key in metadata.OPTIONAL_KEYS and not value.strip():
                assert py[key] is None                                          # empty: not recorded
            else:
                assert type(py[key]) is kind
        else:
            refused += 1
            assert py.startswith(SOURCE) and (f" {key} " in py or f"'{key}'" in py), py     # names the key
    assert accepted and refused, key
    cpp, py = both({k: v for k, v in DEFAULT_METADATA.items() if k != key})
    assert cpp == py
    if key in metadata.OPTIONAL_KEYS:
        assert py == dict(metadata.parse(DEFAULT_METADATA), **{key: None})
    else:
        assert "lacks metadata" in py or "no 'lmp_gnn_format'" in py


def test_cpp_and_python_agree_on_bounds():
    H0, H1, L0, L1 = metadata.MIN_HISTORY, metadata.MAX_HISTORY, metadata.MIN_LAYERS, metadata.MAX_LAYERS
    cases = {   # key -> [(value, accepted)]
        "history": [(H0 - 1, False), (H0, True), (H1, True), (H1 + 1, False)],
        "layers": [(L0 - 1, False), (L0, True), (L1, True), (L1 + 1, False)],
        "lmp_gnn_format": [(metadata.MODEL_FORMAT - 1, False), (metadata.MODEL_FORMAT, True),
                           (metadata.MODEL_FORMAT + 1, False)],
        "feature_version": [(FEATURE_VERSION - 1, False), (FEATURE_VERSION, True), (FEATURE_VERSION + 1, False)],
        "dimension": [(metadata.DIMENSION - 1, False), (metadata.DIMENSION, True), (metadata.DIMENSION + 1, False)],
        "timestep": [(-5e-324, False), (0.0, True), (5e-324, True)],
        "md_steps_per_step": [(-5e-324, False), (0.0, False), (5e-324, True), (1e300, True)],
        "dtype": [(name, True) for name in metadata.DTYPES],
        "box_length": [(-1.0, False), (0.0, False), (5e-324, True), (1e300, True)],
        "weights_crc32": [("0123abcd", True), ("ffffffff", True), (" 0123abcd\n", True), ("0123ABCD", False),
                          ("0123abc", False), ("0123abcde", False), ("0x23abcd", False), ("0123abcg", False)],
    }
    for key, values in cases.items():
        for value, accepted in values:
            cpp, py = both(dict(DEFAULT_METADATA, **{key: metadata.text(value)}))
            assert cpp == py, (key, value)
            assert isinstance(py, dict) is accepted, (key, value, py)
    assert both(dict(DEFAULT_METADATA, history="4"))[1] == (
        f"{SOURCE}: expected history between {metadata.MIN_HISTORY} and {metadata.MAX_HISTORY}, got 4")


def test_writers_round_trip():
    rng = np.random.default_rng(0)
    for _ in range(50):
        meta = metadata.model_metadata(
            history=int(rng.integers(metadata.MIN_HISTORY, metadata.MAX_HISTORY + 1)),
            layers=int(rng.integers(metadata.MIN_LAYERS, metadata.MAX_LAYERS + 1)),
            delta_l=float(rng.normal() * 10.0 ** rng.integers(-8, 3)), md_steps_per_step=float(rng.uniform(1e-3, 1e4)),
            strain_rate=float(rng.normal() * 1e-6), timestep=float(rng.uniform(0, 1)),
            dtype=str(rng.choice(metadata.DTYPES)), box_length=[None, float(rng.uniform(1, 100))][_ % 2])
        strings = metadata.to_strings(meta)
        assert ("box_length" in strings) is (meta["box_length"] is not None)     # not recorded: no file
        assert metadata.parse(strings) == meta
        assert core.parse_metadata(SOURCE, strings) == meta          # C++ reads the floats back exactly
    # numbers, numpy scalars and numeric strings are one value each
    assert metadata.parse(dict(DEFAULT_METADATA, history=np.int64(3), delta_l=np.float64(0.5), timestep="0.05"))[
        "history"] == 3
    for bad in (True, 3.0, "3.5"):
        with pytest.raises(metadata.MetadataError, match="metadata 'history' must be an integer"):
            metadata.parse(dict(DEFAULT_METADATA, history=bad))
    with pytest.raises(metadata.MetadataError,
                       match=re.escape("model metadata: expected md_steps_per_step > 0, got 0")):
        metadata.model_metadata(history=1, layers=1, delta_l=0.002, md_steps_per_step=0)


# ------------------------------------------------------------------ refused by every reader, with one message
@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    return triangular_network(6, 6, seed=1).write_lammps_data(tmp_path_factory.mktemp("net") / "net.data")


def lammps_error(deck: str) -> str:
    """The message of the LAMMPS error a deck stops with (LAMMPS in this process), without the
    'ERROR: ' prefix and the ' (source:line)' suffix."""
    with pytest.raises(Exception) as info:
        run_in_process(deck)
    first = str(info.value).split("\n", 1)[0]         # then "Last input line: ..."
    m = re.fullmatch(r"ERROR(?: on proc \d+)?: (.*?)(?: \([^()]*:\d+\))?", first)
    assert m, str(info.value)
    return m.group(1)


OUT_OF_RANGE = [
    ("history", str(metadata.MAX_HISTORY + 1), f"expected history between {metadata.MIN_HISTORY} and "
                                               f"{metadata.MAX_HISTORY}, got {metadata.MAX_HISTORY + 1}"),
    ("history", str(metadata.MIN_HISTORY - 1), f"expected history between {metadata.MIN_HISTORY} and "
                                               f"{metadata.MAX_HISTORY}, got {metadata.MIN_HISTORY - 1}"),
    ("layers", str(metadata.MAX_LAYERS + 1), f"expected layers between {metadata.MIN_LAYERS} and "
                                             f"{metadata.MAX_LAYERS}, got {metadata.MAX_LAYERS + 1}"),
    ("md_steps_per_step", "0", "expected md_steps_per_step > 0, got 0"),
    ("timestep", "-0.05", "expected timestep >= 0, got -0.05"),
    ("delta_l", "nan", "metadata 'delta_l' must be a finite number, got 'nan'"),
    ("box_length", "0", "expected box_length > 0, got 0"),
    ("box_length", "inf", "metadata 'box_length' must be a finite number, got 'inf'"),
]


@pytest.mark.parametrize("key,value,message", OUT_OF_RANGE)
def test_exported_file_refused_by_loader_and_fix(data_file, tmp_path, key, value, message):
    path = write_model(Spring(SPRING_K), tmp_path / "bad.pt", dict(DEFAULT_METADATA, **{key: value}))
    expected = f"model file {path}: {message}"
    with pytest.raises(ExportedModelError) as info:
        load_exported(path)
    assert str(info.value) == expected
    assert lammps_error(deck_header(data_file) + f"fix g all gnn/rollout {path}\n") == f"Fix gnn/rollout: {expected}"


@pytest.mark.parametrize("key,value,message", OUT_OF_RANGE)
def test_python_model_refused_by_the_fix(data_file, tmp_path, key, value, message):
    meta = dict(metadata.model_metadata(**BASE_METADATA), **{key: value})
    factory = tmp_path / "factory.py"
    factory.write_text(f"import torch\n\ndef make():\n"
                       f"    return (lambda x, ei, e: torch.zeros(x.shape[0], 2, dtype=x.dtype)), {meta!r}\n")
    spec = f"{factory}:make"
    assert lammps_error(deck_header(data_file) + f"fix g all gnn/rollout python {spec}\n") == (
        f"Fix gnn/rollout: model spec '{spec}': {message}")


def test_python_model_metadata_reach_the_fix_unchanged(data_file, tmp_path):
    """A Python model's metadata go through the C++ parser of exported files: the fix reports them."""
    meta = metadata.model_metadata(**dict(BASE_METADATA, history=metadata.MAX_HISTORY, layers=0,
                                          md_steps_per_step=937.6))
    factory = tmp_path / "factory.py"
    factory.write_text(f"import torch\n\ndef make():\n"
                       f"    return (lambda x, ei, e: torch.zeros(x.shape[0], 2, dtype=x.dtype)), {meta!r}\n")
    log = tmp_path / "log.lammps"
    run_in_process(deck_header(data_file) + f"fix g all gnn/rollout python {factory}:make\n", log=log)
    text = log.read_text()
    assert f"history {metadata.MAX_HISTORY}, layers 0, delta_l 0.002," in text and " 937.6," in text, text
