"""Training of the learned simulator (`lmp-gnn train`); the configuration is lmp_gnn.learning.train_config.

- Data: trajectory npz files (docs/formats.md) from `data.train` (files, directories, globs);
  validation from `data.val`, or a split of the training files by network
  (`data.val_fraction`), so no network is in both.
- Objective: MSE between predicted and true accelerations, both normalised by the model's
  online target normaliser (the paper's §II, docs/physics.md §1); the normalisers accumulate mean/variance of node
  features, edge features and targets over every batch seen (synchronised across ranks).
- Push-forward (`train.pushforward` = p): that share of batches (one draw per step, the same on
  every rank) takes its inputs from the model's own one-step prediction; those batches do not
  update the normalisers.
- Unrolled training (`train.unroll` = K > 1): each window is rolled K learned steps from its true
  history (lmp_gnn.step.rules.advance, gradients through every step) and the loss is the mean over
  the K steps of the squared position error in units of the target normaliser's std, which for
  K = 1 is the one-step loss. Edge features use the true box of each step. Usually a fine-tuning
  stage: `train.init` (`--init`) starts from a trained checkpoint's weights and normalisers.
  With `train.unroll_lead` = M, each batch first rolls m ~ U{0..M} learned steps without gradients
  (from the true history m snapshots earlier), so the loss starts from a state the model reached
  itself, and the true path is the target from there.
  With `train.strain_weight` = w, each step's error also counts w times more through its
  homogeneous-strain part (`strain_part`: the least-squares affine fit of the error field over
  each network), the part Poisson's ratio is read from.
- Optimiser: Adam; learning rate decays exponentially from `lr` to `lr_final` over the
  configured `steps`: lr(s) = lr · (lr_final / lr)^(s / steps) (the paper: 1e-4 -> 1e-6).
- A step = one batch of `batch_size` graphs (windows) per process, drawn uniformly at random
  from all training windows with a generator seeded by (seed, rank, step), so a resumed run
  draws the same batches as an uninterrupted one.
- Validation every `val_every` steps and at the end: one-step MSE of raw accelerations on a
  fixed set of windows, beside the zero-acceleration baseline (a ≡ 0, whose MSE is <a²>), and
  a short learned rollout (lmp_gnn.step.rollout) vs the baseline rollout r(t+1) = 2r(t) - r(t-1).
- Checkpoints: `<out>/last.pt` (every `ckpt_every` steps and at the end), `<out>/best.pt`
  (lowest validation one-step MSE); metrics as JSON lines in `<out>/metrics.jsonl`; the
  resolved config in `<out>/config.yaml` and in every checkpoint (`train_config`, the dict form
  `TrainConfig.from_dict` reads).
- Distributed: under `torchrun --nproc_per_node P`, DistributedDataParallel with gloo on CPU
  (NCCL on CUDA); rank 0 validates, logs and writes checkpoints.

Why these choices, and what each stage of the shipped model's training gave: docs/training.md.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import yaml
from torch import Tensor, nn

from lmp_gnn import __version__
from lmp_gnn.learning.dataset import (
    DatasetError,
    GraphBatch,
    WindowDataset,
    load_trajectories,
    split_by_network,
    training_metadata,
)
from lmp_gnn.learning.export import load_checkpoint, save_checkpoint
from lmp_gnn.learning.model import GNNSimulator, ModelConfig, OnlineNormalizer, build_model
from lmp_gnn.learning.train_config import ConfigError, DataConfig, LoopConfig, TrainConfig, load_config
from lmp_gnn.step import features

__all__ = ["ConfigError", "DataConfig", "LoopConfig", "TrainConfig", "evaluate", "load_config", "lr_factor",
           "run_training", "strain_part", "update_normalizers"]


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
    for norm, _ in pairs:
        n = first[k]
        counts.append(n)
        means.append(first[k + 1:k + 1 + norm.size] / n.clamp_min(1))
        k += 1 + norm.size
    second = torch.cat([((x - m) ** 2).sum(0) for x, m in zip(xs, means, strict=True)])
    d.all_reduce(second)
    k = 0
    for (norm, _), n, m in zip(pairs, counts, means, strict=True):
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
        from lmp_gnn.step.rules import advance

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
def evaluate(model: GNNSimulator, val: WindowDataset, t: LoopConfig, device: torch.device) -> dict:
    """One-step and rollout MSE of `model` on `val`, each beside the zero-acceleration baseline.

    `t`: the train section (val_windows, batch_size, rollout_steps, rollout_trajectories,
    rollout_start). Returns a dict: val_mse (raw accelerations, distance²/step⁴), val_mse_norm
    (normalised), baseline_mse (<a²>), val_ratio = val_mse / baseline_mse, and when rollouts are
    configured rollout_mse / rollout_baseline_mse (positions, distance², mean over nodes, axes
    and steps) and rollout_ratio.
    """
    was_training = model.training
    model.eval()
    out: dict[str, float] = {}
    if len(val) and t.val_windows > 0:
        out.update(_one_step_errors(model, val, t.val_windows, t.batch_size, device))
    if t.rollout_steps > 0 and t.rollout_trajectories > 0:
        out.update(_rollout_errors(model, val, t, device))
    model.train(was_training)
    return out


def _one_step_errors(model: GNNSimulator, val: WindowDataset, n_windows: int, chunk: int,
                     device: torch.device) -> dict[str, float]:
    """val_mse, val_mse_norm, baseline_mse and val_ratio on `n_windows` evenly spaced windows."""
    n = min(n_windows, len(val))
    idx = torch.linspace(0, len(val) - 1, n).round().long().unique()
    sq, sq_norm, sq_base, count = 0.0, 0.0, 0.0, 0
    for part in idx.split(max(1, chunk)):
        b = val.batch(part, noise=False).to(device)
        pred = model(b.node_features, b.edge_index, b.edge_features).double()
        target = b.target.double()
        sq += float(((pred - target) ** 2).sum())
        sq_base += float((target ** 2).sum())
        pn = model.forward_normalized(b.node_features, b.edge_index, b.edge_features).double()
        sq_norm += float(((pn - model.normalized_target(b.node_features, target).double()) ** 2).sum())
        count += target.numel()
    out = {"val_mse": sq / count, "val_mse_norm": sq_norm / count, "baseline_mse": sq_base / count}
    out["val_ratio"] = out["val_mse"] / max(out["baseline_mse"], 1e-300)
    return out


def _rollout_errors(model: GNNSimulator, val: WindowDataset, t: LoopConfig, device: torch.device) -> dict[str, float]:
    """rollout_mse, rollout_baseline_mse and rollout_ratio over the first validation trajectories."""
    h = model.config.history
    dtype = next(model.parameters()).dtype

    def learned(nf: Tensor, ei: Tensor, ef: Tensor) -> Tensor:
        return model(nf.to(device), ei.to(device), ef.to(device)).cpu()

    err, err_base, count = 0.0, 0.0, 0
    for g in val.graphs[: t.rollout_trajectories]:
        start = h + t.rollout_start
        n_steps = min(t.rollout_steps, g.n_snapshots - 1 - start)
        if n_steps < 1:
            continue
        e, e_base, n = _rollout_error(learned, g, start, n_steps, h, dtype)
        err, err_base, count = err + e, err_base + e_base, count + n
    if not count:
        return {}
    out = {"rollout_mse": err / count, "rollout_baseline_mse": err_base / count}
    out["rollout_ratio"] = out["rollout_mse"] / max(out["rollout_baseline_mse"], 1e-300)
    return out


def _rollout_error(learned, g, start: int, n_steps: int, h: int, dtype: torch.dtype) -> tuple[float, float, int]:
    """Summed squared position errors of the learned and the baseline rollout of graph `g` from
    snapshot `start`, and the number of terms; inf for a learned rollout that diverges."""
    from lmp_gnn.step.rollout import RolloutError, rollout, zero_acceleration_model

    arrays = {"positions": g.positions, "box": g.box,
              "bonds": g.edge_index[:, : g.edge_index.shape[1] // 2].t(),
              "rest_length": g.rest_length[: g.rest_length.shape[0] // 2]}
    delta_l = float(g.metadata.get("delta_l", float(g.box[0, 0] - g.box[1, 0])))
    truth = g.positions[start + 1: start + n_steps + 1].numpy()
    base = rollout(zero_acceleration_model, arrays, start, n_steps, h, delta_l, torch.float64)
    try:
        res = rollout(learned, arrays, start, n_steps, h, delta_l, dtype)
        err = float(((res.positions[start + 1:] - truth) ** 2).sum())
    except RolloutError:        # a diverging model is a validation result, not a crash
        err = math.inf
    return err, float(((base.positions[start + 1:] - truth) ** 2).sum()), truth.size


# ----------------------------------------------------------------------------- set-up

def _datasets(data: DataConfig, history: int, dtype: torch.dtype) -> tuple[WindowDataset, WindowDataset | None, dict]:
    if not data.train:
        raise ConfigError("data.train: expected trajectory files, directories or globs, got none")
    items = load_trajectories(data.train)
    if data.val:
        val_items = load_trajectories(data.val)
        train_items = items
    else:
        train_items, val_items = split_by_network(items, data.val_fraction, data.split_seed)
    if not train_items:
        raise DatasetError("expected at least one training trajectory after the split, got none")
    meta = training_metadata(train_items)
    meta["train_files"] = [n for n, _ in train_items]
    meta["val_files"] = [n for n, _ in val_items]
    train = WindowDataset([t for _, t in train_items], history, [n for n, _ in train_items],
                          noise_std=data.noise_std, noise_target=data.noise_target, dtype=dtype,
                          event_ratio=data.event_ratio)
    val = WindowDataset([t for _, t in val_items], history, [n for n, _ in val_items], dtype=dtype,
                        event_ratio=data.event_ratio) if val_items else None
    return train, val, meta


def _start_from(cfg: TrainConfig, resume: str | os.PathLike | None) -> tuple[TrainConfig, dict | None, str]:
    """The checkpoint a run starts from (--resume's, else train.init's, else none), `cfg` with the
    checkpoint's model section (the config's must be the default or the same), and the name of
    the option that gave the checkpoint."""
    # a resumed run's checkpoint holds the weights already: train.init only starts a fresh run
    path = resume if resume is not None else cfg.train.init
    what = "--resume" if resume is not None else "train.init"
    if path is None:
        return cfg, None, what
    ckpt = load_checkpoint(path)
    saved = ModelConfig.from_dict(ckpt["hparams"])
    if saved != cfg.model and cfg.model != ModelConfig():
        raise ConfigError(f"{what}: expected the config's model section to match the checkpoint's "
                          f"{ckpt['hparams']}, got {cfg.model.to_dict()}")
    return replace(cfg, model=saved), ckpt, what


def _model_and_data(cfg: TrainConfig, ckpt: dict | None, what: str, dtype: torch.dtype, device: torch.device
                    ) -> tuple[GNNSimulator, WindowDataset, WindowDataset | None, dict]:
    """The model on `device` (seeded initialisation, then the checkpoint's weights and normalisers
    if any), the training and validation sets and the training data's metadata."""
    torch.manual_seed(cfg.train.seed)
    model = build_model(cfg.model).to(dtype)
    for norm in (model.node_norm, model.edge_norm, model.target_norm):
        norm.double()
    train_set, val_set, data_meta = _datasets(cfg.data, cfg.model.history, dtype)
    if ckpt is not None:
        old_dl = ckpt["data_meta"].get("delta_l")
        if old_dl is not None and abs(float(old_dl) - data_meta["delta_l"]) > 1e-9 * abs(float(old_dl)):
            raise ConfigError(f"{what}: expected training data with the checkpoint's delta_l {old_dl}, "
                              f"got {data_meta['delta_l']}")
        model.load_state_dict(ckpt["model_state"])
    return model.to(device), train_set, val_set, data_meta


