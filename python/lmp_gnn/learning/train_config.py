"""The typed configuration of `lmp-gnn train`: one dataclass per section of the YAML file.

A training config (examples/train_small.yaml) has three sections and an output folder:

    data:  DataConfig   trajectories, validation split, input noise, event filter
    model: ModelConfig  the network's hyper-parameters (lmp_gnn.learning.model)
    train: LoopConfig   optimiser, batches, loss, validation, checkpoints, run limits
    out:   str          folder of checkpoints, metrics.jsonl and config.yaml

`TrainConfig` holds the four. Keys left out keep the defaults below. Every value is checked
when its dataclass is constructed: an unknown key, a value of the wrong type or one out of
range raises `ConfigError` naming the key, the value and what is expected (the model section
raises ModelConfig's ValueError). Floats may be given as ints or as numeric strings (YAML 1.1
reads `1e-4` as a string).

`load_config` is the one place a run's config is built: the YAML file (data paths relative
to its folder), then overrides (the CLI's flags and `--set`), then `TrainConfig.from_dict`.
Checkpoints store `TrainConfig.to_dict()` as `train_config`, which `from_dict` reads back
(a dict of an older version lacking newer keys gets their defaults).
"""

from __future__ import annotations

import copy
import math
import numbers
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from lmp_gnn.learning.dataset import NOISE_TARGETS
from lmp_gnn.learning.model import ModelConfig

DTYPES = ("float32", "float64")


class ConfigError(ValueError):
    """A training configuration with unknown keys or bad values."""


# ----------------------------------------------------------------------------- value checks

