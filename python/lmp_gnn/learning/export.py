"""Checkpoints and exported TorchScript models.

- `save_checkpoint` / `load_checkpoint`: the training state (`.pt`, torch.save of a dict):
  model hyper-parameters, model state (normalisers included), optimizer and scheduler
  state, step, training config, training-data metadata, package version.
- `export_checkpoint`: checkpoint -> TorchScript file for `fix gnn/rollout`, with the
  metadata of docs/formats.md ("Exported models") as extra files.
- `load_exported`: TorchScript file -> (module, metadata), refusing files whose metadata the
  fix would refuse, and files whose weights do not give their metadata's `weights_crc32`.

The metadata keys, types and valid values are lmp_gnn.step.metadata's (the fix's parser,
csrc/gnn_metadata.cpp, is the same schema).

The exported module's contract (docs/formats.md):

    forward(node_features [N, 2h], edge_index [2, E] int64, edge_features [E, 4]) -> [N, 2]

raw features in, raw accelerations (distance/step²) out, in the exported dtype.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import warnings
import zipfile
import zlib
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from lmp_gnn import __version__
from lmp_gnn.learning.model import DIMENSION, GNNSimulator, ModelConfig, build_model
from lmp_gnn.step.features import EDGE_DIM, FEATURE_VERSION
from lmp_gnn.step.metadata import DATA_KEYS, DTYPES, METADATA_KEYS, MetadataError, model_metadata, parse, to_strings

CHECKPOINT_FORMAT = 1

# Extra files of an exported model besides METADATA_KEYS (lmp_gnn.step.metadata), not part of the
# fix's contract: the full hyper-parameters as JSON, for people and tools.
HPARAMS_KEY = "hparams"

# Training-data metadata a checkpoint must carry to be exported (lmp_gnn.step.metadata.DATA_KEYS).
DATA_META_KEYS = tuple(DATA_KEYS)

@contextlib.contextmanager
def quiet_jit():
    """torch >= 2.9 marks torch.jit deprecated; TorchScript is still the file the LAMMPS fix loads."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, message=r".*torch\.jit.*")
        yield


_DTYPES = {name: getattr(torch, name) for name in DTYPES}


class CheckpointError(ValueError):
    """A checkpoint that cannot be used by this version of lmp-gnn."""


class ExportedModelError(ValueError):
    """An exported model file without the metadata docs/formats.md requires."""


def save_checkpoint(path: str | os.PathLike, *, model: GNNSimulator, optimizer: torch.optim.Optimizer | None,
                    scheduler: Any | None, step: int, train_config: dict, data_meta: dict,
                    metrics: dict | None = None, rng_state: dict | None = None) -> Path:
    """Write a training checkpoint atomically (temporary file + rename).

    `data_meta` holds the training data's delta_l, strain_rate, timestep and
    md_steps_per_step (written into exported models).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "checkpoint_format": CHECKPOINT_FORMAT,
        "lmp_gnn_version": __version__,
        "feature_version": FEATURE_VERSION,
        "hparams": model.config.to_dict(),
        "model_state": model.state_dict(),
        "optimizer_state": optimizer.state_dict() if optimizer is not None else None,
        "scheduler_state": scheduler.state_dict() if scheduler is not None else None,
        "step": int(step),
        "train_config": train_config,
        "data_meta": data_meta,
        "metrics": metrics or {},
        "rng_state": rng_state,
    }
    tmp = path.with_name(f".{path.name}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """Read a checkpoint and check it is one this version can use.

    Returns the checkpoint dict (see `save_checkpoint`). Raises `CheckpointError` naming
    what is wrong: not a checkpoint, other checkpoint format, other feature version.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if _is_torchscript(path):
        raise CheckpointError(f"{path}: expected an lmp-gnn training checkpoint, got an exported TorchScript model "
                              f"(use load_exported for those)")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:  # torch raises many types (pickle, zip, runtime) for foreign files
        raise CheckpointError(f"{path}: not a readable torch checkpoint ({type(exc).__name__}: {exc})") from exc
    if not isinstance(ckpt, dict) or "checkpoint_format" not in ckpt:
        raise CheckpointError(f"{path}: expected an lmp-gnn training checkpoint (a dict with 'checkpoint_format'), "
                              f"got {type(ckpt).__name__}; is this an exported model? (use load_exported)")
    if ckpt["checkpoint_format"] != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: expected checkpoint_format {CHECKPOINT_FORMAT}, "
                              f"got {ckpt['checkpoint_format']} "
                              f"(written by lmp-gnn {ckpt.get('lmp_gnn_version', '?')}, this is {__version__})")
    if ckpt.get("feature_version") != FEATURE_VERSION:
        raise CheckpointError(f"{path}: expected feature_version {FEATURE_VERSION}, got {ckpt.get('feature_version')} "
                              f"(written by lmp-gnn {ckpt.get('lmp_gnn_version', '?')}, this is {__version__})")
    for key in ("hparams", "model_state", "step", "data_meta"):
        if key not in ckpt:
            raise CheckpointError(f"{path}: checkpoint is missing '{key}'")
    state = ckpt["model_state"]
    if not isinstance(state, dict) or not any(isinstance(v, torch.Tensor) and k.endswith("weight")
                                              for k, v in state.items()):
        raise CheckpointError(f"{path}: expected model weights in the checkpoint's 'model_state', got none")
    return ckpt


