"""The metadata of an exported model: one schema for everyone who writes or reads it.

An exported model (docs/formats.md, "Exported models") carries its metadata as TorchScript extra
files, one plain string per key; a Python model of fix gnn/rollout (lmp_gnn.coupling.bridge) gives the same
keys as a mapping. This module owns the keys, their types and their valid values:

    key                type   valid values
    lmp_gnn_format     int    MODEL_FORMAT (1)
    feature_version    int    lmp_gnn.step.features.FEATURE_VERSION (1)
    history            int    MIN_HISTORY..MAX_HISTORY (1..3): velocities per node
    layers             int    MIN_LAYERS..MAX_LAYERS (0..64): message-passing layers
                              (0: a per-node rule that reads no edge)
    dimension          int    DIMENSION (2)
    delta_l            float  finite
    strain_rate        float  finite
    timestep           float  finite, >= 0 (0: not recorded, e.g. a hand-written Python model)
    md_steps_per_step  float  finite, > 0 (the mean of the training trajectories'
                              md_steps_per_snapshot, DATA_KEYS)
    dtype              str    float32 or float64
    lmp_gnn_version    str    not empty
    box_length         float  OPTIONAL: finite, > 0 (the mean initial box length along the driven
                              axis x of the training trajectories); absent (None) in older
                              exported models and where the writer does not give it (fix
                              gnn/rollout then does not check the box)
    weights_crc32      str    OPTIONAL: 8 lowercase hexadecimal digits, the CRC-32 of the model's
                              weights (lmp_gnn.learning.export.weights_checksum); absent in older
                              exported models and Python models (nothing is then checked)

Every key but the OPTIONAL_KEYS must be present; an optional key that is missing or empty is
None in the typed dict, and `to_strings` leaves it out.

A value is read from its text (numbers are first written as `to_strings` writes them): integers
are decimal digits with an optional sign, numbers are decimal floats (``1``, ``-2.5e-06``, ``.5``);
surrounding white space is ignored and an empty value counts as missing.

- `model_metadata(...)`: a complete, checked, typed metadata dict (for `lmp-gnn export`, test
  fixtures, model factories); `to_strings` turns it into the extra files of an exported model.
- `parse(raw, source)`: check a mapping of key -> text (or number) and return the typed dict, or
  raise `MetadataError` naming the key, what was expected and what was got.

csrc/gnn_metadata.cpp is the same schema in C++ (`LMPGNN::parse_metadata`, used by both backends
of fix gnn/rollout); tests/test_metadata.py checks that the two accept the same values and refuse
the others with the same message.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Mapping
from typing import Any

from lmp_gnn import __version__
from lmp_gnn.step.features import FEATURE_VERSION

MODEL_FORMAT = 1
DIMENSION = 2
MIN_HISTORY, MAX_HISTORY = 1, 3
MIN_LAYERS, MAX_LAYERS = 0, 64
DTYPES = ("float32", "float64")

# every key, in the order they are checked (and of docs/formats.md): name -> type
KEY_TYPES: dict[str, type] = {
    "lmp_gnn_format": int,
    "feature_version": int,
    "history": int,
    "layers": int,
    "dimension": int,
    "delta_l": float,
    "strain_rate": float,
    "timestep": float,
    "md_steps_per_step": float,
    "dtype": str,
    "lmp_gnn_version": str,
    "box_length": float,
    "weights_crc32": str,
}
METADATA_KEYS = tuple(KEY_TYPES)

# what a writer must give (`model_metadata`, a Python model's factory); the rest have DEFAULTS
REQUIRED_KEYS = ("history", "layers", "delta_l", "md_steps_per_step")
# keys a model may lack (None when missing or empty)
OPTIONAL_KEYS = ("box_length", "weights_crc32")
DEFAULTS: dict[str, Any] = {
    "lmp_gnn_format": MODEL_FORMAT,
    "feature_version": FEATURE_VERSION,
    "dimension": DIMENSION,
    "strain_rate": 0.0,
    "timestep": 0.0,
    "dtype": "float64",
    "lmp_gnn_version": __version__,
}

# keys that come from the training data: model key -> trajectory metadata key (docs/formats.md);
# a model's md_steps_per_step is the mean md_steps_per_snapshot of its training trajectories
DATA_KEYS = {"delta_l": "delta_l", "strain_rate": "strain_rate", "timestep": "timestep",
             "md_steps_per_step": "md_steps_per_snapshot"}
# optional keys that come from the training data (lmp_gnn.learning.dataset.training_metadata): box_length is
# the mean initial box length Lx (the driven axis) of the training trajectories

REEXPORT_HINT = "; re-export it with `lmp-gnn export`"

_INT = re.compile(r"[+-]?[0-9]+")
_FLOAT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_CRC32 = re.compile(r"[0-9a-f]{8}")
_INT64 = 2 ** 63
_SPACE = " \t\r\n\f\v"     # what surrounds a value and is ignored (C's isspace)


class MetadataError(ValueError):
    """Model metadata that this version of lmp-gnn cannot use (message names key, expected, got)."""


def text(value: Any) -> str:
    """The text of one metadata value, as an extra file holds it: strings stripped, integers in
    decimal, other numbers as Python's shortest round-trip repr, None as "" (missing)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value.strip(_SPACE)
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        return repr(float(value))
    return str(value).strip(_SPACE)