def _integer(key: str, value: Any, minimum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or \
            (minimum is not None and value < minimum):
        expected = ("an integer" if minimum is None else
                    "a positive integer" if minimum == 1 else f"an integer >= {minimum}")
        raise ConfigError(f"{key}: expected {expected}, got {value!r}")
    return int(value)


def _number(key: str, value: Any, minimum: float = 0.0, *, above: bool = False, maximum: float = math.inf) -> float:
    """`value` as a finite float in [minimum, maximum] ((minimum, maximum] if `above`)."""
    x = None
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        x = float(value)
    elif isinstance(value, str):
        try:
            x = float(value)
        except ValueError:
            pass
    if x is None or not math.isfinite(x) or x < minimum or (above and x == minimum) or x > maximum:
        bounds = f"{'>' if above else '>='} {minimum:g}" + (f" and <= {maximum:g}" if maximum < math.inf else "")
        raise ConfigError(f"{key}: expected a number {bounds}, got {value!r}")
    return x


def _choice(key: str, value: Any, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise ConfigError(f"{key}: expected one of {', '.join(choices)}, got {value!r}")
    return value


def _paths(key: str, value: Any) -> list[str]:
    """A list of path strings from a path, a list of them or None."""
    items = [] if value is None else list(value) if isinstance(value, (list, tuple)) else [value]
    for p in items:
        if not isinstance(p, (str, os.PathLike)):
            raise ConfigError(f"{key}: expected trajectory files, directories or globs, got {p!r} in {value!r}")
    return [str(p) for p in items]


def _device(key: str, value: Any) -> str:
    import torch

    ok = isinstance(value, str)
    if ok and value != "auto":
        try:
            torch.device(value)
        except RuntimeError:
            ok = False
    if not ok:
        raise ConfigError(f"{key}: expected auto, cpu, cuda or cuda:N, got {value!r}")
    return value


def _section(cls: type, key: str, values: Any) -> Any:
    """`cls(**values)`, naming the section's unknown keys (all its keys are optional)."""
    if not isinstance(values, dict):
        raise ConfigError(f"config section '{key}': expected a mapping, got {type(values).__name__}")
    _known_keys(cls, values, f"{key}.")
    return cls(**values)


def _known_keys(cls: type, values: dict, prefix: str) -> None:
    """Raise ConfigError naming the first key of `values` that is not a field of `cls`."""
    known = [f.name for f in fields(cls)]
    for name in values:
        if name not in known:
            raise ConfigError(f"unknown config key '{prefix}{name}'; expected one of {sorted(known)}")


# ----------------------------------------------------------------------------- sections

@dataclass
class DataConfig:
    """The `data` section: which trajectories train and validate, and how windows are made.

    Attributes:
        train: trajectory npz files, directories or globs (docs/formats.md).
        val: validation trajectories; empty: hold out `val_fraction` of the training networks.
        val_fraction: share of networks held out when `val` is empty, in [0, 1).
        split_seed: seed of that split (lmp_gnn.learning.dataset.split_by_network).
        noise_std: random-walk noise on the newest input velocity, distance/step; 0 = off.
        noise_target: what the target undoes: velocity (GNS) or position (lmp_gnn.learning.dataset).
        event_ratio: leave out windows with accelerations above this times the trajectory's
            median (start of compression, snap-through events); 0 keeps all.
    """

    train: list[str] = field(default_factory=list)
    val: list[str] = field(default_factory=list)
    val_fraction: float = 0.1
    split_seed: int = 0
    noise_std: float = 0.0
    noise_target: str = "velocity"
    event_ratio: float = 100.0

    def __post_init__(self) -> None:
        self.train = _paths("data.train", self.train)
        self.val = _paths("data.val", self.val)
        self.val_fraction = _number("data.val_fraction", self.val_fraction, maximum=1.0)
        if self.val_fraction == 1.0:
            raise ConfigError("data.val_fraction: expected a number >= 0 and < 1, got 1.0")
        self.split_seed = _integer("data.split_seed", self.split_seed)
        self.noise_std = _number("data.noise_std", self.noise_std)
        self.noise_target = _choice("data.noise_target", self.noise_target, NOISE_TARGETS)
        self.event_ratio = _number("data.event_ratio", self.event_ratio)


@dataclass
class LoopConfig:
    """The `train` section: the optimisation loop.

    Attributes:
        steps: optimiser steps (batches per process); the learning rate decays over them.
        batch_size: graphs (windows) per batch per process.
        lr: initial learning rate (Adam).
        lr_final: learning rate at `steps`: lr(s) = lr (lr_final / lr)^(s / steps).
        seed: seed of the weights' initialisation and of every batch's draw.
        dtype: float32 or float64, of parameters and features.
        device: auto (cuda when available), cpu, cuda or cuda:N.
        num_threads: torch intra-op threads per process; 0 = leave torch's default.
        grad_clip: maximum gradient norm; 0 = off.
        pushforward: share of batches, in [0, 1], whose inputs are the model's own one-step
            prediction.
        unroll: K, learned steps per training window with the loss over all of them; 1 = the
            one-step loss.
        unroll_lead: up to this many learned steps without gradients before the unrolled loss
            (needs unroll > 1).
        strain_weight: extra weight of the homogeneous-strain part of the unrolled loss's error
            (lmp_gnn.learning.train.strain_part; needs unroll > 1).
        init: checkpoint whose weights and normalisers start a fresh run (fine-tuning); null =
            fresh weights. Ignored with --resume.
        log_every: steps between loss lines in metrics.jsonl.
        val_every: steps between validations (and at the end).
        val_windows: validation windows of the one-step MSE (evenly spaced); 0 = none.
        rollout_steps: learned steps of the validation rollout; 0 = none.
        rollout_trajectories: validation trajectories rolled out.
        rollout_start: the rollout starts at snapshot h + rollout_start (past the start-up;
            docs/protocol.md).
        ckpt_every: steps between writes of last.pt (and at the end).
        time_limit: minutes; 0 = none. The run stops cleanly at the limit and writes last.pt.
        progress: a progress bar on stderr.
    """

    steps: int = 10000
    batch_size: int = 8
    lr: float = 1.0e-4
    lr_final: float = 1.0e-6
    seed: int = 0
    dtype: str = "float32"
    device: str = "auto"
    num_threads: int = 0
    grad_clip: float = 0.0
    pushforward: float = 0.0
    unroll: int = 1
    unroll_lead: int = 0
    strain_weight: float = 0.0
    init: str | None = None
    log_every: int = 50
    val_every: int = 1000
    val_windows: int = 512
    rollout_steps: int = 20
    rollout_trajectories: int = 4
    rollout_start: int = 2
    ckpt_every: int = 1000
    time_limit: float = 0.0
    progress: bool = True

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "unroll", "log_every", "val_every", "ckpt_every"):
            setattr(self, name, _integer(f"train.{name}", getattr(self, name), 1))
        for name in ("num_threads", "unroll_lead", "val_windows", "rollout_steps", "rollout_trajectories",
                     "rollout_start"):
            setattr(self, name, _integer(f"train.{name}", getattr(self, name), 0))
        self.seed = _integer("train.seed", self.seed)
        self.lr = _number("train.lr", self.lr, above=True)
        self.lr_final = _number("train.lr_final", self.lr_final, above=True)
        for name in ("grad_clip", "strain_weight", "time_limit"):
            setattr(self, name, _number(f"train.{name}", getattr(self, name)))
        self.pushforward = _number("train.pushforward", self.pushforward, maximum=1.0)
        self.dtype = _choice("train.dtype", self.dtype, DTYPES)
        self.device = _device("train.device", self.device)
        if self.init is not None and not isinstance(self.init, (str, os.PathLike)):
            raise ConfigError(f"train.init: expected a checkpoint path or null, got {self.init!r}")
        self.init = None if self.init is None else str(self.init)
        if not isinstance(self.progress, bool):
            raise ConfigError(f"train.progress: expected true or false, got {self.progress!r}")
        if self.unroll_lead > 0 and self.unroll == 1:
            raise ConfigError("train.unroll_lead leads into the unrolled loss; expected train.unroll > 1 with it")
        if self.strain_weight > 0 and self.unroll == 1:
            raise ConfigError("train.strain_weight weighs the unrolled loss's position error; expected "
                              "train.unroll > 1 with it")


@dataclass
class TrainConfig:
    """A whole training run: the `data`, `model` and `train` sections and the output folder `out`."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: LoopConfig = field(default_factory=LoopConfig)
    out: str = "runs/train"

    def __post_init__(self) -> None:
        for name, cls in (("data", DataConfig), ("model", ModelConfig), ("train", LoopConfig)):
            if not isinstance(getattr(self, name), cls):
                raise ConfigError(f"config section '{name}': expected a {cls.__name__}, "
                                  f"got {type(getattr(self, name)).__name__}")
        if not isinstance(self.out, (str, os.PathLike)):
            raise ConfigError(f"out: expected a folder path, got {self.out!r}")
        self.out = str(self.out)
        t = self.train
        if t.unroll > 1 and (t.pushforward > 0 or self.data.noise_std > 0):
            raise ConfigError("train.unroll > 1 trains on the model's own rollouts; expected train.pushforward = 0 "
                              f"and data.noise_std = 0 with it, got {t.pushforward} and {self.data.noise_std}")

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        """From the nested dict form (a YAML file's, a checkpoint's `train_config`); missing keys keep
        their defaults, unknown keys are errors."""
        if not isinstance(d, dict):
            raise ConfigError(f"training config: expected a mapping, got {type(d).__name__}")
        _known_keys(cls, d, "")
        return cls(data=_section(DataConfig, "data", d.get("data", {})),
                   model=_section(ModelConfig, "model", d.get("model", {})),
                   train=_section(LoopConfig, "train", d.get("train", {})),
                   out=d.get("out", cls.out))

    def to_dict(self) -> dict:
        """The nested dict form (plain lists, numbers and strings: YAML- and checkpoint-safe)."""
        return asdict(self)

    def updated(self, overrides: dict) -> TrainConfig:
        """A copy with `overrides` (same nesting as `to_dict`) applied, checked as a whole."""
        return TrainConfig.from_dict(_merge(self.to_dict(), overrides))


# ----------------------------------------------------------------------------- building

def _merge(base: dict, override: dict) -> dict:
    """`base` with `override`'s values; mappings in both are merged key by key."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def load_config(path: str | os.PathLike | None = None, overrides: dict | None = None) -> TrainConfig:
    """The defaults updated by a YAML file, then by `overrides` (same nesting); unknown keys are errors.

    Data paths in the file are taken relative to the file's folder when they do not exist
    relative to the current directory.
    """
    given: dict = {}
    if path is not None:
        with open(path) as f:
            given = yaml.safe_load(f) or {}
        if not isinstance(given, dict):
            raise ConfigError(f"{path}: expected a YAML mapping, got {type(given).__name__}")
        data = given.get("data")
        if isinstance(data, dict):
            base = Path(path).parent
            for key in ("train", "val"):
                if key in data:
                    data[key] = [_relative_to(base, p) for p in _paths(f"data.{key}", data[key])]
    return TrainConfig.from_dict(_merge(given, overrides or {}))


def _relative_to(base: Path, p: str) -> str:
    q = Path(os.path.expanduser(p))
    if q.is_absolute() or (Path.cwd() / q).exists() or not (base / q).exists():
        return str(q)
    return str(base / q)
