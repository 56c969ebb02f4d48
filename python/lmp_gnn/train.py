"""Training of the learned simulator (`lmp-gnn train`).

- Data: trajectory npz files (docs/formats.md) from `data.train` (files, directories, globs);
  validation from `data.val`, or a split of the training files by network
  (`data.val_fraction`), so no network is in both.
- Objective: MSE between predicted and true accelerations, both normalised by the model's
  online target normaliser (PAPER.md §II); the normalisers accumulate mean/variance of node
  features, edge features and targets over every batch seen (synchronised across ranks).
- Unrolled training (`train.unroll` = K > 1): each window is rolled K learned steps from its true
  history (lmp_gnn.rules.advance, gradients through every step) and the loss is the mean over
  the K steps of the squared position error in units of the target normaliser's std, which for
  K = 1 is the one-step loss. Learned steps feed their own velocities back, so a model trained on
  one step only can be unstable over hundreds (errors growing ~8 % per step); the unrolled loss
  sees that growth. Edge features use the true box of each step (the box rule of a rollout only
  moves the periodic images of the few bonds that cross the boundary; a 1000-step fine-tuning
  stage with the free axis evolved by that rule instead ended where it ends with the true box:
  ν_est at 4.5 % 0.051 / 0.932 against 0.049 / 0.936). Usually a fine-tuning stage: `train.init`
  (`--init`) starts from a trained checkpoint's weights and normalisers.
  With `train.unroll_lead` = M, each batch first rolls m ~ U{0..M} learned steps without gradients
  (from the true history m snapshots earlier), so the loss also starts from states the model
  reaches itself after up to M steps, off the true path, and the true path is the target there
  too (the compression is quasi-static: the true motion from a nearby state relaxes onto it).
  With `train.strain_weight` = w, each step's error also counts w times more through its
  homogeneous-strain part (`strain_part`: the least-squares affine fit of the error field over
  each network), the part Poisson's ratio is read from: up to half of a long rollout's error on
  auxetic networks (benchmarks/strain_error.py), while a per-node MSE over K steps hardly sees it.
- Optimiser: Adam; learning rate decays exponentially from `lr` to `lr_final` over the
  configured `steps`: lr(s) = lr · (lr_final / lr)^(s / steps) (the paper: 1e-4 -> 1e-6).
- A step = one batch of `batch_size` graphs (windows) per process, drawn uniformly at random
  from all training windows with a generator seeded by (seed, rank, step), so a resumed run
  draws the same batches as an uninterrupted one.
- Validation every `val_every` steps and at the end: one-step MSE of raw accelerations on a
  fixed set of windows, beside the zero-acceleration baseline (a ≡ 0, whose MSE is <a²>), and
  a short learned rollout (lmp_gnn.rollout) vs the baseline rollout r(t+1) = 2r(t) - r(t-1).
- Checkpoints: `<out>/last.pt` (every `ckpt_every` steps and at the end), `<out>/best.pt`
  (lowest validation one-step MSE); metrics as JSON lines in `<out>/metrics.jsonl`; the
  resolved config in `<out>/config.yaml`.
- Distributed: under `torchrun --nproc_per_node P`, DistributedDataParallel with gloo on CPU
  (NCCL on CUDA); rank 0 validates, logs and writes checkpoints.
"""

from __future__ import annotations

import copy
import json
import math
import os
import sys
import time
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import yaml
from torch import Tensor, nn

from lmp_gnn import __version__, features
from lmp_gnn.dataset import (NOISE_TARGETS, DatasetError, GraphBatch, WindowDataset, load_trajectories,
                             split_by_network, training_metadata)
from lmp_gnn.export import load_checkpoint, save_checkpoint
from lmp_gnn.model import GNNSimulator, ModelConfig, OnlineNormalizer, build_model

