"""Training samples: trajectories -> windows of h+1 snapshots -> graphs with target accelerations.

One sample ("window") of a trajectory at snapshot t (h <= t <= T-2) uses r(t-h), ..., r(t+1):

    node_features [N, 2h]   v(t), ..., v(t-h+1), v(t) = r(t) - r(t-1)     (features.node_features)
    edge_index    [2, 2M]   both directions of every bond (sender, receiver) (features.edge_index_from_bonds)
    edge_features [2M, 4]   minimum image of r_r(t) - r_s(t), its length, 1/l_r (features.edge_features)
    target        [N, 2]    a(t) = r(t+1) - 2 r(t) + r(t-1)                  (features.target_acceleration)

Everything is computed in float64 from the unwrapped float64 positions and only then cast to
the training dtype: accelerations (~1e-5) are differences of positions (~10), which float32
positions could not resolve.

Optional random-walk noise (GNS, Sanchez-Gonzalez et al. 2020), `noise_std` > 0: the h input
velocities (oldest first) get noise eta_k = cumsum of N(0, (noise_std / sqrt(h))^2) steps, so
the newest velocity's noise has std noise_std; positions get the matching cumulative noise
(zero on r(t-h)), so edge features come from the noisy r(t). `noise_target` says what the
model is taught to undo:

- "velocity" (GNS): target a(t) - eta_newest, the acceleration that brings the noisy state back
  to the true v(t+1); the position error is carried on, as in inertial dynamics.
- "position": target a(t) - eta_newest - Σ eta, the acceleration that lands on the true
  r(t+1). In quasi-static compression a displaced node relaxes back to the equilibrium path
  within about one snapshot interval (local relaxation ~2·damp = 20 time units, a snapshot ~47),
  so this is the physical answer, and it teaches a restoring response to rollout errors.

noise_std is in distance per step (velocities are ~1e-3 at Δl = 2e-3 per step, accelerations ~1e-5).

Unrolled windows (training with `train.unroll` = K > 1): `WindowDataset.unrolled_batch(indices, K)`
gives the true positions r(t-h), ..., r(t+K) and the true box at t, ..., t+K-1 of each window, for
a training loss over K learned steps (lmp_gnn.learning.train); `unroll_starts(K)` lists the windows whose
next K - 1 windows are all quiet too (no event inside the unroll). With `lead` = m the windows
begin m snapshots earlier (r(t-m-h), ..., boxes from t-m) for `train.unroll_lead`, whose first m
learned steps carry no loss; `lead_room(indices)` is the largest m they allow.

Batching: `WindowDataset.batch(indices)` concatenates graphs (node offsets added to
edge_index) without going through PyG's collate; `to_data` gives a PyG `Data` for one window.
"""

from __future__ import annotations

import glob
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from lmp_gnn.physics.trajectory import Trajectory, TrajectoryFormatError, load_trajectory
from lmp_gnn.step import features
from lmp_gnn.step.metadata import DATA_KEYS, MAX_HISTORY, MIN_HISTORY
from lmp_gnn.step.rules import advance

NOISE_TARGETS = ("velocity", "position")

# training-data metadata an exported model carries (docs/formats.md, "Exported models"): the
# trajectory keys of lmp_gnn.step.metadata.DATA_KEYS
REQUIRED_METADATA = tuple(DATA_KEYS.values())


class DatasetError(ValueError):
    """Trajectories that cannot be turned into training samples."""


@dataclass
class GraphBatch:
    """Several graphs as one disjoint graph.

    Attributes:
        node_features: [N, 2h] raw velocities (distance/step).
        edge_index: [2, E] int64 (sender, receiver), node indices into the whole batch.
        edge_features: [E, 4] raw (dx, dy, |d|, 1/l_r).
        target: [N, 2] acceleration (distance/step²).
        batch: [N] int64 graph id of each node.
        num_graphs: number of graphs.
    """

    node_features: Tensor
    edge_index: Tensor
    edge_features: Tensor
    target: Tensor
    batch: Tensor
    num_graphs: int

    @property
    def num_nodes(self) -> int:
        return self.node_features.shape[0]

    def to(self, device: torch.device | str) -> GraphBatch:
        return GraphBatch(self.node_features.to(device), self.edge_index.to(device),
                          self.edge_features.to(device), self.target.to(device), self.batch.to(device),
                          self.num_graphs)