def _loss_module(model: GNNSimulator, t: LoopConfig, d: _Dist) -> nn.Module:
    """The one-step or the unrolled loss, wrapped in DistributedDataParallel under torchrun."""
    loss: nn.Module = _Loss(model) if t.unroll == 1 else _UnrolledLoss(model, t.strain_weight)
    if d.active:
        loss = nn.parallel.DistributedDataParallel(loss, device_ids=[d.device.index] if d.device.type == "cuda"
                                                   else None)
    return loss


def _optimiser(model: GNNSimulator, t: LoopConfig, resumed: dict | None):
    """Adam with the exponential schedule, at step 0 or at a resumed checkpoint's step.

    Returns (optimizer, scheduler, step, lowest validation MSE so far).
    """
    optimizer = torch.optim.Adam(model.parameters(), lr=t.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, t.steps, t.lr, t.lr_final))
    if resumed is None:
        return optimizer, scheduler, 0, math.inf
    optimizer.load_state_dict(resumed["optimizer_state"])
    step = int(resumed["step"])
    # the schedule is a function of the step and of this run's lr, lr_final and steps
    scheduler.last_epoch = step
    for group in optimizer.param_groups:
        group["initial_lr"] = t.lr
        group["lr"] = t.lr * lr_factor(step, t.steps, t.lr, t.lr_final)
    return optimizer, scheduler, step, float(resumed.get("metrics", {}).get("best_val_mse", math.inf))