DEFAULT_CONFIG: dict[str, Any] = {
    "data": {
        "train": [],            # trajectory files, directories or globs
        "val": [],              # optional; empty -> split `train` by network
        "val_fraction": 0.1,    # share of networks held out when `val` is empty
        "split_seed": 0,
        "noise_std": 0.0,       # GNS random-walk noise on the newest input velocity (distance/step)
        "noise_target": "velocity",  # what the target undoes: velocity (GNS) | position (lmp_gnn.dataset)
        "event_ratio": 100.0,   # leave out windows with accelerations above this x the trajectory median
                                # (start of compression, snap-through events); 0 keeps all

    },
    "model": {f.name: f.default for f in fields(ModelConfig)},
    "train": {
        "steps": 10000,         # optimiser steps (batches per process)
        "batch_size": 8,        # graphs per batch per process
        "lr": 1.0e-4,           # initial learning rate
        "lr_final": 1.0e-6,     # learning rate at `steps` (exponential decay in between)
        "seed": 0,
        "dtype": "float32",     # training dtype of parameters and features
        "device": "auto",       # auto | cpu | cuda | cuda:N
        "num_threads": 0,       # torch intra-op threads per process; 0 = leave torch's default
        "grad_clip": 0.0,       # max gradient norm; 0 = off
        "pushforward": 0.0,     # share of batches whose inputs are the model's own one-step prediction
        "unroll": 1,            # learned steps per training window, loss over all of them (docstring)
        "unroll_lead": 0,       # up to this many learned steps without gradients before the unrolled loss
        "strain_weight": 0.0,   # extra weight of the strain part of the unrolled loss's error (docstring)
        "init": None,           # checkpoint whose weights and normalisers start a fresh run (fine-tuning;
                                # ignored with --resume)
        "log_every": 50,
        "val_every": 1000,
        "val_windows": 512,     # validation windows for the one-step MSE (evenly spaced)
        "rollout_steps": 20,    # learned steps of the validation rollout
        "rollout_trajectories": 4,
        "rollout_start": 2,     # first rollout snapshot is h + rollout_start (past the start-up; docs/protocol.md)
        "ckpt_every": 1000,
        "time_limit": 0.0,      # minutes; 0 = none. Stops cleanly and writes last.pt
        "progress": True,
    },
    "out": "runs/train",
}


class ConfigError(ValueError):
    """A training configuration with unknown keys or bad values."""


# ----------------------------------------------------------------------------- config

def _merge(base: dict, override: dict, where: str = "") -> dict:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if key not in base:
            raise ConfigError(f"unknown config key '{where}{key}'; expected one of {sorted(base)}")
        if isinstance(base[key], dict):
            if not isinstance(value, dict):
                raise ConfigError(f"config key '{where}{key}': expected a mapping, got {type(value).__name__}")
            out[key] = _merge(base[key], value, f"{where}{key}.")
        else:
            out[key] = value
    return out


def load_config(path: str | os.PathLike | None = None, overrides: dict | None = None) -> dict:
    """DEFAULT_CONFIG updated by a YAML file, then by `overrides` (same nesting); unknown keys are errors."""
    cfg = copy.deepcopy(DEFAULT_CONFIG)
    if path is not None:
        with open(path) as f:
            loaded = yaml.safe_load(f) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a YAML mapping, got {type(loaded).__name__}")
        cfg = _merge(cfg, loaded)
        base = Path(path).parent
        for key in ("train", "val"):   # data paths relative to the config file's folder
            cfg["data"][key] = [_relative_to(base, p) for p in _as_list(cfg["data"][key])]
    if overrides:
        cfg = _merge(cfg, overrides)
    for key in ("train", "val"):
        cfg["data"][key] = [str(p) for p in _as_list(cfg["data"][key])]
    check_config(cfg)
    return cfg


def _as_list(v: Any) -> list:
    if v is None:
        return []
    return list(v) if isinstance(v, (list, tuple)) else [v]


def _relative_to(base: Path, p: str) -> str:
    q = Path(os.path.expanduser(str(p)))
    if q.is_absolute() or (Path.cwd() / q).exists() or not (base / q).exists():
        return str(q)
    return str(base / q)