def _is_torchscript(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return any(name.endswith("/constants.pkl") or "/code/" in name for name in z.namelist())


def model_from_checkpoint(ckpt: dict | str | os.PathLike) -> GNNSimulator:
    """The trained `GNNSimulator` (eval mode, CPU, parameters in the dtype trained)."""
    if not isinstance(ckpt, dict):
        ckpt = load_checkpoint(ckpt)
    model = build_model(ModelConfig.from_dict(ckpt["hparams"]))
    state = ckpt["model_state"]
    first = next(iter(v for k, v in state.items() if k.endswith("weight")))
    model.to(first.dtype)
    # normaliser statistics stay float64 whatever the parameter dtype
    for norm in (model.node_norm, model.edge_norm, model.target_norm):
        norm.double()
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:    # torch's message spans lines; the first names the problem
        first = " ".join(str(exc).split())
        raise CheckpointError(f"checkpoint weights do not fit its model hyper-parameters: {first}") from exc
    return model.eval()


def non_finite_weights(model: torch.nn.Module) -> list[str]:
    """Names of the parameters and buffers of `model` holding NaN or inf (a diverged training)."""
    return [name for name, t in (*model.named_parameters(), *model.named_buffers())
            if t.is_floating_point() and not bool(torch.isfinite(t).all())]


def export_metadata(ckpt: dict, dtype: str) -> dict[str, str]:
    """The extra files of an exported model (docs/formats.md), all plain strings: the model's
    history and layers, the training data's DATA_META_KEYS, `dtype` (lmp_gnn.step.metadata.model_metadata),
    and the data's box_length when the checkpoint has it (checkpoints of older versions do not)."""
    meta = ckpt["data_meta"]
    missing = [k for k in DATA_META_KEYS if meta.get(k) is None]
    if missing:
        raise CheckpointError(f"checkpoint data_meta is missing {missing}: the training trajectories' metadata "
                              f"must carry {list(DATA_KEYS.values())} (docs/formats.md, Trajectories)")
    hp = ckpt["hparams"]
    try:
        return to_strings(model_metadata(history=hp["history"], layers=hp["layers"], dtype=dtype,
                                         box_length=meta.get("box_length"),
                                         **{key: meta[key] for key in DATA_META_KEYS}))
    except MetadataError as exc:
        raise CheckpointError(f"checkpoint: {exc}") from None


def weights_checksum(module: torch.nn.Module) -> str:
    """The `weights_crc32` metadata of a model: zlib's CRC-32, as 8 lowercase hex digits, of every
    parameter and buffer sorted by name, each as its UTF-8 name, a NUL byte and its raw bytes
    (contiguous, host byte order: little-endian on every platform lmp-gnn builds on).

    csrc/gnn_model.cpp computes the same for the fix; torch loads a file whose tensor bytes were
    damaged without complaint, so this is what notices it.
    """
    tensors = [*module.named_parameters(remove_duplicate=False), *module.named_buffers(remove_duplicate=False)]
    crc = 0
    for name, tensor in sorted(tensors, key=lambda item: item[0]):
        crc = zlib.crc32(name.encode() + b"\0", crc)
        crc = zlib.crc32(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes(), crc)
    return f"{crc:08x}"


def script_model(model: GNNSimulator, dtype: str = "float32") -> torch.jit.ScriptModule:
    """TorchScript of `model` (a copy) in `dtype`, eval mode, CPU, normalisers frozen."""
    if dtype not in _DTYPES:
        raise ValueError(f"expected dtype in {sorted(_DTYPES)}, got {dtype!r}")
    clone = build_model(model.config)
    clone.load_state_dict(model.state_dict())
    clone = clone.to(device="cpu", dtype=_DTYPES[dtype]).eval()
    for p in clone.parameters():
        p.requires_grad_(False)
    with quiet_jit():
        return torch.jit.script(clone)


def export_checkpoint(ckpt_path: str | os.PathLike, out_path: str | os.PathLike, dtype: str = "float32",
                      check: bool = True) -> dict[str, str]:
    """Checkpoint -> TorchScript file with metadata; returns the metadata written.

    With `check`, the file is loaded back and its output on a small random graph is compared
    with the eager model's (relative 1e-5 in float32, 1e-12 in float64).
    """
    ckpt = load_checkpoint(ckpt_path)
    try:
        model = model_from_checkpoint(ckpt)
    except CheckpointError as exc:
        raise CheckpointError(f"{ckpt_path}: {exc}") from None
    bad = non_finite_weights(model)
    if bad:     # checked before anything is written: a model of NaN would only fail later, in LAMMPS
        raise CheckpointError(f"{ckpt_path}: expected finite model weights, got NaN or inf in {len(bad)} tensor(s) "
                              f"({', '.join(bad[:3])}{', ...' if len(bad) > 3 else ''}); the training diverged, "
                              "export an earlier checkpoint")
    meta = export_metadata(ckpt, dtype)
    extra = dict(meta)
    extra[HPARAMS_KEY] = json.dumps({"model": ckpt["hparams"], "step": ckpt["step"],
                                     "metrics": ckpt.get("metrics", {}), "data": ckpt["data_meta"]},
                                    sort_keys=True, default=str)
    scripted = script_model(model, dtype)
    meta["weights_crc32"] = extra["weights_crc32"] = weights_checksum(scripted)
    out_path = Path(out_path)
    _save_atomically(scripted, out_path, extra)
    if check:
        _check_export(out_path, model, dtype)
    return meta


class ZeroAcceleration(torch.nn.Module):
    """The zero-acceleration predictor a ≡ 0 as a model: r(t+1) = 2 r(t) - r(t-1) (2D: DIMENSION)."""

    def forward(self, node_features: Tensor, edge_index: Tensor, edge_features: Tensor) -> Tensor:
        return torch.zeros(node_features.shape[0], 2, dtype=node_features.dtype,
                           device=node_features.device)


def export_zero_acceleration(like: str | os.PathLike, out_path: str | os.PathLike) -> dict[str, Any]:
    """The zero-acceleration predictor as a TorchScript file with the metadata of the exported model
    `like` (its history, strain step, box_length, dtype, ...: the fix takes the same steps, checks
    and box rule, only the model call differs); no weights, hence no weights_crc32. Returns the
    metadata written. fix gnn/rollout in mode adaptive runs it as projective integration (linear
    extrapolation checked by the live error signal, corrected by MD; docs/fix_gnn_rollout.md)."""
    _, meta = load_exported(like)    # a model this version reads, checksum included
    raw = to_strings({**meta, "weights_crc32": None})
    with quiet_jit():
        zero = torch.jit.script(ZeroAcceleration())
    _save_atomically(zero, Path(out_path), raw)
    return load_exported(out_path)[1]


def _save_atomically(module: torch.jit.ScriptModule, out_path: Path, extra_files: dict[str, str]) -> None:
    """torch.jit.save under the final name in a private folder, then rename: atomic, and the archive's
    inner folder is named after the file, so it stays the user's name."""
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_path.parent, prefix=".export.") as tmpdir:
        tmp = Path(tmpdir) / out_path.name
        with quiet_jit():
            torch.jit.save(module, str(tmp), _extra_files=extra_files)
        os.replace(tmp, out_path)