def _predictor(model: GNNSimulator, device: torch.device):
    """The model as a plain function on host features (for push-forward windows)."""
    dtype = next(model.parameters()).dtype

    def predict(nf: Tensor, ei: Tensor, ef: Tensor) -> Tensor:
        return model(nf.to(device, dtype), ei.to(device), ef.to(device, dtype))
    return predict


def _batch_generator(seed: int, rank: int, step: int) -> torch.Generator:
    return torch.Generator().manual_seed((seed * 1_000_003 + rank * 7_919 + step * 104_729) % (2 ** 63))


# ----------------------------------------------------------------------------- training

def run_training(cfg: TrainConfig | dict, resume: str | os.PathLike | None = None, log=print) -> dict:
    """Train as configured; returns a summary dict (final step, metrics, checkpoint paths).

    `cfg`: a `TrainConfig` (or its dict form). `resume`: a checkpoint to continue from (model
    hyper-parameters, normalisers, optimiser, scheduler and step come from it; `cfg` supplies
    data, steps and the rest).
    """
    if isinstance(cfg, dict):
        cfg = TrainConfig.from_dict(cfg)
    d = _Dist(cfg.train.device)
    try:
        return _Run(cfg, resume, d, log).run()
    finally:
        d.close()


class _Run:
    """One training run: set up on construction; `run` takes `train_step` and `after_step` until
    train.steps or the time limit, then returns the summary."""

    def __init__(self, cfg: TrainConfig, resume: str | os.PathLike | None, d: _Dist, log):
        if cfg.train.num_threads:
            torch.set_num_threads(cfg.train.num_threads)
        dtype = getattr(torch, cfg.train.dtype)
        cfg, ckpt, what = _start_from(cfg, resume)
        self.cfg, self.t, self.d, self.log, self.out = cfg, cfg.train, d, log, Path(cfg.out)
        self.fine_tuning = cfg.train.init is not None and resume is None
        self.model, self.train_set, self.val_set, self.data_meta = _model_and_data(cfg, ckpt, what, dtype, d.device)
        self.unroll_starts = self.train_set.unroll_starts(self.t.unroll) if self.t.unroll > 1 else None
        self.loss_module = _loss_module(self.model, self.t, d)
        self.optimizer, self.scheduler, self.step, self.best = _optimiser(
            self.model, self.t, ckpt if resume is not None else None)
        self.last_metrics: dict = {}
        self.losses: list[float] = []          # since the last loss line
        self.first_loss: float | None = None
        self.metrics_file = None
        self.bar = None
        self.t_start = time.perf_counter()

    def run(self) -> dict:
        self._open_outputs()
        stopped = False
        self.model.train()
        try:
            while self.step < self.t.steps:
                if self.after_step(self.train_step()):
                    stopped = True
                    break
        finally:
            if self.bar is not None:
                self.bar.close()
            if self.metrics_file is not None:
                self.metrics_file.close()
        return self._summary(stopped)

    # --- one step

    def train_step(self) -> float:
        """One optimiser step on one batch; returns its loss."""
        loss = self._batch_loss()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.t.grad_clip > 0:
            nn.utils.clip_grad_norm_(self.model.parameters(), self.t.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.step += 1
        value = float(loss.detach())
        if not math.isfinite(value):
            raise FloatingPointError(f"training loss became {value} at step {self.step}; expected finite "
                                     f"(lower train.lr, or check the data for outliers)")
        return value

    def _batch_loss(self) -> Tensor:
        """This step's batch (which updates the normalisers unless pushed forward) and its loss."""
        t, d, data, starts = self.t, self.d, self.train_set, self.unroll_starts
        gen = _batch_generator(t.seed, d.rank, self.step)
        if starts is None:
            idx = torch.randint(0, len(data), (t.batch_size,), generator=gen)
        else:
            idx = starts[torch.randint(0, len(starts), (t.batch_size,), generator=gen)]
        pushed = self._pushed_forward()
        batch = data.batch(idx, generator=gen, predict=_predictor(self.model, d.device) if pushed else None
                           ).to(d.device)
        if not pushed:   # statistics of the data, not of the model's early mistakes
            update_normalizers(self.model, batch, d)
        if starts is None:
            return self.loss_module(batch.node_features, batch.edge_index, batch.edge_features, batch.target)
        # lead steps: as many as every window in the batch has true history for
        lead = int(torch.randint(0, min(t.unroll_lead, data.lead_room(idx)) + 1, (), generator=gen)) \
            if t.unroll_lead else 0
        u = data.unrolled_batch(idx, t.unroll, lead).to(d.device)
        return self.loss_module(u.positions, u.edge_box, u.edge_index, u.rest_length, u.node_graph, lead)

    def _pushed_forward(self) -> bool:
        """Whether this step's inputs are the model's own prediction: the same draw on every rank
        (the normaliser all-reduce must happen on all or none)."""
        p = self.t.pushforward
        return p > 0 and float(torch.rand((), generator=_batch_generator(self.t.seed, 0, self.step))) < p

    # --- after a step: log, validate, checkpoint

    def after_step(self, loss: float) -> bool:
        """Log, validate and checkpoint as due after a step of `loss`; True when the time limit stops the run."""
        self.losses.append(loss)
        self.first_loss = loss if self.first_loss is None else self.first_loss
        if self.bar is not None:
            self.bar.update(1)
        if self._due(self.t.log_every):
            self._log_loss()
        stop = self._time_is_up()
        validate = self.val_set is not None and (self._due(self.t.val_every) or stop)
        if self.d.main and validate:
            self._validate()
        if self.d.main and (self._due(self.t.ckpt_every) or stop):
            self._checkpoint("last.pt", {**self.last_metrics, "best_val_mse": self.best, "loss": loss})
        if validate or stop:
            self.d.barrier()
        return stop

    def _due(self, every: int) -> bool:
        """Every `every` steps, and at the last."""
        return self.step % every == 0 or self.step == self.t.steps

    def _log_loss(self) -> None:
        mean_loss = float(np.mean(self.losses))
        self.losses.clear()
        lr = self.optimizer.param_groups[0]["lr"]
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{mean_loss:.4g}", lr=f"{lr:.3g}")
        self._record({"step": self.step, "loss": mean_loss, "lr": lr, "elapsed_s": time.perf_counter() - self.t_start})

    def _time_is_up(self) -> bool:
        """train.time_limit passed (on any rank: all ranks stop at the same step)."""
        limit_s = self.t.time_limit * 60.0
        stop = limit_s > 0 and time.perf_counter() - self.t_start > limit_s
        if self.d.active:
            flag = torch.tensor([1.0 if stop else 0.0], device=self.d.device)
            stop = bool(self.d.all_reduce(flag).item() > 0)
        return stop

    def _validate(self) -> None:
        """Validation metrics into metrics.jsonl and the log; best.pt when val_mse is the lowest yet."""
        self.last_metrics = evaluate(self.model, self.val_set, self.t, self.d.device)
        self._record({"step": self.step, **self.last_metrics})
        msg = ", ".join(f"{k} {v:.4g}" for k, v in self.last_metrics.items())
        (self.bar.write if self.bar is not None else self.log)(f"step {self.step}: {msg}")
        if self.last_metrics.get("val_mse", math.inf) < self.best:
            self.best = self.last_metrics["val_mse"]
            self._checkpoint("best.pt", {**self.last_metrics, "best_val_mse": self.best})

    # --- outputs

    def _open_outputs(self) -> None:
        """On rank 0: the output folder, config.yaml, the start-up line and metrics.jsonl; the progress bar."""
        if self.d.main:
            self.out.mkdir(parents=True, exist_ok=True)
            with open(self.out / "config.yaml", "w") as f:
                yaml.safe_dump(self.cfg.to_dict(), f, sort_keys=False)
            self.log(self._describe())
            self.metrics_file = open(self.out / "metrics.jsonl", "a")
        self.t_start = time.perf_counter()
        if self.d.main and self.t.progress and self.step < self.t.steps:
            from tqdm import tqdm

            self.bar = tqdm(total=self.t.steps, initial=self.step, desc="train", unit="step", file=sys.stderr,
                            dynamic_ncols=True)

    def _describe(self) -> str:
        t, m, d = self.t, self.cfg.model, self.d
        return (f"lmp-gnn {__version__} train: {len(self.train_set.graphs)} train trajectories "
                f"({len(self.train_set)} windows), {len(self.val_set.graphs) if self.val_set else 0} val; "
                f"model h={m.history} k={m.layers} latent={m.latent}; "
                f"{sum(p.numel() for p in self.model.parameters())} parameters; device {d.device}, "
                f"{d.world} process(es), {torch.get_num_threads()} thread(s); step {self.step} -> {t.steps}" +
                (f"; {t.unroll}-step unrolled loss" if t.unroll > 1 else "") +
                (f" after up to {t.unroll_lead} learned steps" if t.unroll_lead else "") +
                (f", strain part weighted {t.strain_weight:g} more" if t.strain_weight else "") +
                (f"; weights from {t.init}" if self.fine_tuning else ""))

    def _record(self, entry: dict) -> None:
        if self.metrics_file is not None:
            self.metrics_file.write(json.dumps(entry) + "\n")
            self.metrics_file.flush()

    def _checkpoint(self, name: str, metrics: dict) -> Path:
        return save_checkpoint(self.out / name, model=self.model, optimizer=self.optimizer, scheduler=self.scheduler,
                               step=self.step, train_config=self.cfg.to_dict(), data_meta=self.data_meta,
                               metrics=metrics)

    def _summary(self, stopped_by_time: bool) -> dict:
        out = self.out
        summary = {"step": self.step, "steps": self.t.steps, "first_loss": self.first_loss,
                   "stopped_by_time_limit": stopped_by_time, "metrics": self.last_metrics, "best_val_mse": self.best,
                   "last": str(out / "last.pt"), "best": str(out / "best.pt") if (out / "best.pt").exists() else None,
                   "elapsed_s": time.perf_counter() - self.t_start, "world_size": self.d.world}
        if self.d.main:
            self.log(f"done: step {self.step}/{self.t.steps}" + (" (time limit)" if stopped_by_time else "") +
                     f", checkpoint {out / 'last.pt'}")
        return summary
