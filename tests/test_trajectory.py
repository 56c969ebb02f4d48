"""trajectory.py: npz round trip, and malformed files refused with a message naming the problem."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lmp_gnn.physics.trajectory import (
    FORMAT_VERSION,
    Trajectory,
    TrajectoryFormatError,
    load_trajectory,
    save_trajectory,
)


def small(t=4, n=5, m=6, seed=0) -> Trajectory:
    rng = np.random.default_rng(seed)
    bonds = np.stack([np.arange(m) % n, (np.arange(m) + 1) % n], axis=1)
    return Trajectory(rng.random((t, n, 2)), 5 + rng.random((t, 2)), bonds, 1 + rng.random(m),
                      {"delta_l": 2e-3, "md_steps_per_snapshot": 1280, "nu_linear": None, "axis": "x"})


def test_round_trip(tmp_path):
    traj = small()
    path = save_trajectory(tmp_path / "sub" / "a.npz", traj)
    assert path.exists() and not list(path.parent.glob(".*"))  # no temporary left behind
    back = load_trajectory(path)
    for name in ("positions", "box", "bonds", "rest_length"):
        np.testing.assert_array_equal(getattr(back, name), getattr(traj, name))
    assert back.bonds.dtype == np.int64 and back.positions.dtype == np.float64
    assert back.metadata == {"format_version": FORMAT_VERSION, **traj.metadata}
    assert back.n_snapshots == 4 and back.n_nodes == 5
    save_trajectory(path, back)  # re-saving a loaded trajectory keeps it valid
    assert load_trajectory(path).metadata == back.metadata


@pytest.mark.parametrize("change, message", [
    (dict(positions=np.zeros((4, 5, 3))), r"expected positions of shape \[T, N, 2\], got \(4, 5, 3\)"),
    (dict(positions=np.zeros((4, 10))), r"expected positions of shape \[T, N, 2\], got \(4, 10\)"),
    (dict(box=np.ones((3, 2))), r"expected box of shape \[4, 2\], got \(3, 2\)"),
    (dict(bonds=np.zeros((0, 2), dtype=np.int64)), r"expected bonds of shape \[M, 2\] with M > 0, got \(0, 2\)"),
    (dict(rest_length=np.ones(5)), r"expected rest_length of shape \[6\], got \(5,\)"),
    (dict(bonds=np.array([[0, 5]] * 6)), r"bond indices outside \[0, 5\)"),
])
def test_mismatched_shapes_rejected(change, message):
    t = small()
    fields = dict(positions=t.positions, box=t.box, bonds=t.bonds, rest_length=t.rest_length)
    fields.update(change)
    with pytest.raises(TrajectoryFormatError, match=message):
        Trajectory(**fields)


def test_nan_rejected_in_memory_and_on_disk(tmp_path):
    t = small()
    bad = t.positions.copy()
    bad[2, 1, 0] = np.nan
    with pytest.raises(TrajectoryFormatError, match=r"must be finite \(found NaN/inf\)"):
        Trajectory(bad, t.box, t.bonds, t.rest_length)
    path = tmp_path / "nan.npz"
    np.savez(path, positions=bad, box=t.box, bonds=t.bonds, rest_length=t.rest_length,
             metadata=np.array(json.dumps({"format_version": FORMAT_VERSION})))
    with pytest.raises(TrajectoryFormatError, match=r"nan.npz: positions, box and rest lengths must be finite"):
        load_trajectory(path)


def test_wrong_version_rejected(tmp_path):
    t = small()
    t.metadata["format_version"] = 99
    path = save_trajectory(tmp_path / "v.npz", t)
    with pytest.raises(TrajectoryFormatError, match=r"expected trajectory format_version 1, got 99"):
        load_trajectory(path)


def test_missing_arrays_and_non_npz_rejected(tmp_path):
    t = small()
    path = tmp_path / "partial.npz"
    np.savez(path, positions=t.positions, box=t.box)
    with pytest.raises(TrajectoryFormatError, match=r"missing arrays \['bonds', 'metadata', 'rest_length'\]"):
        load_trajectory(path)
    junk = tmp_path / "junk.npz"
    junk.write_text("not a zip file")
    with pytest.raises(TrajectoryFormatError, match=r"junk.npz: not a readable trajectory file"):
        load_trajectory(junk)
    with pytest.raises(TrajectoryFormatError, match=r"not a readable trajectory file"):
        load_trajectory(tmp_path / "absent.npz")


def test_metadata_must_be_a_json_object(tmp_path):
    t = small()
    for text, message in (("[1]", r"expected metadata to be a JSON object, got list"),
                          ("{not json", r"not a readable trajectory file")):
        path = tmp_path / "meta.npz"
        np.savez(path, positions=t.positions, box=t.box, bonds=t.bonds, rest_length=t.rest_length,
                 metadata=np.array(text))
        with pytest.raises(TrajectoryFormatError, match=message):
            load_trajectory(path)


def test_saved_file_has_umask_permissions(tmp_path):
    import os

    path = save_trajectory(tmp_path / "p.npz", small())
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
