"""End-to-end training on tiny real LAMMPS data: the loss drops, checkpoints resume exactly,
time limits stop cleanly, 2-process DDP (gloo) works, and the result exports."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gnn_data import compressed_networks
from lmp_gnn.cli import main as cli_main
from lmp_gnn.learning.dataset import WindowDataset, load_trajectories, split_by_network
from lmp_gnn.learning.export import export_checkpoint, load_checkpoint, load_exported, model_from_checkpoint
from lmp_gnn.learning.train import ConfigError, _batch_generator, load_config, lr_factor, run_training
from lmp_gnn.learning.train_config import DataConfig, LoopConfig, TrainConfig

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parents[1]


def config(tmp_path, latent=32, **train):
    data = compressed_networks()
    small = {"latent": latent, "hidden": latent, "history": 2}
    t = {"steps": 40, "batch_size": 2, "lr": 1e-3, "lr_final": 1e-4, "num_threads": 1, "progress": False,
         "log_every": 10, "val_every": 1000, "ckpt_every": 1000, "val_windows": 32, "rollout_steps": 5,
         "rollout_trajectories": 1}
    t.update(train)
    return load_config(None, {"data": {"train": [str(data)], "val_fraction": 0.34}, "model": small,
                              "train": t, "out": str(tmp_path / "run")})


def quiet(*_args, **_kwargs):
    pass


def test_training_lowers_the_loss_and_exports(tmp_path):
    data = compressed_networks()
    cfg = config(tmp_path, latent=64, steps=150, batch_size=4, log_every=25)
    cfg = cfg.updated({"data": {"val": [str(data / "net0.npz"), str(data / "net1.npz"), str(data / "net2.npz")]}})
    summary = run_training(cfg, log=quiet)
    lines = [json.loads(s) for s in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    losses = [e["loss"] for e in lines if "loss" in e]
    assert len(losses) == 6
    assert losses[-1] < 0.3 * losses[0], f"expected the training loss to drop below 30 % of its start, got {losses}"
    m = summary["metrics"]
    # in-sample (val = the training networks): better than the zero-acceleration baseline
    assert m["val_mse"] < m["baseline_mse"], m
    assert m["rollout_mse"] > 0 and m["rollout_baseline_mse"] > 0
    ckpt = load_checkpoint(tmp_path / "run" / "last.pt")
    assert ckpt["step"] == 150 and ckpt["hparams"]["latent"] == 64 and ckpt["train_config"]["train"]["steps"] == 150
    assert ckpt["data_meta"]["delta_l"] == 2e-3 and ckpt["optimizer_state"]["state"]
    assert ckpt["lmp_gnn_version"] and (tmp_path / "run" / "best.pt").exists()
    assert TrainConfig.from_dict(ckpt["train_config"]) == cfg
    assert ckpt["optimizer_state"]["param_groups"][0]["lr"] == pytest.approx(1e-4)
    # export the trained model and check it against the eager model on a real window
    export_checkpoint(tmp_path / "run" / "last.pt", tmp_path / "model.pt")
    module, meta2 = load_exported(tmp_path / "model.pt")
    assert meta2["history"] == 2 and meta2["md_steps_per_step"] == ckpt["data_meta"]["md_steps_per_step"]
    assert meta2["box_length"] == ckpt["data_meta"]["box_length"] > 0                # mean Lx0 of the data
    ds = WindowDataset([t for _, t in load_trajectories([data])], history=2)
    nf, ei, ef, target = ds.sample(0, 5)
    eager = model_from_checkpoint(ckpt)
    with torch.no_grad():
        want, got = eager(nf, ei, ef), module(nf, ei, ef)
    assert ((got - want).abs().max() / want.abs().max()).item() <= 1e-6


def test_resume_reproduces_an_uninterrupted_run(tmp_path):
    straight = config(tmp_path / "a", steps=30, lr_final=1e-3)
    run_training(straight, log=quiet)
    first = config(tmp_path / "b", steps=15, lr_final=1e-3)
    run_training(first, log=quiet)
    second = config(tmp_path / "b", steps=30, lr_final=1e-3)
    summary = run_training(second, resume=tmp_path / "b" / "run" / "last.pt", log=quiet)
    assert summary["step"] == 30
    a = load_checkpoint(tmp_path / "a" / "run" / "last.pt")
    b = load_checkpoint(tmp_path / "b" / "run" / "last.pt")
    assert a["step"] == b["step"] == 30
    for key, value in a["model_state"].items():
        assert torch.equal(value, b["model_state"][key]), key
    assert a["model_state"]["node_norm.count"].item() > 0


def test_lr_schedule_is_relative_to_the_configured_steps():
    assert lr_factor(0, 100, 1e-4, 1e-6) == 1.0
    assert lr_factor(50, 100, 1e-4, 1e-6) == pytest.approx(0.1)
    assert lr_factor(100, 100, 1e-4, 1e-6) == pytest.approx(0.01)
    assert lr_factor(200, 100, 1e-4, 1e-6) == pytest.approx(0.01)


def test_time_limit_stops_cleanly(tmp_path):
    cfg = config(tmp_path, steps=100000, time_limit=0.0001)         # 6 ms
    summary = run_training(cfg, log=quiet)
    assert summary["stopped_by_time_limit"] and 1 <= summary["step"] < 100000
    assert load_checkpoint(tmp_path / "run" / "last.pt")["step"] == summary["step"]


def test_config_errors_and_example_config(tmp_path):
    with pytest.raises(ConfigError, match="unknown config key 'train.stpes'"):
        load_config(None, {"train": {"stpes": 3}})
    with pytest.raises(ConfigError, match="train.batch_size: expected a positive integer, got 0"):
        load_config(None, {"train": {"batch_size": 0}})
    with pytest.raises(ValueError, match="history: expected 1..3"):
        load_config(None, {"model": {"history": 5}})
    cfg = load_config(REPO / "examples" / "train_small.yaml")
    assert cfg.model.history == 3 and cfg.train.lr == 1e-4 and cfg.train.lr_final == 1e-6


@pytest.mark.parametrize("overrides, message", [
    # bad types
    ({"train": {"steps": "ten"}}, "train.steps: expected a positive integer, got 'ten'"),
    ({"train": {"batch_size": 2.5}}, "train.batch_size: expected a positive integer, got 2.5"),
    ({"train": {"unroll": True}}, "train.unroll: expected a positive integer, got True"),
    ({"train": {"lr": "fast"}}, "train.lr: expected a number > 0, got 'fast'"),
    ({"train": {"progress": "yes"}}, "train.progress: expected true or false, got 'yes'"),
    ({"train": {"init": 3}}, "train.init: expected a checkpoint path or null, got 3"),
    ({"train": {"dtype": "float16"}}, "train.dtype: expected one of float32, float64, got 'float16'"),
    ({"train": {"device": "gpu"}}, "train.device: expected auto, cpu, cuda or cuda:N, got 'gpu'"),
    ({"data": {"train": [3]}}, "data.train: expected trajectory files, directories or globs, got 3 in \\[3\\]"),
    ({"data": {"noise_target": "force"}}, "data.noise_target: expected one of velocity, position, got 'force'"),
    ({"model": {"residual": "no"}}, "ModelConfig.residual: expected true or false, got 'no'"),
    ({"model": {"prior": "one"}}, "ModelConfig.prior: expected a number, got 'one'"),
    ({"out": 5}, "out: expected a folder path, got 5"),
    ({"train": 5}, "config section 'train': expected a mapping, got int"),
    # out of range
    ({"train": {"lr_final": 0}}, "train.lr_final: expected a number > 0, got 0"),
    ({"train": {"pushforward": 1.5}}, "train.pushforward: expected a number >= 0 and <= 1, got 1.5"),
    ({"train": {"grad_clip": -1}}, "train.grad_clip: expected a number >= 0, got -1"),
    ({"train": {"time_limit": float("inf")}}, "train.time_limit: expected a number >= 0, got inf"),
    ({"train": {"rollout_start": -1}}, "train.rollout_start: expected an integer >= 0, got -1"),
    ({"data": {"val_fraction": 1}}, "data.val_fraction: expected a number >= 0 and < 1, got 1"),
    ({"data": {"noise_std": -1e-6}}, "data.noise_std: expected a number >= 0, got -1e-06"),
    ({"data": {"event_ratio": -1}}, "data.event_ratio: expected a number >= 0, got -1"),
    # unknown keys
    ({"data": {"noise": 1e-6}}, "unknown config key 'data.noise'; expected one of \\['event_ratio', 'noise_std'"),
    ({"model": {"width": 64}}, "unknown config key 'model.width'; expected one of \\['hidden', 'history'"),
    ({"output": "runs/x"}, "unknown config key 'output'; expected one of \\['data', 'model', 'out', 'train'\\]"),
])
def test_config_errors_name_the_key_the_value_and_what_is_expected(overrides, message):
    with pytest.raises(ValueError, match=message):
        load_config(None, overrides)


def test_config_sections_check_themselves_and_read_numbers_yaml_leaves_as_strings(tmp_path):
    with pytest.raises(ConfigError, match="train.val_every: expected a positive integer, got 0"):
        LoopConfig(val_every=0)
    with pytest.raises(ConfigError, match="data.split_seed: expected an integer, got '0'"):
        DataConfig(split_seed="0")
    with pytest.raises(ConfigError, match="expected train.pushforward = 0 and data.noise_std = 0 with it, "
                                          "got 0.0 and 1e-06"):
        TrainConfig(data=DataConfig(noise_std=1e-6), train=LoopConfig(unroll=2))
    # YAML 1.1 reads 1e-3 (no dot) as a string; as a float value it is the number
    f = tmp_path / "c.yaml"
    f.write_text("train: {lr: 1e-3, lr_final: 1.0e-5, strain_weight: 2, unroll: 2}\ndata: {train: x.npz}\n")
    cfg = load_config(f, {"train": {"grad_clip": "1"}})
    assert cfg.train.lr == 1e-3 and cfg.train.lr_final == 1e-5 and cfg.train.grad_clip == 1.0
    assert type(cfg.train.strain_weight) is float and cfg.data.train == ["x.npz"]
    assert cfg.updated({"train": {"steps": 7}}).train.steps == 7 and cfg.train.steps == LoopConfig().steps


def test_train_config_reads_the_dict_form_checkpoints_store():
    cfg = load_config(None, {"data": {"train": ["a.npz"]}, "model": {"latent": 16, "prior": 1.0},
                             "train": {"unroll": 4, "unroll_lead": 2, "init": "runs/x/last.pt"}, "out": "runs/y"})
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    # a checkpoint's train_config written before the typed config (values as the YAML gave them)
    # and before unroll, unroll_lead, strain_weight, init, event_ratio, noise_target and model.prior
    old = {"data": {"train": ["data/trajectories"], "val": [], "val_fraction": 0.1, "split_seed": 0,
                    "noise_std": "3e-6"},
           "model": {"history": 3, "layers": 1, "latent": 128, "hidden": 128, "mlp_layers": 2, "residual": True,
                     "layer_norm": False, "std_epsilon": 1e-12, "std_rel_epsilon": 1e-4},
           "train": {"steps": 12000, "batch_size": 8, "lr": "1e-3", "lr_final": 1e-5, "seed": 0, "dtype": "float32",
                     "device": "auto", "num_threads": 2, "grad_clip": 0, "pushforward": 0.5, "log_every": 100,
                     "val_every": 1000, "val_windows": 512, "rollout_steps": 50, "rollout_trajectories": 4,
                     "rollout_start": 2, "ckpt_every": 1000, "time_limit": 60, "progress": True},
           "out": "runs/paper"}
    cfg = TrainConfig.from_dict(old)
    assert cfg.data.noise_std == 3e-6 and cfg.data.event_ratio == 100.0 and cfg.model.prior == 0.0
    assert cfg.train.lr == 1e-3 and cfg.train.unroll == 1 and cfg.train.init is None and cfg.out == "runs/paper"


def test_cli_train_with_flags(tmp_path):
    data = compressed_networks()
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("model: {latent: 16, hidden: 16, history: 1}\ntrain: {steps: 1000, val_every: 5}\n")
    rc = cli_main(["train", str(cfg_file), "--data", str(data), "-o", str(tmp_path / "out"), "--steps", "6",
                   "--batch-size", "1", "--threads", "1", "--no-progress", "--set", "train.rollout_steps=2",
                   "--set", "data.val_fraction=0.34"])
    assert rc == 0
    ckpt = load_checkpoint(tmp_path / "out" / "last.pt")
    assert ckpt["step"] == 6 and ckpt["hparams"]["history"] == 1 and ckpt["hparams"]["latent"] == 16
    assert ckpt["metrics"]["val_mse"] > 0
    rc = cli_main(["train", str(cfg_file), "--data", str(data), "-o", str(tmp_path / "out"), "--steps", "8",
                   "--batch-size", "1", "--threads", "1", "--no-progress", "--set", "data.val_fraction=0.34",
                   "--resume"])
    assert rc == 0 and load_checkpoint(tmp_path / "out" / "last.pt")["step"] == 8


@pytest.mark.slow
def test_two_process_ddp_gloo(tmp_path):
    data = compressed_networks()
    out = tmp_path / "ddp"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "python"), os.environ.get("PYTHONPATH", "")]),
               OMP_NUM_THREADS="1")
    torchrun = Path(sys.executable).parent / "torchrun"
    cmd = [str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "lmp_gnn.cli", "train",
           "--data", str(data), "-o", str(out), "--steps", "10", "--batch-size", "2", "--threads", "1",
           "--no-progress", "--set", "model.latent=16", "--set", "model.hidden=16", "--set", "model.history=2",
           "--set", "data.val_fraction=0.34", "--set", "train.rollout_steps=2", "--set", "train.val_every=5"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 process(es)" in proc.stdout
    ckpt = load_checkpoint(out / "last.pt")
    assert ckpt["step"] == 10
    # the normalisers saw both ranks' batches: replay the two ranks' draws
    train_items, _ = split_by_network(load_trajectories([data]), 0.34, 0)
    ds = WindowDataset([t for _, t in train_items], history=2)
    nodes = 0
    for rank in (0, 1):
        for step in range(10):
            idx = torch.randint(0, len(ds), (2,), generator=_batch_generator(0, rank, step))
            nodes += sum(ds.graphs[int(ds.windows[i, 0])].n_nodes for i in idx)
    assert ckpt["model_state"]["node_norm.count"].item() == nodes


def test_resume_refuses_data_of_another_delta_l(tmp_path):
    from lmp_gnn.physics.trajectory import save_trajectory

    run_training(config(tmp_path, steps=2), log=quiet)
    other = tmp_path / "other"
    for name, traj in load_trajectories([compressed_networks()]):
        traj.metadata["delta_l"] = 4e-3
        save_trajectory(other / f"{name}.npz", traj)
    cfg = config(tmp_path, steps=4).updated({"data": {"train": [str(other)]}})
    with pytest.raises(ConfigError, match="expected training data with the checkpoint's delta_l 0.002, got 0.004"):
        run_training(cfg, resume=tmp_path / "run" / "last.pt", log=quiet)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_missing_cuda_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="expected a usable CUDA device"):
        run_training(config(tmp_path, steps=2, device="cuda"), log=quiet)


def test_unrolled_loss_of_one_step_is_the_one_step_loss():
    from lmp_gnn.learning.model import build_model
    from lmp_gnn.learning.train import _Loss, _UnrolledLoss

    torch.manual_seed(0)
    ds = WindowDataset([t for _, t in load_trajectories([compressed_networks()])], history=2,
                       dtype=torch.float64, event_ratio=100.0)
    model = build_model({"latent": 16, "hidden": 16, "history": 2, "prior": 1.0}).double()
    idx = ds.unroll_starts(1)[:3]
    batch = ds.batch(idx, noise=False)
    model.update_normalizers(batch.node_features, batch.edge_features, batch.target)
    u = ds.unrolled_batch(idx, 1)
    with torch.no_grad():
        one = _Loss(model)(batch.node_features, batch.edge_index, batch.edge_features, batch.target)
        unrolled = _UnrolledLoss(model)(u.positions, u.edge_box, u.edge_index, u.rest_length, u.node_graph)
    assert float(one) > 0 and abs(float(unrolled) - float(one)) <= 1e-6 * float(one), (float(one), float(unrolled))
    # K steps: every window has K true snapshots after it, none of them inside an event
    starts = ds.unroll_starts(4)
    assert 0 < len(starts) < len(ds)
    for g, t in ds.windows[starts].tolist():
        assert t + 4 <= ds.graphs[g].n_snapshots - 1 and (g, t + 3) in ds._quiet
    u = ds.unrolled_batch(starts[:2], 4)
    assert u.positions.shape[0] == 2 + 4 + 1 and u.edge_box.shape[:2] == (4, u.edge_index.shape[1])


def test_unrolled_loss_after_lead_steps_starts_from_the_models_own_state():
    from lmp_gnn.learning.model import build_model
    from lmp_gnn.learning.train import _UnrolledLoss
    from lmp_gnn.step import features
    from lmp_gnn.step.rules import advance

    torch.manual_seed(0)
    ds = WindowDataset([t for _, t in load_trajectories([compressed_networks()])], history=2,
                       dtype=torch.float64, event_ratio=100.0)
    model = build_model({"latent": 16, "hidden": 16, "history": 2, "prior": 1.0}).double()
    starts = ds.unroll_starts(3)
    idx = starts[ds.windows[starts, 1] >= 2 + 4][:2]
    assert ds.lead_room(idx) >= 4
    batch = ds.batch(idx, noise=False)
    model.update_normalizers(batch.node_features, batch.edge_features, batch.target)
    loss_fn = _UnrolledLoss(model, strain_weight=5.0)
    u = ds.unrolled_batch(idx, 3, lead=4)
    assert u.positions.shape[0] == 2 + 4 + 3 + 1 and u.edge_box.shape[0] == 4 + 3
    # by hand: 4 learned steps from the true history, then a 3-step loss from where they ended
    with torch.no_grad():
        v = (u.positions[1:3] - u.positions[:2]).flip(0)
        r = u.positions[2]
        for j in range(4):
            a = model(features.node_features(v), u.edge_index,
                      features.edge_features(r, u.edge_box[j], u.edge_index, u.rest_length))
            r, v = advance(r, v, a)
    own = torch.cat([torch.stack([r - v[0] - v[1], r - v[0], r]), u.positions[2 + 4 + 1:]])
    model.zero_grad()
    led = loss_fn(u.positions, u.edge_box, u.edge_index, u.rest_length, u.node_graph, 4)
    led.backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    fresh = loss_fn(own, u.edge_box[4:], u.edge_index, u.rest_length, u.node_graph)
    fresh.backward()
    assert float(led.detach()) > 0 and abs(float(led.detach()) - float(fresh.detach())) <= 1e-9 * float(fresh.detach())
    # gradients only through the last 3 steps: the same as from the model's own state
    assert all(float((g - p.grad).abs().max()) <= 1e-8 * float(g.abs().max())
               for g, p in zip(grads, model.parameters(), strict=True))


def test_unrolled_fine_tuning_from_a_checkpoint(tmp_path):
    run_training(config(tmp_path / "a", steps=30), log=quiet)
    init = tmp_path / "a" / "run" / "last.pt"
    cfg = config(tmp_path / "b", steps=60, unroll=4, unroll_lead=3, strain_weight=10.0, init=str(init), lr=1e-3,
                 lr_final=1e-3)
    summary = run_training(cfg, log=quiet)
    lines = [json.loads(s) for s in (tmp_path / "b" / "run" / "metrics.jsonl").read_text().splitlines()]
    losses = [e["loss"] for e in lines if "loss" in e]
    assert summary["step"] == 60 and losses[-1] < losses[0], losses
    a, b = load_checkpoint(init), load_checkpoint(tmp_path / "b" / "run" / "last.pt")
    assert b["train_config"]["train"]["unroll"] == 4 and b["step"] == 60
    # normalisers come from the checkpoint (and keep accumulating), weights moved on
    assert b["model_state"]["node_norm.count"] > a["model_state"]["node_norm.count"]
    assert not torch.equal(a["model_state"]["decoder.layers.0.weight"], b["model_state"]["decoder.layers.0.weight"])
    # a killed fine-tuning run resumes from its own checkpoint, not from train.init
    more = config(tmp_path / "b", steps=70, unroll=4, init=str(init), lr=1e-3, lr_final=1e-3)
    summary = run_training(more, resume=tmp_path / "b" / "run" / "last.pt", log=quiet)
    c = load_checkpoint(tmp_path / "b" / "run" / "last.pt")
    assert summary["step"] == 70 and c["step"] == 70
    assert c["model_state"]["node_norm.count"] > b["model_state"]["node_norm.count"]


def test_unroll_config_errors():
    with pytest.raises(ConfigError, match="train.unroll: expected a positive integer, got 0"):
        load_config(None, {"train": {"unroll": 0}})
    with pytest.raises(ConfigError, match="expected train.pushforward = 0 and data.noise_std = 0"):
        load_config(None, {"train": {"unroll": 2, "pushforward": 0.5}})
    with pytest.raises(ConfigError, match="expected train.unroll > 1 with it"):
        load_config(None, {"train": {"unroll_lead": 8}})
    with pytest.raises(ConfigError, match="train.unroll_lead: expected an integer >= 0, got -1"):
        load_config(None, {"train": {"unroll": 2, "unroll_lead": -1}})
    with pytest.raises(ConfigError, match="train.strain_weight weighs the unrolled loss"):
        load_config(None, {"train": {"strain_weight": 1.0}})
    with pytest.raises(ConfigError, match="train.strain_weight: expected a number >= 0, got -1"):
        load_config(None, {"train": {"unroll": 2, "strain_weight": -1}})


def test_strain_part_of_an_error_field_graph_by_graph():
    from lmp_gnn.learning.train import strain_part

    gen = torch.Generator().manual_seed(0)
    x = torch.rand(50, 2, generator=gen, dtype=torch.float64) * 10
    graph = torch.cat([torch.zeros(20, dtype=torch.long), torch.ones(30, dtype=torch.long)])
    a = torch.tensor([[[0.01, -0.002], [0.003, -0.02]], [[-0.005, 0.0], [0.001, 0.04]]], dtype=torch.float64)
    centre = torch.stack([x[:20].mean(0), x[20:].mean(0)])
    affine = torch.einsum("ni,nij->nj", x - centre[graph], a[graph])
    # a strain error plus a translation per graph: the strain part is the strain error exactly
    shifted = affine + torch.tensor([[1.0, -2.0], [0.5, 0.3]], dtype=torch.float64)[graph]
    assert torch.allclose(strain_part(shifted, x, graph), affine, atol=1e-12)
    # a non-affine rest (orthogonal to constants and to x within each graph) has none
    noise = torch.randn(50, 2, generator=gen, dtype=torch.float64)
    rest = noise - strain_part(noise, x, graph) - torch.stack([noise[:20].mean(0), noise[20:].mean(0)])[graph]
    assert float(strain_part(rest, x, graph).abs().max()) < 1e-12
    assert torch.allclose(strain_part(affine + rest, x, graph), affine, atol=1e-12)
