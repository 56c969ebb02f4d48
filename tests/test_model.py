"""GNNSimulator: shapes, TorchScript parity, factored == plain PyG, equivariance, init, normalisers."""

import math
import os
import pathlib
import subprocess
import sys

import pytest
import torch

from lmp_gnn.learning.model import GNNSimulator, ModelConfig, OnlineNormalizer, build_model

torch.set_num_threads(1)
# TorchScript is the file format of fix gnn/rollout; torch >= 2.9 marks torch.jit deprecated
pytestmark = pytest.mark.filterwarnings(r"ignore:.*torch\.jit.*:DeprecationWarning")


def random_graph(n=30, m=70, h=3, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    bonds = torch.randint(0, n, (m, 2), generator=g)
    ei = torch.cat([bonds.t(), bonds.t().flip(0)], dim=1)
    nf = (torch.randn(n, 2 * h, generator=g, dtype=dtype) * 1e-3)
    ef = torch.randn(ei.shape[1], 4, generator=g, dtype=dtype)
    ef[:, 2] = ef[:, :2].norm(dim=1)
    ef[:, 3] = 1.0 + 0.1 * torch.rand(ei.shape[1], generator=g, dtype=dtype)
    target = torch.randn(n, 2, generator=g, dtype=dtype) * 1e-5
    return nf, ei, ef, target


def trained_like(cfg, dtype=torch.float64, seed=0):
    """A model with non-trivial normaliser statistics (as after some training)."""
    torch.manual_seed(seed)
    model = GNNSimulator(cfg).to(dtype)
    nf, ei, ef, target = random_graph(h=cfg.history, dtype=dtype, seed=seed + 1)
    model.update_normalizers(nf, ef, target)
    return model.eval()


@pytest.mark.parametrize("history", [1, 2, 3])
@pytest.mark.parametrize("layers", [1, 2, 3])
def test_shapes_and_parameter_count(history, layers):
    model = build_model({"history": history, "layers": layers})
    nf, ei, ef, _ = random_graph(h=history, dtype=torch.float32)
    out = model(nf, ei, ef)
    assert out.shape == (nf.shape[0], 2) and out.dtype == torch.float32
    assert torch.isfinite(out).all()
    assert len(model.processor) == layers
    # each layer has its own parameters
    ids = {id(p) for layer in model.processor for p in layer.parameters()}
    assert len(ids) == layers * len(list(model.processor[0].parameters()))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("layers", [1, 3])
@pytest.mark.parametrize("mlp_layers", [1, 2, 3])
def test_scripted_equals_eager(dtype, layers, mlp_layers):
    model = trained_like(ModelConfig(history=3, layers=layers, mlp_layers=mlp_layers), dtype)
    scripted = torch.jit.script(model)
    nf, ei, ef, _ = random_graph(dtype=dtype, seed=5)
    with torch.no_grad():
        want = model(nf, ei, ef)
        got = scripted(nf, ei, ef)
    assert got.dtype == dtype
    rel = ((got - want).abs().max() / want.abs().max()).item()
    assert rel <= 1e-6, f"expected scripted == eager within 1e-6 relative, got {rel:.3g}"


def test_history_prior_is_added_and_scripted():
    """prior c: forward = network + c (v(t) - v(t-1)), in eager, PyG and TorchScript alike; the
    normalised training target is the residual."""
    model = trained_like(ModelConfig(history=3, prior=0.9))
    nf, ei, ef, target = random_graph(seed=4)
    prior = 0.9 * (nf[:, 0:2] - nf[:, 2:4])
    plain = trained_like(ModelConfig(history=3))
    plain.load_state_dict(model.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(model(nf, ei, ef), plain(nf, ei, ef) + prior, rtol=0, atol=1e-15)
        torch.testing.assert_close(model.forward_reference(nf, ei, ef), model(nf, ei, ef), rtol=1e-12, atol=1e-18)
        torch.testing.assert_close(torch.jit.script(model)(nf, ei, ef), model(nf, ei, ef), rtol=1e-12, atol=1e-18)
        torch.testing.assert_close(model.normalized_target(nf, target), model.target_norm(target - prior))
    with pytest.raises(ValueError, match="history >= 2"):
        ModelConfig(history=1, prior=1.0)


@pytest.mark.parametrize("layers", [1, 3])
@pytest.mark.parametrize("residual", [True, False])
@pytest.mark.parametrize("layer_norm", [False, True])
@pytest.mark.parametrize("mlp_layers", [1, 2])
def test_factored_equals_plain_pyg(layers, residual, layer_norm, mlp_layers):
    cfg = ModelConfig(history=2, layers=layers, residual=residual, layer_norm=layer_norm, mlp_layers=mlp_layers)
    model = trained_like(cfg)
    assert model.fold_edge_encoder == (not layer_norm and (layers == 1 or not residual))
    nf, ei, ef, _ = random_graph(h=2, seed=7)
    with torch.no_grad():
        fast = model(nf, ei, ef)
        ref = model.forward_reference(nf, ei, ef)
    rel = ((fast - ref).abs().max() / ref.abs().max()).item()
    assert rel <= 1e-12, f"expected factored == plain PyG within 1e-12 relative (float64), got {rel:.3g}"


@pytest.mark.parametrize("mlp_layers", [2, 3])
def test_one_layer_edge_blocks_equal_plain_pyg(mlp_layers):
    """k = 1 runs its edges in blocks of edge_block (single_layer_in_blocks): 140 edges in blocks of 16
    (the last one ragged) give plain PyG's output within 1e-12 (float64), eager and scripted, and
    its gradients."""
    model = trained_like(ModelConfig(history=2, layers=1, mlp_layers=mlp_layers))
    model.edge_block = 16
    nf, ei, ef, target = random_graph(h=2, seed=7)
    assert ei.shape[1] % model.edge_block != 0
    with torch.no_grad():
        ref = model.forward_reference(nf, ei, ef)
        for fast in (model(nf, ei, ef), torch.jit.script(model)(nf, ei, ef)):
            rel = ((fast - ref).abs().max() / ref.abs().max()).item()
            assert rel <= 1e-12, f"expected blocked == plain PyG within 1e-12 relative, got {rel:.3g}"
    model.train()
    grads = []
    for forward in (model.forward_normalized, model.forward_normalized_reference):
        loss = (forward(nf, ei, ef) - model.target_norm(target)).pow(2).mean()
        grads.append(torch.autograd.grad(loss, list(model.parameters())))
    for a, b in zip(*grads, strict=True):
        assert (a - b).abs().max() <= 1e-10 * b.abs().max() + 1e-14


def test_factored_equals_plain_pyg_float32_and_gradients():
    model = trained_like(ModelConfig(history=3, layers=2), torch.float32).train()
    nf, ei, ef, target = random_graph(dtype=torch.float32, seed=3)
    loss_fast = (model.forward_normalized(nf, ei, ef) - model.target_norm(target)).pow(2).mean()
    g_fast = torch.autograd.grad(loss_fast, list(model.parameters()))
    loss_ref = (model.forward_normalized_reference(nf, ei, ef) - model.target_norm(target)).pow(2).mean()
    g_ref = torch.autograd.grad(loss_ref, list(model.parameters()))
    assert abs(loss_fast.item() - loss_ref.item()) <= 1e-5 * loss_ref.item()
    for a, b in zip(g_fast, g_ref, strict=True):
        assert (a - b).abs().max() <= 1e-4 * b.abs().max() + 1e-7


def test_node_permutation_equivariance_and_edge_order_invariance():
    model = trained_like(ModelConfig(history=3, layers=2))
    nf, ei, ef, _ = random_graph(seed=11)
    n, e = nf.shape[0], ei.shape[1]
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(1))   # new node k = old node perm[k]
    inv = torch.empty_like(perm)
    inv[perm] = torch.arange(n)
    eperm = torch.randperm(e, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        out = model(nf, ei, ef)
        out_p = model(nf[perm], inv[ei][:, eperm], ef[eperm])
    assert torch.allclose(out_p, out[perm], rtol=0, atol=1e-12 * out.abs().max().item())


def test_messages_flow_sender_to_receiver():
    """A node that only sends (no incoming edge) gets no message: its output does not
    depend on the edge features."""
    model = trained_like(ModelConfig(history=1, layers=1))
    nf = torch.randn(3, 2, dtype=torch.float64) * 1e-3
    ei = torch.tensor([[0, 0], [1, 2]])          # 0 -> 1, 0 -> 2
    ef = torch.randn(2, 4, dtype=torch.float64)
    with torch.no_grad():
        a = model(nf, ei, ef)
        b = model(nf, ei, ef * 2.0)
    assert torch.equal(a[0], b[0])
    assert not torch.equal(a[1], b[1])


def test_initialisation_normal_fan_in():
    torch.manual_seed(0)
    model = GNNSimulator(ModelConfig(history=3, layers=1))
    first = model.processor[0].phi.layers[0]    # 384 -> 128
    w = first.weight.detach()
    assert w.mean().abs() < 0.002
    assert w.std().item() == pytest.approx(1 / math.sqrt(384), rel=0.02)
    assert first.bias.detach().std().item() == pytest.approx(1 / math.sqrt(384), rel=0.25)
    # normal, not uniform: ~0.3 % of a normal lies beyond 3 sigma, none of U(-1/sqrt n, 1/sqrt n)
    assert (w.abs() > 1.5 / math.sqrt(384)).any()


def test_online_normalizer_matches_full_batch_statistics():
    g = torch.Generator().manual_seed(0)
    data = torch.randn(1000, 3, generator=g, dtype=torch.float64) * torch.tensor([1e-3, 2.0, 1e-6]) + \
        torch.tensor([5.0, -1.0, 0.0], dtype=torch.float64)
    norm = OnlineNormalizer(3)
    x = torch.randn(4, 3, dtype=torch.float64)
    assert torch.equal(norm(x), x)                 # identity before any update
    for chunk in data.split([1, 10, 300, 689]):
        norm.update(chunk)
    assert norm.count.item() == 1000
    assert torch.allclose(norm.mean, data.mean(0), rtol=1e-12, atol=0)
    assert torch.allclose(norm.std, data.std(0, unbiased=False), rtol=1e-10, atol=0)
    y = norm(data)
    assert torch.allclose(y.mean(0), torch.zeros(3, dtype=torch.float64), atol=1e-10)
    assert torch.allclose(norm.inverse(y), data, rtol=1e-12, atol=1e-15)


def test_normalizer_floors_constant_feature():
    norm = OnlineNormalizer(2, std_epsilon=1e-12, std_rel_epsilon=1e-4)
    norm.update(torch.tensor([[2.0, 0.0], [2.0, 0.0]], dtype=torch.float64))
    assert norm.std.tolist() == [2e-4, 1e-12]


def test_bad_inputs_rejected():
    model = GNNSimulator(ModelConfig(history=2))
    nf, ei, ef, _ = random_graph(h=2, dtype=torch.float32)
    with pytest.raises(ValueError, match=r"expected node_features of shape \[N, 4\]"):
        model(nf[:, :3], ei, ef)
    with pytest.raises(ValueError, match=r"expected edge_index of shape \[2, E\]"):
        model(nf, ei.t(), ef)
    with pytest.raises(ValueError, match=r"expected edge_features of shape"):
        model(nf, ei, ef[:-1])
    with pytest.raises(ValueError, match="int64"):
        model(nf, ei.int(), ef)
    with pytest.raises(ValueError, match="history: expected 1..3"):
        ModelConfig(history=4)
    with pytest.raises(ValueError, match="unknown keys"):
        build_model({"histroy": 2})


@pytest.mark.slow
def test_generated_pyg_sources_removed_at_exit(tmp_path):
    # PyG writes each MessagePassing class's generated source to the temp directory and keeps it;
    # lmp_gnn.learning.model removes its own at exit (after TorchScript no longer needs them).
    script = (
        "import sys, torch\n"
        "from lmp_gnn.learning.model import GNNSimulator, ModelConfig\n"
        "torch.jit.script(GNNSimulator(ModelConfig()))\n"
        "for name, m in sys.modules.items():\n"
        "    if name.startswith('lmp_gnn.learning.model_'): print(m.__file__)\n"
    )
    env = dict(os.environ, TMPDIR=str(tmp_path))
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    generated = out.stdout.split()
    assert len(generated) >= 1 and all(pathlib.Path(p).parent == tmp_path for p in generated)
    assert not any(pathlib.Path(p).exists() for p in generated)
    assert list(tmp_path.iterdir()) == []