def parse(raw: Mapping[str, Any], source: str = "model metadata") -> dict[str, Any]:
    """Check the metadata `raw` (key -> text or number) and return the typed values of every key
    of METADATA_KEYS (other keys of `raw` are ignored).

    Raises `MetadataError` with a message ``"<source>: expected history between 1 and 3, got 4"``
    (``"<source> lacks metadata 'delta_l'..."`` for a missing key), the same as the fix's.
    """
    got = {key: text(raw.get(key)) for key in METADATA_KEYS}
    if not got["lmp_gnn_format"]:
        raise MetadataError(f"{source} is a TorchScript file without lmp-gnn metadata (no 'lmp_gnn_format'); "
                            f"make one with `lmp-gnn export`")
    for key in METADATA_KEYS:
        if not got[key] and key not in OPTIONAL_KEYS:
            raise MetadataError(f"{source} lacks metadata '{key}'{REEXPORT_HINT}")
    out: dict[str, Any] = {}

    def fail(expected: str, key: str, hint: str = "") -> MetadataError:
        return MetadataError(f"{source}: expected {key} {expected}, got {got[key]}{hint}")

    for key, kind in KEY_TYPES.items():
        value = got[key]
        if not value:           # an optional key that is missing
            out[key] = None
            continue
        if kind is int:
            if not _INT.fullmatch(value) or not -_INT64 <= int(value) < _INT64:
                raise MetadataError(f"{source}: metadata '{key}' must be an integer, got '{value}'")
            out[key] = int(value)
        elif kind is float:
            number = float(value) if _FLOAT.fullmatch(value) else math.nan
            if not math.isfinite(number):
                raise MetadataError(f"{source}: metadata '{key}' must be a finite number, got '{value}'")
            out[key] = number
        else:
            out[key] = value
        # the valid values of each key (csrc/gnn_metadata.cpp checks the same, in the same order)
        if key == "lmp_gnn_format" and out[key] != MODEL_FORMAT:
            raise fail(str(MODEL_FORMAT), key, REEXPORT_HINT)
        if key == "feature_version" and out[key] != FEATURE_VERSION:
            raise fail(str(FEATURE_VERSION), key)
        if key == "history" and not MIN_HISTORY <= out[key] <= MAX_HISTORY:
            raise fail(f"between {MIN_HISTORY} and {MAX_HISTORY}", key)
        if key == "layers" and not MIN_LAYERS <= out[key] <= MAX_LAYERS:
            raise fail(f"between {MIN_LAYERS} and {MAX_LAYERS}", key)
        if key == "dimension" and out[key] != DIMENSION:
            raise fail(str(DIMENSION), key)
        if key == "timestep" and not out[key] >= 0.0:
            raise fail(">= 0", key)
        if key == "md_steps_per_step" and not out[key] > 0.0:
            raise fail("> 0", key)
        if key == "dtype" and out[key] not in DTYPES:
            raise MetadataError(f"{source}: expected dtype {' or '.join(DTYPES)}, got '{value}'")
        if key == "box_length" and not out[key] > 0.0:
            raise fail("> 0", key)
        if key == "weights_crc32" and not _CRC32.fullmatch(value):
            raise fail("8 lowercase hexadecimal digits", key)
    return out


def model_metadata(*, history: int, layers: int, delta_l: float, md_steps_per_step: float,
                   strain_rate: float = 0.0, timestep: float = 0.0, dtype: str = "float64",
                   box_length: float | None = None, weights_crc32: str | None = None) -> dict[str, Any]:
    """The complete metadata of a model, checked and typed (`parse`); lmp_gnn_format,
    feature_version, dimension and lmp_gnn_version are this version's; box_length and
    weights_crc32 None: not recorded. Raises `MetadataError`."""
    given = {"history": history, "layers": layers, "delta_l": delta_l, "md_steps_per_step": md_steps_per_step,
             "strain_rate": strain_rate, "timestep": timestep, "dtype": dtype, "box_length": box_length,
             "weights_crc32": weights_crc32}
    return parse({**DEFAULTS, **given}, "model metadata")


def to_strings(meta: Mapping[str, Any]) -> dict[str, str]:
    """The extra files of an exported model: every key of METADATA_KEYS as its `text`, except
    the OPTIONAL_KEYS that are None (or missing)."""
    return {key: text(meta.get(key)) for key in METADATA_KEYS
            if key not in OPTIONAL_KEYS or meta.get(key) is not None}


__all__ = ["DATA_KEYS", "DEFAULTS", "DIMENSION", "DTYPES", "KEY_TYPES", "MAX_HISTORY", "MAX_LAYERS", "METADATA_KEYS",
           "MIN_HISTORY", "MIN_LAYERS", "MODEL_FORMAT", "MetadataError", "OPTIONAL_KEYS", "REQUIRED_KEYS",
           "model_metadata", "parse", "text", "to_strings"]