def check_config(cfg: dict) -> None:
    t = cfg["train"]
    ModelConfig.from_dict(cfg["model"])      # raises on bad model values
    for key in ("steps", "batch_size", "log_every", "val_every", "ckpt_every"):
        if not isinstance(t[key], int) or t[key] < 1:
            raise ConfigError(f"train.{key}: expected a positive integer, got {t[key]!r}")
    for key in ("val_windows", "rollout_steps", "rollout_trajectories", "rollout_start", "num_threads"):
        if not isinstance(t[key], int) or t[key] < 0:
            raise ConfigError(f"train.{key}: expected an integer >= 0, got {t[key]!r}")
    if not (float(t["lr"]) > 0 and float(t["lr_final"]) > 0):
        raise ConfigError(f"train.lr and train.lr_final: expected > 0, got {t['lr']} and {t['lr_final']}")
    if t["dtype"] not in ("float32", "float64"):
        raise ConfigError(f"train.dtype: expected float32 or float64, got {t['dtype']!r}")
    if float(t["time_limit"]) < 0 or float(t["grad_clip"]) < 0:
        raise ConfigError("train.time_limit and train.grad_clip: expected >= 0")
    if not isinstance(t["unroll"], int) or isinstance(t["unroll"], bool) or t["unroll"] < 1:
        raise ConfigError(f"train.unroll: expected a positive integer, got {t['unroll']!r}")
    if not isinstance(t["unroll_lead"], int) or isinstance(t["unroll_lead"], bool) or t["unroll_lead"] < 0:
        raise ConfigError(f"train.unroll_lead: expected an integer >= 0, got {t['unroll_lead']!r}")
    if t["unroll_lead"] > 0 and t["unroll"] == 1:
        raise ConfigError("train.unroll_lead leads into the unrolled loss; expected train.unroll > 1 with it")
    if not float(t["strain_weight"]) >= 0:
        raise ConfigError(f"train.strain_weight: expected >= 0, got {t['strain_weight']!r}")
    if float(t["strain_weight"]) > 0 and t["unroll"] == 1:
        raise ConfigError("train.strain_weight weighs the unrolled loss's position error; expected train.unroll > 1 "
                          "with it")
    if t["unroll"] > 1 and (float(t["pushforward"]) > 0 or float(cfg["data"]["noise_std"]) > 0):
        raise ConfigError("train.unroll > 1 trains on the model's own rollouts; expected train.pushforward = 0 "
                          f"and data.noise_std = 0 with it, got {t['pushforward']} and {cfg['data']['noise_std']}")
    if t["init"] is not None and not isinstance(t["init"], str):
        raise ConfigError(f"train.init: expected a checkpoint path or null, got {t['init']!r}")
    if float(cfg["data"]["noise_std"]) < 0:
        raise ConfigError(f"data.noise_std: expected >= 0, got {cfg['data']['noise_std']}")
    if cfg["data"]["noise_target"] not in NOISE_TARGETS:
        raise ConfigError(f"data.noise_target: expected one of {', '.join(NOISE_TARGETS)}, "
                          f"got {cfg['data']['noise_target']!r}")


def lr_factor(step: int, steps: int, lr: float, lr_final: float) -> float:
    """Multiplier of `lr` at `step`: (lr_final / lr)^(step / steps), held at lr_final beyond `steps`."""
    return (lr_final / lr) ** (min(step, steps) / steps)


# ----------------------------------------------------------------------------- distributed

class _Dist:
    """Rank/world of this process; initialises torch.distributed under torchrun."""

    def __init__(self, device_pref: str):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", "0"))
        if device_pref == "auto":
            device_pref = "cuda" if torch.cuda.is_available() else "cpu"
        if device_pref.startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError(f"train.device: expected a usable CUDA device for {device_pref!r}, got none "
                              f"(torch {torch.__version__}); use device auto or cpu")
        if device_pref == "cuda" and self.world > 1:
            device_pref = f"cuda:{local}"
        self.device = torch.device(device_pref)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
        self.active = self.world > 1
        if self.active and not dist.is_initialized():
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def all_reduce(self, x: Tensor) -> Tensor:
        if self.active:
            dist.all_reduce(x)
        return x

    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    def close(self) -> None:
        if self.active and dist.is_initialized():
            dist.destroy_process_group()