@dataclass
class UnrollBatch:
    """K-step windows of several graphs as one disjoint graph (float64 throughout), begun m = lead
    snapshots early (m = 0 unless asked).

    Attributes:
        positions: [h + m + K + 1, N, 2] true unwrapped positions r(t-m-h), ..., r(t+K).
        edge_box: [m + K, E, 2] true box lengths at t-m, ..., t+K-1, repeated per edge (graphs differ).
        edge_index: [2, E] int64 (sender, receiver), node indices into the whole batch.
        rest_length: [E] rest length of the bond behind each edge.
        node_graph: [N] int64, which window (0, 1, ...) each node belongs to.
    """

    positions: Tensor
    edge_box: Tensor
    edge_index: Tensor
    rest_length: Tensor
    node_graph: Tensor

    def to(self, device: torch.device | str) -> UnrollBatch:
        return UnrollBatch(self.positions.to(device), self.edge_box.to(device), self.edge_index.to(device),
                           self.rest_length.to(device), self.node_graph.to(device))


class _Graph:
    """One trajectory as float64 tensors, plus its directed edges."""

    def __init__(self, traj: Trajectory, name: str):
        self.name = name
        self.positions = torch.from_numpy(np.ascontiguousarray(traj.positions, dtype=np.float64))   # [T, N, 2]
        self.box = torch.from_numpy(np.ascontiguousarray(traj.box, dtype=np.float64))               # [T, 2]
        self.edge_index = features.edge_index_from_bonds(torch.from_numpy(traj.bonds))               # [2, 2M]
        rest = torch.from_numpy(np.ascontiguousarray(traj.rest_length, dtype=np.float64))
        self.rest_length = torch.cat([rest, rest])                                                  # [2M]
        self.metadata = dict(traj.metadata)

    @property
    def n_snapshots(self) -> int:
        return self.positions.shape[0]

    @property
    def n_nodes(self) -> int:
        return self.positions.shape[1]


def event_snapshots(positions: Tensor, event_ratio: float) -> Tensor:
    """[T] bool: snapshot s is an event when the mean square of a(s) = r(s+1) - 2 r(s) + r(s-1)
    is above event_ratio × its median over the trajectory (False at s = 0 and T-1, which have no a).

    positions: [T, N, 2] unwrapped.
    """
    n = positions.shape[0]
    acc = positions[2:] - 2 * positions[1:-1] + positions[:-2]          # a(1..T-2)
    ms = (acc ** 2).mean(dim=(1, 2))
    bad = torch.zeros(n, dtype=torch.bool)
    bad[1:n - 1] = ms > event_ratio * ms.median()
    return bad


def quiet_snapshots(positions: Tensor, history: int, event_ratio: float) -> list[int]:
    """Snapshots t (h <= t <= T-2) usable as windows, leaving out events (see WindowDataset).

    positions: [T, N, 2] unwrapped. Window t uses the target a(t) and the velocities v(t-h+1..t),
    whose differences are a(t-h+1..t-1); v(t-h+1) itself needs r(t-h), so a(t-h) (which includes
    the start from rest for t = h) counts too.
    """
    candidates = range(history, positions.shape[0] - 1)
    if event_ratio == 0:
        return list(candidates)
    bad = event_snapshots(positions, event_ratio)
    return [t for t in candidates if not bad[max(t - history, 1): t + 1].any()]


def check_trajectory(traj: Trajectory, history: int, name: str = "trajectory") -> None:
    """Raise `DatasetError` (or TrajectoryFormatError) if `traj` cannot give windows for h = `history`."""
    if not isinstance(traj, Trajectory):
        raise DatasetError(f"{name}: expected a lmp_gnn.physics.trajectory.Trajectory, got {type(traj).__name__}")
    traj.validate(name)                           # shapes, bond indices, NaN/inf
    if not MIN_HISTORY <= history <= MAX_HISTORY:
        raise DatasetError(f"expected history h in {MIN_HISTORY}..{MAX_HISTORY}, got {history}")
    need = history + 2
    if traj.n_snapshots < need:
        raise DatasetError(f"{name}: expected at least h + 2 = {need} snapshots for history h = {history} "
                           f"(h velocities and one target), got {traj.n_snapshots}")
    if np.any(traj.rest_length <= 0):
        raise DatasetError(f"{name}: expected positive rest lengths, got min {traj.rest_length.min()}")
    if np.any(traj.box <= 0):
        raise DatasetError(f"{name}: expected positive box lengths, got min {traj.box.min()}")