def _check_export(path: Path, model: GNNSimulator, dtype: str) -> dict[str, Any]:
    """The exported file's output on a small random graph against the eager model's; its metadata."""
    loaded, meta = load_exported(path)
    g = torch.Generator().manual_seed(0)
    n, e, h = 40, 120, int(meta["history"])
    tdt = _DTYPES[dtype]
    node_mean = model.node_norm.mean.to(tdt)
    node_std = model.node_norm.std.to(tdt)
    nf = torch.randn(n, 2 * h, generator=g, dtype=tdt) * node_std + node_mean
    edge_std, edge_mean = model.edge_norm.std[:EDGE_DIM].to(tdt), model.edge_norm.mean[:EDGE_DIM].to(tdt)
    ef = torch.randn(e, EDGE_DIM, generator=g, dtype=tdt) * edge_std + edge_mean
    ei = torch.randint(0, n, (2, e), generator=g)
    ref_model = build_model(model.config)
    ref_model.load_state_dict(model.state_dict())
    ref_model = ref_model.to(tdt).eval()
    with torch.no_grad():
        want = ref_model(nf, ei, ef)
        got = loaded(nf, ei, ef)
    tol = 1e-5 if dtype == "float32" else 1e-12
    err = float((got - want).abs().max() / want.abs().max().clamp_min(torch.finfo(tdt).tiny))
    if got.dtype != tdt or got.shape != (n, DIMENSION) or not err <= tol:
        raise RuntimeError(f"{path}: exported model disagrees with the eager model: expected relative error <= {tol} "
                           f"and output [{n}, {DIMENSION}] {tdt}, got {err:.3g}, {tuple(got.shape)} {got.dtype}")
    return meta