def update_normalizers(model: GNNSimulator, batch: GraphBatch, d: _Dist) -> None:
    """Fold a batch into the three normalisers, with the same result on every rank.

    Two all-reduces of small float64 vectors: counts and sums (-> global batch mean), then
    sums of squared deviations about that mean (no cancellation).
    """
    if not d.active:
        model.update_normalizers(batch.node_features, batch.edge_features, batch.target)
        return
    node_in, edge_in = model.model_inputs(batch.node_features, batch.edge_features)
    pairs: list[tuple[OnlineNormalizer, Tensor]] = [
        (model.node_norm, node_in), (model.edge_norm, edge_in),
        (model.target_norm, batch.target - model.acceleration_prior(batch.node_features))]
    xs = [x.detach().to(torch.float64).reshape(-1, norm.size) for norm, x in pairs]
    first = torch.cat([torch.cat([torch.tensor([float(x.shape[0])], dtype=torch.float64, device=x.device),
                                  x.sum(0)]) for x in xs])
    d.all_reduce(first)
    counts, means, k = [], [], 0
    for (norm, _), x in zip(pairs, xs):
        n = first[k]
        counts.append(n)
        means.append(first[k + 1:k + 1 + norm.size] / n.clamp_min(1))
        k += 1 + norm.size
    second = torch.cat([((x - m) ** 2).sum(0) for x, m in zip(xs, means)])
    d.all_reduce(second)
    k = 0
    for (norm, _), n, m in zip(pairs, counts, means):
        norm.merge(n, m, second[k:k + norm.size])
        k += norm.size


class _Loss(nn.Module):
    """MSE of normalised accelerations; the module DistributedDataParallel wraps."""

    def __init__(self, model: GNNSimulator):
        super().__init__()
        self.model = model

    def forward(self, nf: Tensor, ei: Tensor, ef: Tensor, target: Tensor) -> Tensor:
        pred = self.model.forward_normalized(nf, ei, ef)
        return torch.mean((pred - self.model.normalized_target(nf, target)) ** 2)


def strain_part(error: Tensor, positions: Tensor, node_graph: Tensor, n_graphs: int | None = None) -> Tensor:
    """The homogeneous-strain part of a per-node error field, fitted graph by graph.

    error, positions [N, 2]; node_graph [N] graph index (0..G-1) of each node. For each graph the
    least-squares A [2, 2] of error_i ≈ c + (x_i - x̄) A (x = positions, c a translation) gives
    the part (x_i - x̄) A: the error of the network's overall strain, which the Poisson's ratio
    estimators read, without the translation and the non-affine rest. Differentiable in `error`.
    `n_graphs` (node_graph.max() + 1) may be given to spare a device sync per call.
    """
    n_graphs = int(node_graph.max()) + 1 if n_graphs is None else n_graphs
    count = torch.bincount(node_graph, minlength=n_graphs).to(positions.dtype)
    centre = positions.new_zeros(n_graphs, 2).index_add_(0, node_graph, positions) / count[:, None]
    x = (positions - centre[node_graph]).to(error.dtype)
    sxx = error.new_zeros(n_graphs, 2, 2).index_add_(0, node_graph, x[:, :, None] * x[:, None, :])
    sxe = error.new_zeros(n_graphs, 2, 2).index_add_(0, node_graph, x[:, :, None] * error[:, None, :])
    return torch.einsum("ni,nij->nj", x, torch.linalg.solve(sxx, sxe)[node_graph])


