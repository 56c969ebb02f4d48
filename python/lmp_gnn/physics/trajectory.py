"""Compression trajectories on disk (npz) and in memory; the format is docs/formats.md."""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lmp_gnn.files import atomic_write

FORMAT_VERSION = 1



class TrajectoryFormatError(ValueError):
    """A trajectory file or array set that does not follow docs/formats.md."""


@dataclass
class Trajectory:
    """One compression run of one network.

    Attributes:
        positions: [T, N, 2] unwrapped node positions, box centred at the origin.
        box: [T, 2] box lengths.
        bonds: [M, 2] int64, 0-based.
        rest_length: [M] bond rest lengths.
        metadata: dict, keys in docs/formats.md.
    """

    positions: np.ndarray
    box: np.ndarray
    bonds: np.ndarray
    rest_length: np.ndarray
    metadata: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.positions = np.asarray(self.positions, dtype=np.float64)
        self.box = np.asarray(self.box, dtype=np.float64)
        self.bonds = np.asarray(self.bonds, dtype=np.int64)
        self.rest_length = np.asarray(self.rest_length, dtype=np.float64)
        self.validate()

    @property
    def n_snapshots(self) -> int:
        return self.positions.shape[0]

    @property
    def n_nodes(self) -> int:
        return self.positions.shape[1]

    def validate(self, name: str = "trajectory") -> None:
        p, b = self.positions, self.box
        if p.ndim != 3 or p.shape[2] != 2:
            raise TrajectoryFormatError(f"{name}: expected positions of shape [T, N, 2], got {p.shape}")
        if b.shape != (p.shape[0], 2):
            raise TrajectoryFormatError(f"{name}: expected box of shape [{p.shape[0]}, 2], got {b.shape}")
        if self.bonds.ndim != 2 or self.bonds.shape[1] != 2 or len(self.bonds) == 0:
            raise TrajectoryFormatError(f"{name}: expected bonds of shape [M, 2] with M > 0, got {self.bonds.shape}")
        if self.rest_length.shape != (len(self.bonds),):
            raise TrajectoryFormatError(
                f"{name}: expected rest_length of shape [{len(self.bonds)}], got {self.rest_length.shape}")
        if self.bonds.min() < 0 or self.bonds.max() >= p.shape[1]:
            raise TrajectoryFormatError(f"{name}: bond indices outside [0, {p.shape[1]})")
        if not (np.isfinite(p).all() and np.isfinite(b).all() and np.isfinite(self.rest_length).all()):
            raise TrajectoryFormatError(f"{name}: positions, box and rest lengths must be finite (found NaN/inf)")


def save_trajectory(path: str | os.PathLike, traj: Trajectory) -> Path:
    """Write a trajectory atomically (temporary file + rename)."""
    meta = {"format_version": FORMAT_VERSION, **traj.metadata}
    return atomic_write(path, lambda tmp: np.savez_compressed(
        tmp, positions=traj.positions, box=traj.box, bonds=traj.bonds, rest_length=traj.rest_length,
        metadata=np.array(json.dumps(meta))), suffix=".npz")


def load_trajectory(path: str | os.PathLike) -> Trajectory:
    """Read and validate a trajectory file."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = {"positions", "box", "bonds", "rest_length", "metadata"} - set(z.files)
            if missing:
                raise TrajectoryFormatError(f"{path}: missing arrays {sorted(missing)}")
            meta = json.loads(str(z["metadata"]))
            if not isinstance(meta, dict):
                raise TrajectoryFormatError(
                    f"{path}: expected metadata to be a JSON object, got {type(meta).__name__}")
            version = meta.get("format_version")
            if version != FORMAT_VERSION:
                raise TrajectoryFormatError(
                    f"{path}: expected trajectory format_version {FORMAT_VERSION}, got {version}")
            traj = Trajectory.__new__(Trajectory)
            traj.positions = z["positions"].astype(np.float64)
            traj.box = z["box"].astype(np.float64)
            traj.bonds = z["bonds"].astype(np.int64)
            traj.rest_length = z["rest_length"].astype(np.float64)
            traj.metadata = meta
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as exc:   # truncated, corrupt
        if isinstance(exc, TrajectoryFormatError):
            raise
        raise TrajectoryFormatError(f"{path}: not a readable trajectory file: {exc}") from exc
    traj.validate(str(path))
    return traj