class WindowDataset:
    """All windows (trajectory, t) of a set of trajectories, for one history length h.

    Args:
        trajectories: the trajectories (each validated).
        history: h (1..3), velocities per node.
        names: one name per trajectory (for messages and the train/val split); default "traj<i>".
        noise_std: random-walk noise on the newest input velocity (distance/step); 0 = off.
        noise_target: "velocity" or "position", what the target undoes (module docstring).
        dtype: dtype of the returned features and targets (computed in float64 first).
        event_ratio: leave out "events": windows whose target, or any acceleration inside their
            velocity history, has a mean square above event_ratio × the trajectory's median (the
            start of the compression, and snap-through instabilities of auxetic networks, where
            single snapshots carry accelerations 10^2-10^9 times the quasi-static ones and would
            otherwise dominate the MSE loss and the normalisers). 0 keeps every window.
    """

    def __init__(self, trajectories: Sequence[Trajectory], history: int, names: Sequence[str] | None = None,
                 noise_std: float = 0.0, dtype: torch.dtype = torch.float32, event_ratio: float = 0.0,
                 noise_target: str = "velocity"):
        if len(trajectories) == 0:
            raise DatasetError("expected at least one trajectory, got none")
        names = list(names) if names is not None else [f"traj{i}" for i in range(len(trajectories))]
        if len(names) != len(trajectories):
            raise DatasetError(f"expected {len(trajectories)} names, got {len(names)}")
        if not (noise_std >= 0 and math.isfinite(noise_std)):
            raise DatasetError(f"expected noise_std >= 0, got {noise_std}")
        if noise_target not in NOISE_TARGETS:
            raise DatasetError(f"expected noise_target in {NOISE_TARGETS}, got {noise_target!r}")
        self.noise_target = noise_target
        for traj, name in zip(trajectories, names, strict=True):
            check_trajectory(traj, history, name)
        self.history = history
        self.noise_std = float(noise_std)
        self.dtype = dtype
        self.graphs = [_Graph(traj, name) for traj, name in zip(trajectories, names, strict=True)]
        if not (event_ratio >= 0 and math.isfinite(event_ratio)):
            raise DatasetError(f"expected event_ratio >= 0, got {event_ratio}")
        windows = [(g, t) for g, graph in enumerate(self.graphs)
                   for t in quiet_snapshots(graph.positions, history, event_ratio)]
        if not windows:
            raise DatasetError(f"expected windows left after leaving out events (event_ratio {event_ratio}), got none")
        self.windows = torch.tensor(windows, dtype=torch.long)          # [W, 2] (trajectory, t)
        self._quiet = set(windows)

    def __len__(self) -> int:
        return self.windows.shape[0]

    @property
    def names(self) -> list[str]:
        return [g.name for g in self.graphs]

    def sample(self, traj: int, t: int, generator: torch.Generator | None = None,
               noise: bool = True, predict: Callable[[Tensor, Tensor, Tensor], Tensor] | None = None
               ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(node_features [N, 2h], edge_index [2, E], edge_features [E, 4], target [N, 2]) at snapshot t.

        Noise is added when `noise` and noise_std > 0 (needs `generator` for reproducibility).
        With `predict` (the model, raw features -> raw accelerations) and a quiet window at t-1, the
        window is "pushed forward" instead: r(t) is the model's own one-step prediction from the true
        state at t-1, and the target the acceleration that brings r(t+1) back to the truth, so that
        training sees the model's own errors (the push-forward trick; noise is then not added).
        """
        if predict is not None and (traj, t - 1) in self._quiet:
            return self._pushed_forward(traj, t, predict)
        g = self.graphs[traj]
        h = self.history
        if not h <= t <= g.n_snapshots - 2:
            raise IndexError(f"{g.name}: expected {h} <= t <= {g.n_snapshots - 2}, got t = {t}")
        r = g.positions
        vel = features.velocity_history(r, t, h)                        # [h, N, 2], newest first
        r_t = r[t]
        target = features.target_acceleration(r, t)                       # [N, 2]
        if noise and self.noise_std > 0:
            steps = torch.randn((h,) + tuple(r_t.shape), generator=generator, dtype=torch.float64)
            vel_noise = torch.cumsum(steps * (self.noise_std / math.sqrt(h)), dim=0)   # oldest first
            vel = vel + vel_noise.flip(0)                                 # newest first
            r_t = r_t + vel_noise.sum(0)                                  # position noise of r(t)
            target = target - vel_noise[-1]
            if self.noise_target == "position":
                target = target - vel_noise.sum(0)
        nf = features.node_features(vel)
        ef = features.edge_features(r_t, g.box[t], g.edge_index, g.rest_length)
        return nf.to(self.dtype), g.edge_index, ef.to(self.dtype), target.to(self.dtype)

    def _pushed_forward(self, traj: int, t: int, predict: Callable[[Tensor, Tensor, Tensor], Tensor]
                        ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        g = self.graphs[traj]
        r = g.positions
        nf, ei, ef, _ = self.sample(traj, t - 1, noise=False)             # the true state at t-1
        with torch.no_grad():
            a = predict(nf, ei, ef).detach().to(device="cpu", dtype=torch.float64)
        r_t, vel = advance(r[t - 1], features.velocity_history(r, t - 1, self.history), a)   # the model's r(t)
        target = r[t + 1] - 2.0 * r_t + r[t - 1]                          # r(t) + v(t) + a = r(t+1)
        ef = features.edge_features(r_t, g.box[t], g.edge_index, g.rest_length)
        return features.node_features(vel).to(self.dtype), g.edge_index, ef.to(self.dtype), target.to(self.dtype)

    def batch(self, indices: Sequence[int] | Tensor, generator: torch.Generator | None = None,
              noise: bool = True, predict: Callable[[Tensor, Tensor, Tensor], Tensor] | None = None
              ) -> GraphBatch:
        """The windows `indices` (into `self.windows`) as one disjoint graph."""
        nfs, eis, efs, tgs, ids = [], [], [], [], []
        offset = 0
        for k, i in enumerate(torch.as_tensor(indices, dtype=torch.long).tolist()):
            traj, t = self.windows[i].tolist()
            nf, ei, ef, tg = self.sample(traj, t, generator, noise, predict)
            nfs.append(nf)
            eis.append(ei + offset)
            efs.append(ef)
            tgs.append(tg)
            ids.append(torch.full((nf.shape[0],), k, dtype=torch.long))
            offset += nf.shape[0]
        if not nfs:
            raise DatasetError("expected at least one window index, got none")
        return GraphBatch(torch.cat(nfs), torch.cat(eis, dim=1), torch.cat(efs), torch.cat(tgs), torch.cat(ids),
                          len(nfs))

    def unroll_starts(self, steps: int) -> Tensor:
        """Indices into `self.windows` of the windows (g, t) with (g, t+1), ..., (g, t+steps-1) windows too."""
        if steps < 1:
            raise DatasetError(f"expected unroll steps >= 1, got {steps}")
        keep = [i for i, (g, t) in enumerate(self.windows.tolist())
                if all((g, t + j) in self._quiet for j in range(1, steps))]
        if not keep:
            raise DatasetError(f"expected windows with {steps} quiet steps after them, got none "
                               f"(trajectories too short for train.unroll = {steps}?)")
        return torch.tensor(keep, dtype=torch.long)

    def lead_room(self, indices: Sequence[int] | Tensor) -> int:
        """Snapshots before the earliest of the windows `indices` beyond their history (t - h)."""
        ts = self.windows[torch.as_tensor(indices, dtype=torch.long), 1]
        return int(ts.min()) - self.history

    def unrolled_batch(self, indices: Sequence[int] | Tensor, steps: int, lead: int = 0) -> UnrollBatch:
        """The windows `indices` with `steps` true snapshots after each (see `unroll_starts`), each
        begun `lead` snapshots earlier: positions r(t-lead-h), ..., r(t+steps), boxes from t-lead."""
        h = self.history
        pos, boxes, eis, rests, owners = [], [], [], [], []
        offset = 0
        for k, i in enumerate(torch.as_tensor(indices, dtype=torch.long).tolist()):
            traj, t = self.windows[i].tolist()
            g = self.graphs[traj]
            if t + steps > g.n_snapshots - 1 or t - lead - h < 0:
                raise IndexError(f"{g.name}: expected {lead + h} <= t <= {g.n_snapshots - 1 - steps}, got t = {t}")
            pos.append(g.positions[t - lead - h: t + steps + 1])
            boxes.append(g.box[t - lead: t + steps].unsqueeze(1).expand(lead + steps, g.edge_index.shape[1], 2))
            eis.append(g.edge_index + offset)
            rests.append(g.rest_length)
            owners.append(torch.full((g.n_nodes,), k, dtype=torch.long))
            offset += g.n_nodes
        if not pos:
            raise DatasetError("expected at least one window index, got none")
        return UnrollBatch(torch.cat(pos, dim=1), torch.cat(boxes, dim=1), torch.cat(eis, dim=1), torch.cat(rests),
                           torch.cat(owners))

    def to_data(self, index: int, generator: torch.Generator | None = None, noise: bool = True):
        """Window `index` as a torch_geometric.data.Data (x, edge_index, edge_attr, y, traj, t)."""
        from torch_geometric.data import Data

        traj, t = self.windows[index].tolist()
        nf, ei, ef, tg = self.sample(traj, t, generator, noise)
        return Data(x=nf, edge_index=ei, edge_attr=ef, y=tg, traj=traj, t=t)


def find_trajectory_files(paths: Sequence[str | os.PathLike]) -> list[Path]:
    """npz files named by `paths`: files, directories (their *.npz, not recursive) or glob patterns.

    Hidden files (temporaries of an interrupted `lmp-gnn simulate`) are skipped.
    """
    found: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            found += sorted(q for q in p.glob("*.npz") if not q.name.startswith("."))
        elif p.is_file():
            found.append(p)
        else:
            matches = sorted(Path(m) for m in glob.glob(str(p)) if not Path(m).name.startswith("."))
            if not matches:
                raise DatasetError(f"expected a trajectory file, directory or glob pattern, got {str(p)!r} "
                                   f"(nothing there)")
            found += [m for m in matches if m.suffix == ".npz"]
    if not found:
        raise DatasetError(f"expected trajectory files (*.npz) in {[str(p) for p in paths]}, found none")
    seen: set[Path] = set()
    return [f for f in found if not (f.resolve() in seen or seen.add(f.resolve()))]


def load_trajectories(paths: Sequence[str | os.PathLike]) -> list[tuple[str, Trajectory]]:
    """(file stem, trajectory) for every file `find_trajectory_files(paths)` names."""
    out = []
    for f in find_trajectory_files(paths):
        out.append((f.stem, load_trajectory(f)))
    return out


def network_key(name: str, traj: Trajectory) -> str:
    """The network a trajectory was made from (metadata 'network', else the file stem)."""
    net = traj.metadata.get("network")
    return str(net) if net else name


def split_by_network(items: Sequence[tuple[str, Trajectory]], val_fraction: float, seed: int
                     ) -> tuple[list[tuple[str, Trajectory]], list[tuple[str, Trajectory]]]:
    """Split (name, trajectory) pairs into train/val so that no network is in both.

    round(val_fraction * n_networks) networks (at least 1 when val_fraction > 0) go to val,
    chosen by a seeded permutation of the sorted network names.
    """
    if not 0 <= val_fraction < 1:
        raise DatasetError(f"expected 0 <= val_fraction < 1, got {val_fraction}")
    keys = sorted({network_key(n, t) for n, t in items})
    n_val = 0 if val_fraction == 0 else max(1, int(round(val_fraction * len(keys))))
    if n_val >= len(keys) and val_fraction > 0:
        raise DatasetError(f"expected at least 2 networks to split train/val by network, got {len(keys)} "
                           f"({keys}); add networks, give validation data separately, or set val_fraction 0")
    perm = np.random.default_rng(seed).permutation(len(keys))
    val_keys = {keys[i] for i in perm[:n_val]}
    train = [(n, t) for n, t in items if network_key(n, t) not in val_keys]
    val = [(n, t) for n, t in items if network_key(n, t) in val_keys]
    return train, val


def training_metadata(items: Sequence[tuple[str, Trajectory]]) -> dict:
    """The data metadata an exported model carries, under its model keys (lmp_gnn.step.metadata.DATA_KEYS):
    delta_l (must agree across trajectories), strain_rate, timestep (means), md_steps_per_step
    (mean md_steps_per_snapshot); and box_length, the mean initial box length Lx (the compressed
    axis) of the trajectories, which fix gnn/rollout compares with the deck's box."""
    values: dict[str, list[float]] = {k: [] for k in REQUIRED_METADATA}
    for name, traj in items:
        for key in REQUIRED_METADATA:
            v = traj.metadata.get(key)
            if v is None:
                raise DatasetError(f"{name}: expected trajectory metadata key '{key}' (docs/formats.md), got keys "
                                   f"{sorted(traj.metadata)}")
            values[key].append(float(v))
    dl = np.array(values["delta_l"])
    if np.any(np.abs(dl - dl[0]) > 1e-9 * abs(dl[0])):
        raise DatasetError(f"expected one delta_l for all training trajectories (the model's step), got "
                           f"{sorted(set(dl.tolist()))}")
    means = {model_key: float(np.mean(values[data_key])) for model_key, data_key in DATA_KEYS.items()}
    return {
        **means,
        "delta_l": float(dl[0]),
        "box_length": float(np.mean([traj.box[0, 0] for _, traj in items])),
        "n_trajectories": len(items),
        "n_networks": len({network_key(n, t) for n, t in items}),
    }


__all__ = ["DatasetError", "GraphBatch", "WindowDataset", "check_trajectory", "find_trajectory_files",
           "load_trajectories", "network_key", "split_by_network", "training_metadata", "TrajectoryFormatError"]