class _UnrolledLoss(nn.Module):
    """Mean over K learned steps of the squared position error / target std, plus `strain_weight`
    times the same of its homogeneous-strain part (module docstring)."""

    def __init__(self, model: GNNSimulator, strain_weight: float = 0.0):
        super().__init__()
        self.model = model
        self.strain_weight = float(strain_weight)

    def forward(self, positions: Tensor, edge_box: Tensor, edge_index: Tensor, rest_length: Tensor,
                node_graph: Tensor, lead: int = 0) -> Tensor:
        """Loss over the last edge_box.shape[0] - lead steps; the first `lead` steps carry no gradient."""
        from lmp_gnn.rules import advance

        model = self.model
        h, steps = model.config.history, edge_box.shape[0]
        dtype = next(model.parameters()).dtype
        velocities = features.velocity_history(positions, h, h)          # v(t), ..., v(t-h+1)
        r = positions[h]
        std = model.target_norm.std
        loss = positions.new_zeros(())
        n_graphs = int(node_graph.max()) + 1   # once per window, not once per step (a sync on a GPU)

        def step(j: int, r: Tensor, velocities: Tensor) -> tuple[Tensor, Tensor]:
            nf = features.node_features(velocities).to(dtype)
            ef = features.edge_features(r, edge_box[j], edge_index, rest_length).to(dtype)
            return advance(r, velocities, model(nf, edge_index, ef).to(torch.float64))

        with torch.no_grad():
            for j in range(lead):
                r, velocities = step(j, r, velocities)
        for j in range(lead, steps):
            r, velocities = step(j, r, velocities)
            true = positions[h + j + 1]
            error = (r - true) / std
            loss = loss + torch.mean(error ** 2)
            if self.strain_weight > 0:
                loss = loss + self.strain_weight * torch.mean(strain_part(error, true, node_graph, n_graphs) ** 2)
        return loss / (steps - lead)


# ----------------------------------------------------------------------------- validation

