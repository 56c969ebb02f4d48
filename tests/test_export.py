"""Export round trip, metadata keys, refusal of incomplete files and incompatible checkpoints."""

import re
import zipfile

import pytest
import torch

from lmp_gnn.cli import main as cli_main
from lmp_gnn.learning.export import (
    METADATA_KEYS,
    CheckpointError,
    ExportedModelError,
    export_checkpoint,
    load_checkpoint,
    load_exported,
    model_from_checkpoint,
    rescript_exported,
    save_checkpoint,
)
from lmp_gnn.learning.model import GNNSimulator, ModelConfig
from lmp_gnn.step.metadata import OPTIONAL_KEYS

torch.set_num_threads(1)
# TorchScript is the file format of fix gnn/rollout; torch >= 2.9 marks torch.jit deprecated
pytestmark = pytest.mark.filterwarnings(r"ignore:.*torch\.jit.*:DeprecationWarning")

DATA_META = {"delta_l": 0.002, "strain_rate": 2.5e-6, "timestep": 0.05, "md_steps_per_step": 937.6,
             "box_length": 31.25}


def graph(n=25, m=60, h=2, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    bonds = torch.randint(0, n, (m, 2), generator=g)
    ei = torch.cat([bonds.t(), bonds.t().flip(0)], dim=1)
    nf = torch.randn(n, 2 * h, generator=g, dtype=torch.float64) * 1e-3 + 2e-4
    ef = torch.randn(ei.shape[1], 4, generator=g, dtype=torch.float64) * 0.3 + 1.0
    target = torch.randn(n, 2, generator=g, dtype=torch.float64) * 3e-6
    return nf.to(dtype), ei, ef.to(dtype), target.to(dtype)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    model = GNNSimulator(ModelConfig(history=2, layers=2, latent=32, hidden=32))
    nf, ei, ef, target = graph()
    model.update_normalizers(nf, ef, target)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    path = tmp_path_factory.mktemp("ckpt") / "model.ckpt.pt"
    save_checkpoint(path, model=model, optimizer=opt, scheduler=None, step=7,
                    train_config={"note": "test"}, data_meta=DATA_META)
    return path, model


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_export_round_trip_equals_eager(checkpoint, tmp_path, dtype):
    ckpt_path, model = checkpoint
    out = tmp_path / f"model_{dtype}.pt"
    written = export_checkpoint(ckpt_path, out, dtype=dtype)
    module, meta = load_exported(out)
    tdt = getattr(torch, dtype)
    nf, ei, ef, _ = graph(dtype=tdt, seed=3)
    eager = model_from_checkpoint(ckpt_path).to(tdt)
    with torch.no_grad():
        want = eager(nf, ei, ef)
        got = module(nf, ei, ef)
    assert got.dtype == tdt and got.shape == (nf.shape[0], 2)
    rel = ((got - want).abs().max() / want.abs().max()).item()
    assert rel <= 1e-6, f"expected exported == eager within 1e-6 relative, got {rel:.3g}"
    # the original (float32-trained) model agrees too, at float32 precision
    with torch.no_grad():
        orig = model(nf.float(), ei, ef.float()).to(tdt)
    assert ((got - orig).abs().max() / orig.abs().max()).item() <= 1e-5
    # every key of docs/formats.md, typed
    assert set(METADATA_KEYS) <= set(meta)
    assert written == {k: str(v) if not isinstance(v, float) else repr(v)
                       for k, v in meta.items() if k in METADATA_KEYS}
    assert meta["lmp_gnn_format"] == 1 and meta["feature_version"] == 1
    assert meta["history"] == 2 and meta["layers"] == 2 and meta["dimension"] == 2
    assert meta["delta_l"] == 0.002 and meta["strain_rate"] == 2.5e-6 and meta["timestep"] == 0.05
    assert meta["md_steps_per_step"] == 937.6 and meta["dtype"] == dtype     # a float, not rounded
    assert meta["box_length"] == 31.25                                       # the training data's mean Lx0
    assert meta["hparams"]["model"]["latent"] == 32
    # the archive's extra files are exactly one per key
    with zipfile.ZipFile(out) as z:
        extras = {n.split("/extra/", 1)[1] for n in z.namelist() if "/extra/" in n}
    assert set(METADATA_KEYS) <= extras


# one key in the fast inner loop, every required key with -m slow
@pytest.mark.parametrize("missing", [k if k == "lmp_gnn_format" else pytest.param(k, marks=pytest.mark.slow)
                                     for k in METADATA_KEYS if k not in OPTIONAL_KEYS])
def test_file_missing_a_key_is_refused(checkpoint, tmp_path, missing):
    ckpt_path, _ = checkpoint
    good = tmp_path / "good.pt"
    export_checkpoint(ckpt_path, good, check=False)
    extra = {k: "" for k in METADATA_KEYS}
    module = torch.jit.load(str(good), _extra_files=extra)
    del extra[missing]
    bad = tmp_path / "bad.pt"
    torch.jit.save(module, str(bad), _extra_files=extra)
    # the fix's messages (lmp_gnn.step.metadata)
    expected = (f"model file {bad} is a TorchScript file without lmp-gnn metadata (no 'lmp_gnn_format'); "
                "make one with `lmp-gnn export`" if missing == "lmp_gnn_format" else
                f"model file {bad} lacks metadata '{missing}'; re-export it with `lmp-gnn export`")
    with pytest.raises(ExportedModelError, match=re.escape(expected)):
        load_exported(bad)


def test_checkpoint_without_box_length(checkpoint, tmp_path):
    """A checkpoint of an older lmp-gnn has no box_length in its data_meta: the exported model has
    no box_length file, and it loads (fix gnn/rollout then does not check the box)."""
    ckpt_path, _ = checkpoint
    old = {k: v for k, v in DATA_META.items() if k != "box_length"}
    torch.save(dict(load_checkpoint(ckpt_path), data_meta=old), tmp_path / "old.ckpt.pt")
    written = export_checkpoint(tmp_path / "old.ckpt.pt", tmp_path / "old.pt")
    assert "box_length" not in written
    with zipfile.ZipFile(tmp_path / "old.pt") as z:
        assert not [n for n in z.namelist() if n.endswith("/extra/box_length")]
    _, meta = load_exported(tmp_path / "old.pt")
    assert meta["box_length"] is None and meta["md_steps_per_step"] == 937.6


def test_wrong_format_version_refused(checkpoint, tmp_path):
    ckpt_path, _ = checkpoint
    good = tmp_path / "good.pt"
    export_checkpoint(ckpt_path, good, check=False)
    extra = {k: "" for k in METADATA_KEYS}
    module = torch.jit.load(str(good), _extra_files=extra)
    extra["lmp_gnn_format"] = "2"
    torch.jit.save(module, str(tmp_path / "v2.pt"), _extra_files=extra)
    with pytest.raises(ExportedModelError, match="expected lmp_gnn_format 1, got 2"):
        load_exported(tmp_path / "v2.pt")


def test_checkpoint_refusals(checkpoint, tmp_path):
    ckpt_path, _ = checkpoint
    ckpt = load_checkpoint(ckpt_path)
    assert ckpt["step"] == 7 and ckpt["hparams"]["history"] == 2 and ckpt["lmp_gnn_version"]
    assert ckpt["optimizer_state"] is not None and ckpt["data_meta"] == DATA_META
    for key, value, message in [("checkpoint_format", 99, "expected checkpoint_format 1, got 99"),
                                ("feature_version", 2, "expected feature_version 1, got 2")]:
        bad = dict(ckpt, **{key: value})
        torch.save(bad, tmp_path / "bad.pt")
        with pytest.raises(CheckpointError, match=message):
            load_checkpoint(tmp_path / "bad.pt")
    torch.save({"weights": 1}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="expected an lmp-gnn training checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")
    export_checkpoint(ckpt_path, tmp_path / "exported.pt", check=False)
    with pytest.raises(CheckpointError, match="got an exported TorchScript model"):
        load_checkpoint(tmp_path / "exported.pt")
    with pytest.raises(ExportedModelError, match="not a TorchScript file"):
        load_exported(ckpt_path)
    no_meta = dict(ckpt, data_meta={"delta_l": 0.002})
    torch.save(no_meta, tmp_path / "nometa.pt")
    with pytest.raises(CheckpointError, match="missing.*strain_rate"):
        export_checkpoint(tmp_path / "nometa.pt", tmp_path / "x.pt")


def test_cli_export(checkpoint, tmp_path, capsys):
    ckpt_path, _ = checkpoint
    out = tmp_path / "cli.pt"
    assert cli_main(["export", str(ckpt_path), "-o", str(out), "--dtype", "float64"]) == 0
    _, meta = load_exported(out)
    assert meta["dtype"] == "float64"
    assert "history = 2" in capsys.readouterr().out


def test_cli_export_zero_acceleration(checkpoint, tmp_path, capsys):
    """`lmp-gnn export zero --like MODEL`: a ≡ 0 with MODEL's metadata (no weights_crc32), in MODEL's
    dtype; `zero` without --like, or --like with a checkpoint, is one error line and no file."""
    ckpt_path, _ = checkpoint
    like, out = tmp_path / "like.pt", tmp_path / "zero.pt"
    export_checkpoint(ckpt_path, like, dtype="float64")
    assert cli_main(["export", "zero", "--like", str(like), "-o", str(out)]) == 0
    module, meta = load_exported(out)
    _, like_meta = load_exported(like)
    assert meta == {**{k: v for k, v in like_meta.items() if k != "hparams"}, "weights_crc32": None}
    features = torch.randn(7, 2 * meta["history"], dtype=torch.float64)
    edges = torch.randn(12, 4, dtype=torch.float64)
    a = module(features, torch.zeros(2, 12, dtype=torch.long), edges)
    assert a.dtype == torch.float64 and a.shape == (7, 2) and not a.any()
    capsys.readouterr()
    for argv in (["zero"], [str(ckpt_path), "--like", str(like)]):
        assert cli_main(["export", *argv, "-o", str(tmp_path / "bad.pt")]) == 1
        err = capsys.readouterr().err
        assert err.startswith("lmp-gnn export: error: expected --like MODEL with `zero` and only with it"), err
    assert not (tmp_path / "bad.pt").exists()


@pytest.mark.parametrize("dtype,tol", [("float64", 1e-10), ("float32", 1e-6)])
def test_exported_gnn_runs_in_fix_gnn_rollout_like_the_python_rollout(tmp_path, dtype, tol):
    """The exported GNN (factored message passing, normalisers inside) in real LAMMPS through
    fix gnn/rollout: 20 leap steps == lmp_gnn.step.rollout with the same file (the consumer contract)."""
    import numpy as np

    from fixtures.lammps_run import run_in_process, unwrapped_state, write_history
    from fixtures.lattice import deck_header, triangular_network
    from lmp_gnn.step.features import edge_features, edge_index_from_bonds
    from lmp_gnn.step.rollout import rollout
    from lmp_gnn.step.rules import step_delta_l

    probe = run_in_process("units lj")
    installed = probe.has_style("fix", "gnn/rollout")
    probe.close()
    if not installed:
        pytest.skip("fix gnn/rollout is not installed here (pip install the package; "
                    "tests/test_fix_leap.py requires it)")
    h, n_steps = 2, 20
    net = triangular_network(8, 8, seed=1)
    rng = np.random.default_rng(0)
    affine = np.stack([-1e-4 * net.positions[:, 0], 4e-5 * net.positions[:, 1]], axis=1)
    hist = np.stack([affine * (1 - 0.05 * k) + rng.normal(scale=2e-5, size=affine.shape) for k in range(h)])
    # a model whose normalisers saw features of this network's size, as after training
    torch.manual_seed(0)
    model = GNNSimulator(ModelConfig(history=h, layers=2, latent=32, hidden=32))
    ei = edge_index_from_bonds(torch.from_numpy(net.bonds))
    rest = torch.from_numpy(np.concatenate([net.rest_length, net.rest_length]))
    ef = edge_features(torch.from_numpy(net.positions), torch.from_numpy(net.box), ei, rest)
    nf = torch.from_numpy(hist.transpose(1, 0, 2).reshape(-1, 2 * h))
    model.update_normalizers(nf, ef, torch.from_numpy(rng.normal(scale=1e-6, size=(len(nf), 2))))
    save_checkpoint(tmp_path / "c.pt", model=model, optimizer=None, scheduler=None, step=1, train_config={},
                    data_meta=DATA_META)
    export_checkpoint(tmp_path / "c.pt", tmp_path / "gnn.pt", dtype=dtype)

    snaps = [net.positions]
    for k in range(h):
        snaps.insert(0, snaps[0] - hist[k])
    arrays = {"positions": np.stack(snaps), "box": np.tile(net.box, (h + 1, 1)), "bonds": net.bonds,
              "rest_length": net.rest_length}
    module, meta = load_exported(tmp_path / "gnn.pt")
    # the fix steps by the model's strain: delta_l scaled from the training boxes (31.25) to this one
    delta_l = step_delta_l(meta["delta_l"], meta["box_length"], float(net.box[0]))
    ref = rollout(module, arrays, start=h, n_steps=n_steps, history=h, delta_l=delta_l, dtype=getattr(torch, dtype))
    assert np.abs(ref.accelerations).max() > 1e-8                   # the model does move the nodes

    data_file = net.write_lammps_data(tmp_path / "net.data")
    write_history(tmp_path / "hist.txt", hist)
    lmp = run_in_process(deck_header(str(data_file)) +
                         f"fix g all gnn/rollout {tmp_path / 'gnn.pt'} init file {tmp_path / 'hist.txt'}\n"
                         f"run {n_steps}\n")
    r, _, box = unwrapped_state(lmp)
    lmp.close()
    np.testing.assert_allclose(box, ref.box[-1], rtol=0, atol=tol)
    np.testing.assert_allclose(r, ref.positions[-1], rtol=0, atol=tol)


def damage(src, dst, member: str, at: int = 3) -> None:
    """Copy the model file `src` to `dst` with one byte of the stored tensor `member` (e.g.
    "data/5") inverted: a file damaged on disk or in transfer, which torch reads without complaint."""
    import shutil
    import struct

    shutil.copy(src, dst)
    with zipfile.ZipFile(src) as z:
        info = next(i for i in z.infolist() if i.filename.endswith("/" + member))
    raw = bytearray(dst.read_bytes())
    name_len, extra_len = struct.unpack("<HH", raw[info.header_offset + 26: info.header_offset + 30])
    raw[info.header_offset + 30 + name_len + extra_len + at] ^= 0xFF
    dst.write_bytes(bytes(raw))


def test_damaged_weights_are_refused_by_loader_and_fix(checkpoint, tmp_path):
    """weights_crc32: a byte flipped in any stored tensor is named by load_exported and, with the same
    message, by the fix's TorchScript backend; a model without the key still loads."""
    from fixtures.lammps_run import run_in_process
    from fixtures.lattice import deck_header, triangular_network
    from lmp_gnn.learning.export import weights_checksum

    ckpt_path, _ = checkpoint
    good = tmp_path / "good.pt"
    written = export_checkpoint(ckpt_path, good)
    module, meta = load_exported(good)
    assert meta["weights_crc32"] == written["weights_crc32"] == weights_checksum(module)
    with zipfile.ZipFile(good) as z:
        stored = sorted(n.split("/data/", 1)[1] for n in z.namelist() if "/data/" in n and z.getinfo(n).file_size)
    data = triangular_network(6, 6, seed=1).write_lammps_data(tmp_path / "net.data")
    for member in (f"data/{stored[0]}", f"data/{stored[len(stored) // 2]}"):   # a buffer and a weight
        bad = tmp_path / "bad.pt"
        damage(good, bad, member)
        assert not torch.equal(torch.cat([t.reshape(-1) for t in torch.jit.load(str(bad)).state_dict().values()]),
                               torch.cat([t.reshape(-1) for t in module.state_dict().values()]))
        with pytest.raises(ExportedModelError) as info:
            load_exported(bad)
        message = str(info.value)
        assert message.startswith(f"model file {bad}: weights do not match the checksum in its metadata "
                                   f"(weights_crc32 {meta['weights_crc32']}, the weights give ")
        assert message.endswith("); the file is damaged")
        with pytest.raises(Exception) as info:
            run_in_process(deck_header(data) + f"fix g all gnn/rollout {bad}\n")
        assert str(info.value).splitlines()[0].startswith(f"ERROR: Fix gnn/rollout: {message}")
    # without the key (older files): nothing to check, the file loads in Python and in the fix
    extra = {k: "" for k in METADATA_KEYS}
    scripted = torch.jit.load(str(bad), _extra_files=extra)
    del extra["weights_crc32"]
    torch.jit.save(scripted, str(tmp_path / "old.pt"), _extra_files=extra)
    assert load_exported(tmp_path / "old.pt")[1]["weights_crc32"] is None
    run_in_process(deck_header(data) + f"fix g all gnn/rollout {tmp_path / 'old.pt'}\n").close()


def test_cli_export_refuses_checkpoints_it_cannot_export(checkpoint, tmp_path, capsys):
    """A checkpoint without weights, with weights of another model, or with NaN weights: one line
    naming the file, exit 1, and no model file written."""
    ckpt_path, _ = checkpoint
    ckpt = load_checkpoint(ckpt_path)
    state = ckpt["model_state"]
    first_layers = [k for k in state if k.endswith("layers.0.weight")]
    nan_state = {k: (torch.full_like(v, float("nan")) if k in first_layers else v) for k, v in state.items()}
    cases = {   # file -> what the error says
        "empty": (dict(ckpt, model_state={}), "expected model weights in the checkpoint's 'model_state', got none"),
        "other": (dict(ckpt, model_state={k: v for k, v in state.items() if "decoder" not in k}),
                  "checkpoint weights do not fit its model hyper-parameters: Error(s) in loading state_dict"),
        "nan": (dict(ckpt, model_state=nan_state),
                f"expected finite model weights, got NaN or inf in {len(first_layers)} tensor(s)"),
    }
    for name, (bad, message) in cases.items():
        path, out = tmp_path / f"{name}.ckpt.pt", tmp_path / name / "model.pt"
        torch.save(bad, path)
        assert cli_main(["export", str(path), "-o", str(out)]) == 1
        err = capsys.readouterr().err
        assert err.startswith(f"lmp-gnn export: error: {path}: {message}"), err
        assert len(err.strip().splitlines()) == 1
        assert not out.exists() and not (out.parent.exists() and list(out.parent.iterdir()))


def extra_files(path):
    with zipfile.ZipFile(path) as z:
        return {name.split("/", 1)[1]: z.read(name) for name in z.namelist() if "/extra/" in name}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_rescript_keeps_weights_metadata_and_outputs(checkpoint, tmp_path, dtype):
    """rescript_exported re-saves an exported model with this version's model code: the metadata
    files byte for byte, the same weights, the same outputs (the shipped model was re-saved so)."""
    ckpt_path, _ = checkpoint
    old, new = tmp_path / "old.pt", tmp_path / "new.pt"
    export_checkpoint(ckpt_path, old, dtype=dtype)
    meta = rescript_exported(old, new)
    assert extra_files(new) == extra_files(old) and meta == load_exported(old)[1]
    a, b = load_exported(old)[0], load_exported(new)[0]
    for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True):
        assert torch.equal(x, y)
    nf, ei, ef, _ = graph(dtype=getattr(torch, dtype))
    with torch.no_grad():
        assert torch.equal(a(nf, ei, ef), b(nf, ei, ef))
    with pytest.raises(ExportedModelError, match="no such model file"):
        rescript_exported(tmp_path / "missing.pt", new)