def rescript_exported(src: str | os.PathLike, out_path: str | os.PathLike) -> dict[str, Any]:
    """Re-save the exported GNNSimulator `src` with this version's model code: the same weights and
    metadata (byte for byte), the forward of lmp_gnn.learning.model as it is now (e.g. a faster edge
    path), checked against the eager model like `export_checkpoint`. Returns the metadata."""
    src = Path(src)
    module, meta, raw = _load_exported(src)       # checks format and checksum
    if HPARAMS_KEY not in meta:
        raise ExportedModelError(f"{src}: no {HPARAMS_KEY} in its metadata; re-export it from its checkpoint")
    model = build_model(ModelConfig.from_dict(meta[HPARAMS_KEY]["model"]))
    model.load_state_dict(module.state_dict())
    dtype = str(meta["dtype"])
    out_path = Path(out_path)
    _save_atomically(script_model(model, dtype), out_path, {k: v for k, v in raw.items() if v})
    return _check_export(out_path, model, dtype)


def load_exported(path: str | os.PathLike, device: str | torch.device = "cpu"
                  ) -> tuple[torch.jit.ScriptModule, dict[str, Any]]:
    """Load an exported model and its metadata.

    Returns (module, metadata) with metadata values typed by lmp_gnn.step.metadata.parse: ints for
    lmp_gnn_format, feature_version, history, layers, dimension; floats for delta_l, strain_rate,
    timestep, md_steps_per_step; strings for dtype and lmp_gnn_version; box_length a float or None
    (not recorded); weights_crc32 a string or None (not recorded); plus `hparams` (dict) when
    present. Raises `ExportedModelError` if a key is missing or has a value this version cannot use,
    or the weights do not give weights_crc32, with the message of the fix.
    """
    module, meta, _ = _load_exported(Path(path), device)
    return module, meta


def _load_exported(path: Path, device: str | torch.device = "cpu"
                   ) -> tuple[torch.jit.ScriptModule, dict[str, Any], dict[str, str]]:
    """`load_exported`, and the metadata files as stored ({key: raw string}, "" for keys the file lacks)."""
    if not path.is_file():
        raise ExportedModelError(f"{path}: no such model file")
    extra = {k: "" for k in (*METADATA_KEYS, HPARAMS_KEY)}
    try:
        with quiet_jit():
            module = torch.jit.load(str(path), map_location=device, _extra_files=extra)
    except RuntimeError as exc:
        raise ExportedModelError(f"{path}: not a TorchScript file ({exc}); "
                                 f"did you pass a training checkpoint? Run `lmp-gnn export` on it") from exc
    raw = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in extra.items()}
    try:
        meta = parse(raw, f"model file {path}")
    except MetadataError as exc:
        raise ExportedModelError(str(exc)) from None
    if meta["weights_crc32"] is not None:
        got = weights_checksum(module)
        if got != meta["weights_crc32"]:
            raise ExportedModelError(f"model file {path}: weights do not match the checksum in its metadata "
                                     f"(weights_crc32 {meta['weights_crc32']}, the weights give {got}); "
                                     "the file is damaged")
    if raw[HPARAMS_KEY]:
        meta[HPARAMS_KEY] = json.loads(raw[HPARAMS_KEY])
    return module, meta, raw