@torch.no_grad()
def evaluate(model: GNNSimulator, val: WindowDataset, cfg: dict, device: torch.device) -> dict:
    """One-step and rollout MSE of `model` on `val`, each beside the zero-acceleration baseline.

    Returns a dict: val_mse (raw accelerations, distance²/step⁴), val_mse_norm (normalised),
    baseline_mse (<a²>), val_ratio = val_mse / baseline_mse, and when rollouts are configured
    rollout_mse / rollout_baseline_mse (positions, distance², mean over nodes, axes and steps)
    and rollout_ratio.
    """
    from lmp_gnn.rollout import RolloutError, rollout, zero_acceleration_model

    t = cfg["train"]
    was_training = model.training
    model.eval()
    out: dict[str, float] = {}
    if len(val) and t["val_windows"] > 0:
        n = min(t["val_windows"], len(val))
        idx = torch.linspace(0, len(val) - 1, n).round().long().unique()
        sq, sq_norm, sq_base, count = 0.0, 0.0, 0.0, 0
        for chunk in idx.split(max(1, t["batch_size"])):
            b = val.batch(chunk, noise=False).to(device)
            pred = model(b.node_features, b.edge_index, b.edge_features).double()
            target = b.target.double()
            sq += float(((pred - target) ** 2).sum())
            sq_base += float((target ** 2).sum())
            pn = model.forward_normalized(b.node_features, b.edge_index, b.edge_features).double()
            sq_norm += float(((pn - model.normalized_target(b.node_features, target).double()) ** 2).sum())
            count += target.numel()
        out["val_mse"] = sq / count
        out["val_mse_norm"] = sq_norm / count
        out["baseline_mse"] = sq_base / count
        out["val_ratio"] = out["val_mse"] / max(out["baseline_mse"], 1e-300)
    h = model.config.history
    if t["rollout_steps"] > 0 and t["rollout_trajectories"] > 0:
        dtype = next(model.parameters()).dtype

        def learned(nf: Tensor, ei: Tensor, ef: Tensor) -> Tensor:
            return model(nf.to(device), ei.to(device), ef.to(device)).cpu()

        err, err_base, count = 0.0, 0.0, 0
        for g in val.graphs[: t["rollout_trajectories"]]:
            start = h + t["rollout_start"]
            n_steps = min(t["rollout_steps"], g.n_snapshots - 1 - start)
            if n_steps < 1:
                continue
            arrays = {"positions": g.positions, "box": g.box,
                      "bonds": g.edge_index[:, : g.edge_index.shape[1] // 2].t(),
                      "rest_length": g.rest_length[: g.rest_length.shape[0] // 2]}
            delta_l = float(g.metadata.get("delta_l", float(g.box[0, 0] - g.box[1, 0])))
            truth = g.positions[start + 1: start + n_steps + 1].numpy()
            base = rollout(zero_acceleration_model, arrays, start, n_steps, h, delta_l, torch.float64)
            try:
                res = rollout(learned, arrays, start, n_steps, h, delta_l, dtype)
                err += float(((res.positions[start + 1:] - truth) ** 2).sum())
            except RolloutError:        # a diverging model is a validation result, not a crash
                err = math.inf
            err_base += float(((base.positions[start + 1:] - truth) ** 2).sum())
            count += truth.size
        if count:
            out["rollout_mse"] = err / count
            out["rollout_baseline_mse"] = err_base / count
            out["rollout_ratio"] = out["rollout_mse"] / max(out["rollout_baseline_mse"], 1e-300)
    model.train(was_training)
    return out


# ----------------------------------------------------------------------------- training

def _datasets(cfg: dict, history: int, dtype: torch.dtype) -> tuple[WindowDataset, WindowDataset | None, dict]:
    data = cfg["data"]
    if not data["train"]:
        raise ConfigError("data.train: expected trajectory files, directories or globs, got none")
    items = load_trajectories(data["train"])
    if data["val"]:
        val_items = load_trajectories(data["val"])
        train_items = items
    else:
        train_items, val_items = split_by_network(items, float(data["val_fraction"]), int(data["split_seed"]))
    if not train_items:
        raise DatasetError("expected at least one training trajectory after the split, got none")
    meta = training_metadata(train_items)
    meta["train_files"] = [n for n, _ in train_items]
    meta["val_files"] = [n for n, _ in val_items]
    train = WindowDataset([t for _, t in train_items], history, [n for n, _ in train_items],
                          noise_std=float(data["noise_std"]), noise_target=data["noise_target"], dtype=dtype,
                          event_ratio=float(data["event_ratio"]))
    val = WindowDataset([t for _, t in val_items], history, [n for n, _ in val_items], dtype=dtype,
                        event_ratio=float(data["event_ratio"])) if val_items else None
    return train, val, meta


def _predictor(model: GNNSimulator, device: torch.device):
    """The model as a plain function on host features (for push-forward windows)."""
    dtype = next(model.parameters()).dtype

    def predict(nf: Tensor, ei: Tensor, ef: Tensor) -> Tensor:
        return model(nf.to(device, dtype), ei.to(device), ef.to(device, dtype))
    return predict


def _batch_generator(seed: int, rank: int, step: int) -> torch.Generator:
    return torch.Generator().manual_seed((seed * 1_000_003 + rank * 7_919 + step * 104_729) % (2 ** 63))


def run_training(cfg: dict, resume: str | os.PathLike | None = None, log=print) -> dict:
    """Train as configured; returns a summary dict (final step, metrics, checkpoint paths).

    `resume`: a checkpoint to continue from (model hyper-parameters, normalisers, optimiser,
    scheduler and step come from it; `cfg` supplies data, steps and the rest).
    """
    t = cfg["train"]
    d = _Dist(str(t["device"]))
    try:
        return _train(cfg, resume, d, log)
    finally:
        d.close()


def _train(cfg: dict, resume, d: _Dist, log) -> dict:
    t = cfg["train"]
    if t["num_threads"]:
        torch.set_num_threads(int(t["num_threads"]))
    dtype = getattr(torch, t["dtype"])
    out = Path(cfg["out"])
    ckpt = None
    # a resumed run's checkpoint holds the weights already: train.init only starts a fresh run
    start_from = resume if resume is not None else t["init"]
    what = "--resume" if resume is not None else "train.init"
    if start_from is not None:
        ckpt = load_checkpoint(start_from)
        if ckpt["hparams"] != ModelConfig.from_dict(cfg["model"]).to_dict() and cfg["model"] != DEFAULT_CONFIG["model"]:
            raise ConfigError(f"{what}: expected the config's model section to match the checkpoint's "
                              f"{ckpt['hparams']}, got {cfg['model']}")
        cfg = copy.deepcopy(cfg)
        cfg["model"] = dict(ckpt["hparams"])
    model_cfg = ModelConfig.from_dict(cfg["model"])

    torch.manual_seed(int(t["seed"]))
    model = build_model(model_cfg).to(dtype)
    for norm in (model.node_norm, model.edge_norm, model.target_norm):
        norm.double()
    train_set, val_set, data_meta = _datasets(cfg, model_cfg.history, dtype)
    if ckpt is not None:
        old_dl = ckpt["data_meta"].get("delta_l")
        if old_dl is not None and abs(float(old_dl) - data_meta["delta_l"]) > 1e-9 * abs(float(old_dl)):
            raise ConfigError(f"{what}: expected training data with the checkpoint's delta_l {old_dl}, "
                              f"got {data_meta['delta_l']}")
        model.load_state_dict(ckpt["model_state"])
    model.to(d.device)

    unroll, unroll_lead, strain_weight = int(t["unroll"]), int(t["unroll_lead"]), float(t["strain_weight"])
    unroll_starts = train_set.unroll_starts(unroll) if unroll > 1 else None
    loss_module: nn.Module = _Loss(model) if unroll == 1 else _UnrolledLoss(model, strain_weight)
    if d.active:
        loss_module = nn.parallel.DistributedDataParallel(
            loss_module, device_ids=[d.device.index] if d.device.type == "cuda" else None)
    optimizer = torch.optim.Adam(model.parameters(), lr=float(t["lr"]))
    steps, lr0, lr1 = int(t["steps"]), float(t["lr"]), float(t["lr_final"])
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, steps, lr0, lr1))
    step = 0
    best = math.inf
    if resume is not None:
        optimizer.load_state_dict(ckpt["optimizer_state"])
        step = int(ckpt["step"])
        best = float(ckpt.get("metrics", {}).get("best_val_mse", math.inf))
        # the schedule is a function of the step and of this run's lr, lr_final and steps
        scheduler.last_epoch = step
        for group in optimizer.param_groups:
            group["initial_lr"] = lr0
            group["lr"] = lr0 * lr_factor(step, steps, lr0, lr1)

    if d.main:
        out.mkdir(parents=True, exist_ok=True)
        with open(out / "config.yaml", "w") as f:
            yaml.safe_dump(cfg, f, sort_keys=False)
        log(f"lmp-gnn {__version__} train: {len(train_set.graphs)} train trajectories "
            f"({len(train_set)} windows), {len(val_set.graphs) if val_set else 0} val; model h={model_cfg.history} "
            f"k={model_cfg.layers} latent={model_cfg.latent}; {sum(p.numel() for p in model.parameters())} "
            f"parameters; device {d.device}, {d.world} process(es), {torch.get_num_threads()} thread(s); "
            f"step {step} -> {steps}" + (f"; {unroll}-step unrolled loss" if unroll > 1 else "") +
            (f" after up to {unroll_lead} learned steps" if unroll_lead else "") +
            (f", strain part weighted {strain_weight:g} more" if strain_weight else "") +
            (f"; weights from {t['init']}" if t["init"] is not None and resume is None else ""))
    metrics_file = open(out / "metrics.jsonl", "a") if d.main else None

    def checkpoint(name: str, metrics: dict) -> Path:
        return save_checkpoint(out / name, model=model, optimizer=optimizer, scheduler=scheduler, step=step,
                               train_config=cfg, data_meta=data_meta, metrics=metrics)

    def record(entry: dict) -> None:
        if metrics_file is not None:
            metrics_file.write(json.dumps(entry) + "\n")
            metrics_file.flush()

    time_limit_s = float(t["time_limit"]) * 60.0
    t_start = time.perf_counter()
    bar = None
    if d.main and t["progress"] and step < steps:
        from tqdm import tqdm

        bar = tqdm(total=steps, initial=step, desc="train", unit="step", file=sys.stderr, dynamic_ncols=True)
    last_metrics: dict = {}
    losses: list[float] = []
    first_loss = None
    stopped_by_time = False
    model.train()
    try:
        while step < steps:
            gen = _batch_generator(int(t["seed"]), d.rank, step)
            if unroll_starts is None:
                idx = torch.randint(0, len(train_set), (int(t["batch_size"]),), generator=gen)
            else:
                idx = unroll_starts[torch.randint(0, len(unroll_starts), (int(t["batch_size"]),), generator=gen)]
            # the same draw on every rank: the normaliser all-reduce must happen on all or none
            pushed = float(t["pushforward"]) > 0 and \
                float(torch.rand((), generator=_batch_generator(int(t["seed"]), 0, step))) < float(t["pushforward"])
            batch = train_set.batch(idx, generator=gen, predict=_predictor(model, d.device) if pushed else None
                                    ).to(d.device)
            if not pushed:   # statistics of the data, not of the model's early mistakes
                update_normalizers(model, batch, d)
            if unroll_starts is None:
                loss = loss_module(batch.node_features, batch.edge_index, batch.edge_features, batch.target)
            else:
                # lead steps: as many as every window in the batch has true history for
                lead = int(torch.randint(0, min(unroll_lead, train_set.lead_room(idx)) + 1, (), generator=gen)) \
                    if unroll_lead else 0
                u = train_set.unrolled_batch(idx, unroll, lead).to(d.device)
                loss = loss_module(u.positions, u.edge_box, u.edge_index, u.rest_length, u.node_graph, lead)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if float(t["grad_clip"]) > 0:
                nn.utils.clip_grad_norm_(model.parameters(), float(t["grad_clip"]))
            optimizer.step()
            scheduler.step()
            step += 1
            lv = float(loss.detach())
            if not math.isfinite(lv):
                raise FloatingPointError(f"training loss became {lv} at step {step}; expected finite "
                                         f"(lower train.lr, or check the data for outliers)")
            losses.append(lv)
            first_loss = lv if first_loss is None else first_loss
            if bar is not None:
                bar.update(1)
            if step % int(t["log_every"]) == 0 or step == steps:
                mean_loss = float(np.mean(losses))
                losses.clear()
                if bar is not None:
                    bar.set_postfix(loss=f"{mean_loss:.4g}", lr=f"{optimizer.param_groups[0]['lr']:.3g}")
                record({"step": step, "loss": mean_loss, "lr": optimizer.param_groups[0]["lr"],
                        "elapsed_s": time.perf_counter() - t_start})
            stop = time_limit_s > 0 and time.perf_counter() - t_start > time_limit_s
            if d.active:                        # all ranks stop at the same step
                flag = torch.tensor([1.0 if stop else 0.0], device=d.device)
                stop = bool(d.all_reduce(flag).item() > 0)
            validate = val_set is not None and (step % int(t["val_every"]) == 0 or step == steps or stop)
            if d.main and validate:
                last_metrics = evaluate(model, val_set, cfg, d.device)
                record({"step": step, **last_metrics})
                msg = ", ".join(f"{k} {v:.4g}" for k, v in last_metrics.items())
                (bar.write if bar is not None else log)(f"step {step}: {msg}")
                if last_metrics.get("val_mse", math.inf) < best:
                    best = last_metrics["val_mse"]
                    checkpoint("best.pt", {**last_metrics, "best_val_mse": best})
            if d.main and (step % int(t["ckpt_every"]) == 0 or step == steps or stop):
                checkpoint("last.pt", {**last_metrics, "best_val_mse": best, "loss": lv})
            if validate or stop:
                d.barrier()
            if stop:
                stopped_by_time = True
                break
    finally:
        if bar is not None:
            bar.close()
        if metrics_file is not None:
            metrics_file.close()
    summary = {"step": step, "steps": steps, "first_loss": first_loss, "stopped_by_time_limit": stopped_by_time,
               "metrics": last_metrics, "best_val_mse": best, "last": str(out / "last.pt"),
               "best": str(out / "best.pt") if (out / "best.pt").exists() else None,
               "elapsed_s": time.perf_counter() - t_start, "world_size": d.world}
    if d.main:
        log(f"done: step {step}/{steps}" + (" (time limit)" if stopped_by_time else "") +
            f", checkpoint {out / 'last.pt'}")
    return summary
