"""The learned simulator's network: encoder -> k message-passing layers -> decoder.

Architecture (the paper's §II "Model architecture", docs/physics.md §1; GNS, Sanchez-Gonzalez
et al. 2020); docs/model.md gives the reasons and measurements behind this implementation:

    x_i^0 = eps_x(norm_x(node_inputs_i))            node encoder, [N, 2h] -> [N, L]
    e_ij^0 = eps_e(norm_e(edge_inputs_ij))          edge encoder, [E, 5]  -> [E, L]
    for layer l = 1..k (each with its own parameters):
        m_ij   = phi^l([x_i, x_j, e_ij])            i = receiver, j = sender
        x_i'   = psi^l([x_i, sum_j m_ij])
        x_i    = x_i + x_i'      (residual, default on)
        e_ij   = e_ij + m_ij     (residual, default on)
    a_i = denorm_a(delta(x_i)) + c (v_i(t) - v_i(t-1))   decoder, [N, L] -> [N, 2]; c = `prior`
                                                    (0 by default: the paper's model)

Every MLP is `mlp_layers` Linear layers (default 2) with ReLU between them, hidden width
`hidden` (default 128) and output width `latent` (default 128; 2 for the decoder), with no
activation after the last layer; optional LayerNorm after every MLP but the decoder's (off by
default). Initialisation (paper): every weight and bias ~ N(0, std = 1/sqrt(fan-in)).

Normalisation: three `OnlineNormalizer`s (node inputs, edge inputs, target accelerations) live
in the model, so `forward` takes raw features and returns raw accelerations (the exported
TorchScript contract, docs/formats.md); training computes its loss on normalised accelerations
through `forward_normalized`. `model_inputs` derives the inputs from the contract's features.

Two mathematically identical paths (tests/test_model.py: equal to round-off):

- `forward` (the one TorchScript compiles, the one exported): the first Linear of every edge
  MLP phi factored into per-node and per-edge parts, the edge encoder's last Linear folded in
  where nothing else needs the edge embedding, the last layer's message Linear applied after the
  sum, in-place temporaries (docs/model.md, "Two forward paths"; benchmarks/model_speed.py);
- `forward_reference`: plain PyTorch Geometric eager (`edge_updater` computes
  m = phi(cat[x_i, x_j, e_ij]), `propagate` with aggr="add" sums it); the benchmark's baseline.

Graph convention (features.py): edge_index[0] = sender, edge_index[1] = receiver; edge
features of e = (s, r) are (d_x, d_y, |d|, 1/l_r), d = minimum image of r_r - r_s.
Units: velocities in distance per step, accelerations in distance per step².
"""

from __future__ import annotations

import atexit
import contextlib
import math
import numbers
import os
import sys
import tempfile
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn import MessagePassing

from lmp_gnn.step.features import EDGE_DIM
from lmp_gnn.step.metadata import DIMENSION, MAX_HISTORY, MIN_HISTORY

EDGE_INPUTS = EDGE_DIM + 1     # the contract's 4 edge features and the bond strain (model_inputs)
# Edges per block of the one-layer edge path (GNNSimulator.single_layer_in_blocks): its [block, hidden]
# temporaries stay in the core's cache instead of streaming [E, hidden] tensors through memory
# (1.6x faster model calls at N = 10k-100k on one core, benchmarks/cost_model.py).
EDGE_BLOCK = 1024


@atexit.register
def _remove_generated_sources() -> None:
    """Delete the source files PyG generated for this module's MessagePassing classes.

    PyG renders each class's `propagate`/`edge_updater` into a file in the temp directory and never
    deletes it (torch_geometric.template, delete=False), two files per process that builds a model.
    TorchScript reads that source while it scripts a model, so the files can only go at exit. Not
    under plain `lmp -in` with a Python-bridge model: that embedded interpreter is never finalised
    (csrc/gnn_python_backend.cpp), so nothing runs at its exit.
    """
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None) or ""
        if name.startswith(f"{__name__}_") and os.path.dirname(path) == tempfile.gettempdir():
            with contextlib.suppress(OSError):
                os.unlink(path)


@dataclass
class ModelConfig:
    """Hyper-parameters of `GNNSimulator`; saved with every checkpoint and export.

    Attributes:
        history: h, number of past velocities per node (1..3); node features are 2h floats.
        layers: k, number of message-passing layers (1..3 in the paper; any k >= 1 works).
        latent: width of node and edge embeddings.
        hidden: hidden width of every MLP.
        mlp_layers: Linear layers per MLP (2 in the paper).
        residual: residual connections on node and edge embeddings (GNS style).
        layer_norm: LayerNorm after every MLP except the decoder.
        std_epsilon: absolute floor of a normaliser's standard deviation.
        std_rel_epsilon: relative floor, std >= std_rel_epsilon * |mean|, so a feature that
            is constant within round-off (e.g. 1/l_r of a lattice) is not blown up.
        prior: weight c of the history-extrapolation prior a_prior = c (v(t) - v(t-1)) that is
            added to the network's output, so the network learns the residual a - a_prior
            (needs history >= 2; 0 = off, the paper's model; why, and what it gains: docs/model.md).
    """

    history: int = 3
    layers: int = 1
    latent: int = 128
    hidden: int = 128
    mlp_layers: int = 2
    residual: bool = True
    layer_norm: bool = False
    std_epsilon: float = 1e-12
    std_rel_epsilon: float = 1e-4
    prior: float = 0.0

    def __post_init__(self) -> None:
        for name in ("history", "layers", "latent", "hidden", "mlp_layers"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"ModelConfig.{name}: expected a positive integer, got {value!r}")
        for name in ("residual", "layer_norm"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"ModelConfig.{name}: expected true or false, got {getattr(self, name)!r}")
        for name in ("std_epsilon", "std_rel_epsilon", "prior"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise ValueError(f"ModelConfig.{name}: expected a number, got {value!r}")
        if self.history > MAX_HISTORY:
            raise ValueError(f"ModelConfig.history: expected {MIN_HISTORY}..{MAX_HISTORY} (feature contract), "
                             f"got {self.history}")
        if not math.isfinite(self.prior) or (self.prior != 0.0 and self.history < 2):
            raise ValueError(f"ModelConfig.prior: expected a finite number, and history >= 2 when it is "
                             f"not 0, got prior {self.prior!r} with history {self.history}")
        if not (self.std_epsilon > 0 and self.std_rel_epsilon >= 0):
            raise ValueError(
                f"ModelConfig: expected std_epsilon > 0 and std_rel_epsilon >= 0, "
                f"got {self.std_epsilon} and {self.std_rel_epsilon}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ModelConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"ModelConfig: unknown keys {sorted(unknown)}; expected a subset of {sorted(known)}")
        return cls(**d)


def init_linear_(linear: nn.Linear) -> None:
    """Paper initialisation: weight and bias ~ N(0, 1/sqrt(fan_in))."""
    std = 1.0 / math.sqrt(linear.in_features)
    with torch.no_grad():
        linear.weight.normal_(0.0, std)
        if linear.bias is not None:
            linear.bias.normal_(0.0, std)


class OnlineNormalizer(nn.Module):
    """Running mean and variance of a feature vector over everything seen in training.

    Statistics are float64 buffers (`count`, `mean`, `m2` = sum of squared deviations)
    merged with Chan et al.'s parallel update; `std` is derived after every update:
    std = max(sqrt(m2 / count), std_epsilon, std_rel_epsilon * |mean|). Before any update
    the transform is the identity (mean 0, std 1). The statistics only change through
    `update`/`merge` (called by the trainer), never in `forward`, so an exported model is frozen.

    Shapes: input [*, size] -> output [*, size].
    """

    if TYPE_CHECKING:  # the buffers registered in __init__ (float64); hidden from TorchScript,
        count: Tensor  # which cannot read class annotations written as strings (PEP 563)
        mean: Tensor
        m2: Tensor
        std: Tensor

    def __init__(self, size: int, std_epsilon: float = 1e-12, std_rel_epsilon: float = 1e-4):
        super().__init__()
        self.size = size
        self.std_epsilon = std_epsilon
        self.std_rel_epsilon = std_rel_epsilon
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))
        self.register_buffer("mean", torch.zeros(size, dtype=torch.float64))
        self.register_buffer("m2", torch.zeros(size, dtype=torch.float64))
        self.register_buffer("std", torch.ones(size, dtype=torch.float64))

    def forward(self, x: Tensor) -> Tensor:
        """(x - mean) / std, in x's dtype."""
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)

    def inverse(self, y: Tensor) -> Tensor:
        """y * std + mean, in y's dtype."""
        return y * self.std.to(y.dtype) + self.mean.to(y.dtype)

    @torch.jit.unused
    def moments(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(count, mean, m2) of a batch [n, size], float64."""
        x = x.detach().reshape(-1, self.size).to(torch.float64)
        n = torch.tensor(float(x.shape[0]), dtype=torch.float64, device=x.device)
        if x.shape[0] == 0:
            z = torch.zeros(self.size, dtype=torch.float64, device=x.device)
            return n, z, z.clone()
        mean = x.mean(0)
        m2 = ((x - mean) ** 2).sum(0)
        return n, mean, m2

    @torch.jit.unused
    def merge(self, n: Tensor, mean: Tensor, m2: Tensor) -> None:
        """Fold in a batch's (count, mean, m2) (Chan et al. 1979)."""
        n = n.to(self.count)
        if float(n) <= 0:
            return
        total = self.count + n
        delta = mean.to(self.mean) - self.mean
        self.mean += delta * (n / total)
        self.m2 += m2.to(self.m2) + delta * delta * (self.count * n / total)
        self.count.copy_(total)
        var = self.m2 / self.count
        floor = torch.clamp(self.mean.abs() * self.std_rel_epsilon, min=self.std_epsilon)
        self.std.copy_(torch.maximum(var.sqrt(), floor))

    @torch.jit.unused
    def update(self, x: Tensor) -> None:
        """Accumulate a batch [n, size] (single process; the trainer syncs across ranks itself)."""
        self.merge(*self.moments(x))

    def extra_repr(self) -> str:
        return f"size={self.size}, count={int(self.count.item())}"


class MLP(nn.Module):
    """`n_layers` Linear layers with ReLU between, optional LayerNorm at the end.

    Besides `forward`, it offers the pieces the factored message path needs: `tail` (all but
    the first Linear, applied to the first Linear's output), `hidden` (the input of the last
    Linear) and `last_linear` (its weight and bias).
    Shapes: [*, in_size] -> [*, out_size].
    """

    def __init__(self, in_size: int, hidden: int, out_size: int, n_layers: int, layer_norm: bool = False):
        super().__init__()
        widths = [in_size] + [hidden] * (n_layers - 1) + [out_size]
        self.n_layers = n_layers
        self.has_norm = layer_norm
        self.layers = nn.ModuleList([nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:], strict=True)])
        self.norm = nn.LayerNorm(out_size) if layer_norm else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        for i, lin in enumerate(self.layers):
            if i > 0:
                x = torch.relu_(x)                     # in place on our own temporary
            x = lin(x)
        return self.norm(x)

    def tail(self, y: Tensor) -> Tensor:
        """The MLP after its first Linear: y = first(x) -> forward(x)."""
        for i, lin in enumerate(self.layers):
            if i > 0:
                y = lin(torch.relu_(y))
        return self.norm(y)

    def tail_hidden(self, y: Tensor) -> Tensor:
        """The input of the last Linear, from the first Linear's output y (n_layers >= 2)."""
        for i, lin in enumerate(self.layers):
            if 0 < i < self.n_layers - 1:
                y = lin(torch.relu_(y))
        return torch.relu_(y)

    def hidden(self, x: Tensor) -> Tensor:
        """The input of the last Linear (x itself for a one-layer MLP)."""
        for i, lin in enumerate(self.layers):
            if i < self.n_layers - 1:
                x = torch.relu_(lin(x))
        return x

    def first_linear(self) -> tuple[Tensor, Tensor]:
        """(weight, bias) of the first Linear."""
        w, b = self.layers[0].weight, self.layers[0].bias
        assert isinstance(w, Tensor) and isinstance(b, Tensor)  # ModuleList items are typed Module
        return w, b

    def last_linear(self) -> tuple[Tensor, Tensor]:
        """(weight, bias) of the last Linear."""
        w, b = self.first_linear()
        for i, lin in enumerate(self.layers):
            if i == self.n_layers - 1:
                lw, lb = lin.weight, lin.bias
                assert isinstance(lw, Tensor) and isinstance(lb, Tensor)
                w, b = lw, lb
        return w, b


class InteractionLayer(MessagePassing):
    r"""One message-passing layer with its own parameters.

    .. math::
        m_{ij} = \phi([x_i, x_j, e_{ij}]),\quad
        x_i' = \psi([x_i, \textstyle\sum_j m_{ij}]),\quad
        x_i \leftarrow x_i + x_i',\ e_{ij} \leftarrow e_{ij} + m_{ij}\ \text{(residual)}

    i = receiver (edge_index[1]), j = sender (edge_index[0]).

    Shapes: x [N, L], edge_index [2, E] int64, e [E, L] -> (x [N, L], e [E, L]).
    """

    def __init__(self, latent: int, hidden: int, mlp_layers: int, residual: bool, layer_norm: bool):
        super().__init__(aggr="add", flow="source_to_target")
        self.latent = latent
        self.residual = residual
        self.phi = MLP(3 * latent, hidden, latent, mlp_layers, layer_norm)
        self.psi = MLP(2 * latent, hidden, latent, mlp_layers, layer_norm)

    def forward(self, x: Tensor, edge_index: Tensor, e: Tensor, need_edges: bool = True
                ) -> tuple[Tensor, Tensor]:
        """Factored path: W[x_i; x_j; e] + b = W_a x_i + W_b x_j + W_c e + b.

        need_edges=False (the last layer: the caller uses only x) lets the layer skip the
        messages themselves; the second returned tensor is then not the edge state."""
        lat = self.latent
        w, bias = self.phi.first_linear()              # [H, 3L], [H]
        pre = F.linear(e, w[:, 2 * lat:], bias)        # [E, H]
        return self._finish(x, edge_index, e, pre, need_edges)

    def forward_folded(self, x: Tensor, edge_index: Tensor, e_hidden: Tensor, w_e: Tensor, b_e: Tensor,
                       need_edges: bool = True) -> tuple[Tensor, Tensor]:
        """Factored path with the edge encoder's last Linear folded into W_c.

        e = w_e e_hidden + b_e is the edge embedding; W_c e + b = (W_c w_e) e_hidden + (W_c b_e + b),
        so the [E, L] embedding is never formed. Valid only when the caller does not need e itself
        (no edge residual into a later layer). Returns (x, m) with m the messages [E, L].
        """
        wc, bc = self.folded_weights(w_e, b_e)
        pre = F.linear(e_hidden, wc, bc)                # [E, H]
        x_new, m = self._finish(x, edge_index, None, pre, need_edges)
        return x_new, m

    def folded_weights(self, w_e: Tensor, b_e: Tensor) -> tuple[Tensor, Tensor]:
        """(W_c w_e, W_c b_e + b): the message MLP's first Linear on the edge encoder's hidden state."""
        lat = self.latent
        w, bias = self.phi.first_linear()
        return F.linear(w_e.t(), w[:, 2 * lat:]).t().contiguous(), F.linear(b_e, w[:, 2 * lat:], bias)

    def node_terms(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(W_a x, W_b x) [N, H]: the receiver and sender parts of the first message Linear, once per node."""
        w, _ = self.phi.first_linear()
        lat = self.latent
        return F.linear(x, w[:, :lat]), F.linear(x, w[:, lat:2 * lat])

    def message_hidden(self, pre: Tensor) -> Tensor:
        """The message MLP's last hidden state from its first Linear's output (n_layers >= 2)."""
        return self.phi.tail_hidden(pre)

    def update_from_sums(self, x: Tensor, receiver: Tensor, ysum: Tensor) -> Tensor:
        """x' from ysum [N, H], the receivers' sums of the message MLP's last hidden state (n_layers >= 2,
        no norm): the last Linear commutes with the sum, sum_j (W y_ij + c) = W sum_j y_ij + deg_i c."""
        w_last, b_last = self.phi.last_linear()
        deg = torch.bincount(receiver, minlength=x.size(0)).to(ysum.dtype)
        agg = torch.addmm(deg.unsqueeze(1) * b_last.unsqueeze(0), ysum, w_last.t())
        x_new = self.psi(torch.cat([x, agg], dim=1))
        return x + x_new if self.residual else x_new

    def _finish(self, x: Tensor, edge_index: Tensor, e: Tensor | None, pre: Tensor, need_edges: bool
                ) -> tuple[Tensor, Tensor]:
        sender = edge_index[0]
        receiver = edge_index[1]
        a, b = self.node_terms(x)                      # [N, H] receiver and sender parts
        pre.add_(a.index_select(0, receiver)).add_(b.index_select(0, sender))   # in place: fewer big temporaries
        if not need_edges and self.phi.n_layers >= 2 and not self.phi.has_norm:
            # only the sum reaches the nodes: a [N, H] x [H, L] product instead of [E, H] x [H, L]
            y = self.phi.tail_hidden(pre)               # [E, H]
            ysum = torch.zeros((x.size(0), y.size(1)), dtype=y.dtype, device=y.device)
            ysum.index_add_(0, receiver, y)
            return self.update_from_sums(x, receiver, ysum), ysum
        m = self.phi.tail(pre)                          # [E, L] messages
        agg = torch.zeros((x.size(0), m.size(1)), dtype=m.dtype, device=m.device)
        agg.index_add_(0, receiver, m)                  # [N, L] sum at receivers
        x_new = self.psi(torch.cat([x, agg], dim=1))
        if self.residual:
            x_new = x + x_new
            if e is not None and need_edges:
                return x_new, e + m
        return x_new, m

    @torch.jit.unused
    def forward_reference(self, x: Tensor, edge_index: Tensor, e: Tensor) -> tuple[Tensor, Tensor]:
        """Plain PyG eager path (edge_updater -> propagate), for tests and benchmarks."""
        m = self.edge_updater(edge_index, x=x, e=e)     # [E, L] phi(cat[x_i, x_j, e_ij])
        agg = self.propagate(edge_index, m=m)           # [N, L] sum at receivers (aggr="add")
        x_new = self.psi(torch.cat([x, agg], dim=1))
        if self.residual:
            return x + x_new, e + m
        return x_new, m

    @torch.jit.unused
    def edge_update(self, x_i: Tensor, x_j: Tensor, e: Tensor) -> Tensor:
        return self.phi(torch.cat([x_i, x_j, e], dim=1))

    @torch.jit.unused
    def message(self, m: Tensor) -> Tensor:
        return m


class GNNSimulator(nn.Module):
    """Encoder-processor-decoder GNN: raw features -> raw accelerations (docs/formats.md).

    Args:
        config: `ModelConfig` (history h, layers k, widths, residual, ...).

    Shapes:
        node_features [N, 2h]: velocities v(t), ..., v(t-h+1) (distance/step), flattened
            (vx(t), vy(t), vx(t-1), ...).
        edge_index [2, E] int64: (sender, receiver), both directions of every bond.
        edge_features [E, 4]: (dx, dy, |d|, 1/l_r), d = minimum image of r_receiver - r_sender.
        returns [N, 2]: accelerations a(t) (distance/step²), so r(t+1) = 2r(t) - r(t-1) + a(t).
    """

    def __init__(self, config: ModelConfig | None = None):
        super().__init__()
        cfg = config or ModelConfig()
        self.config = cfg
        self.history = cfg.history
        self.prior = float(cfg.prior)
        self.node_in = 2 * cfg.history
        self.node_norm = OnlineNormalizer(self.node_in, cfg.std_epsilon, cfg.std_rel_epsilon)
        self.edge_norm = OnlineNormalizer(EDGE_INPUTS, cfg.std_epsilon, cfg.std_rel_epsilon)
        self.target_norm = OnlineNormalizer(DIMENSION, cfg.std_epsilon, cfg.std_rel_epsilon)
        self.node_encoder = MLP(self.node_in, cfg.hidden, cfg.latent, cfg.mlp_layers, cfg.layer_norm)
        self.edge_encoder = MLP(EDGE_INPUTS, cfg.hidden, cfg.latent, cfg.mlp_layers, cfg.layer_norm)
        self.processor = nn.ModuleList(
            [InteractionLayer(cfg.latent, cfg.hidden, cfg.mlp_layers, cfg.residual, cfg.layer_norm)
             for _ in range(cfg.layers)])
        self.decoder = MLP(cfg.latent, cfg.hidden, DIMENSION, cfg.mlp_layers, False)
        # The first layer can take the edge encoder's last Linear folded into its message MLP
        # when nothing later needs the edge embedding itself (k = 1, or no edge residual).
        self.fold_edge_encoder = (not cfg.layer_norm) and (cfg.layers == 1 or not cfg.residual)
        self.edge_block = EDGE_BLOCK
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Paper initialisation of every Linear; LayerNorm to identity."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                init_linear_(module)
            elif isinstance(module, nn.LayerNorm):
                module.reset_parameters()

    def _check(self, node_features: Tensor, edge_index: Tensor, edge_features: Tensor) -> None:
        if node_features.dim() != 2 or node_features.size(1) != self.node_in:
            raise ValueError("expected node_features of shape [N, " + str(self.node_in) + "], got "
                             + str(node_features.shape))
        if edge_index.dim() != 2 or edge_index.size(0) != 2:
            raise ValueError("expected edge_index of shape [2, E], got " + str(edge_index.shape))
        if edge_index.dtype != torch.long:
            raise ValueError("expected edge_index of dtype int64, got " + str(edge_index.dtype))
        if edge_features.dim() != 2 or edge_features.size(1) != 4 or edge_features.size(0) != edge_index.size(1):
            raise ValueError("expected edge_features of shape [" + str(edge_index.size(1)) + ", 4], got "
                             + str(edge_features.shape))

    def model_inputs(self, node_features: Tensor, edge_features: Tensor) -> tuple[Tensor, Tensor]:
        """The features the normalisers and encoders see, derived from the contract's raw ones.

        Nodes [N, 2h]: (v(t), v(t) - v(t-1), ..., v(t-h+2) - v(t-h+1)). Edges [E, 5]: the raw
        (dx, dy, |d|, 1/l_r) and the bond strain |d|/l_r - 1. In a quasi-static compression the
        velocity changes (~1e-6 per step) are a thousandth of the velocities and the strains a
        hundredth of the lengths: normalised separately they reach the MLPs at unit scale, which a
        difference of two large normalised inputs would not.
        """
        if self.history > 1:
            v = node_features.view(node_features.size(0), self.history, 2)
            node_in = torch.cat([v[:, 0], (v[:, :-1] - v[:, 1:]).reshape(v.size(0), -1)], dim=1)
        else:
            node_in = node_features
        strain = edge_features[:, 2:3] * edge_features[:, 3:4] - 1.0
        return node_in, torch.cat([edge_features, strain], dim=1)

    def forward_normalized(self, node_features: Tensor, edge_index: Tensor, edge_features: Tensor) -> Tensor:
        """Normalised accelerations [N, 2] (the training loss is MSE on these)."""
        self._check(node_features, edge_index, edge_features)
        node_in, edge_in = self.model_inputs(node_features, edge_features)
        x = self.node_encoder(self.node_norm(node_in))
        en = self.edge_norm(edge_in)
        if self.fold_edge_encoder and len(self.processor) == 1 and self.edge_encoder.n_layers >= 2:
            return self.decoder(self.single_layer_in_blocks(x, edge_index, en))
        w_e, b_e = self.edge_encoder.last_linear()
        if self.fold_edge_encoder:
            e = self.edge_encoder.hidden(en)            # [E, hidden]; layer 0 applies (W_c w_e, W_c b_e + b)
        else:
            e = self.edge_encoder(en)                   # [E, L]
        last = len(self.processor) - 1
        for i, layer in enumerate(self.processor):
            if i == 0 and self.fold_edge_encoder:
                # ModuleList items are typed Module; TorchScript knows each one is an InteractionLayer
                x, e = layer.forward_folded(x, edge_index, e, w_e, b_e, i < last)  # type: ignore[operator]
            else:
                x, e = layer(x, edge_index, e, i < last)
        return self.decoder(x)

    def single_layer_in_blocks(self, x: Tensor, edge_index: Tensor, en: Tensor) -> Tensor:
        """The node state after the one interaction layer (k = 1, edge encoder folded into its message MLP,
        MLPs of >= 2 layers without norm) from the normalised edge inputs en [E, 5], edge_block edges at a
        time: edge encoder hidden state, first message Linear, the node terms gathered, the message MLP's
        hidden layers and the sum at the receivers, without an [E, hidden] tensor. Same arithmetic as
        forward_folded + the summed path of _finish, row by row."""
        w_e, b_e = self.edge_encoder.last_linear()
        sender, receiver = edge_index[0], edge_index[1]
        n_edges = en.size(0)
        for layer in self.processor:  # the one layer (TorchScript iterates a ModuleList, it does not index it)
            # ModuleList items are typed Module; TorchScript knows each one is an InteractionLayer
            wc, bc = layer.folded_weights(w_e, b_e)  # type: ignore[operator]
            a, b = layer.node_terms(x)  # type: ignore[operator]
            ysum = torch.zeros((x.size(0), wc.size(0)), dtype=x.dtype, device=x.device)
            for start in range(0, n_edges, self.edge_block):
                stop = min(start + self.edge_block, n_edges)
                r = receiver[start:stop]
                pre = F.linear(self.edge_encoder.hidden(en[start:stop]), wc, bc)
                pre.add_(a.index_select(0, r)).add_(b.index_select(0, sender[start:stop]))
                ysum.index_add_(0, r, layer.message_hidden(pre))  # type: ignore[operator]
            x = layer.update_from_sums(x, receiver, ysum)  # type: ignore[operator]
        return x

    def acceleration_prior(self, node_features: Tensor) -> Tensor:
        """[N, 2] prior c (v(t) - v(t-1)) added to the network's output (zeros when c = 0)."""
        if self.prior == 0.0:
            return torch.zeros_like(node_features[:, 0:2])
        return self.prior * (node_features[:, 0:2] - node_features[:, 2:4])

    def _with_prior(self, network_accel: Tensor, node_features: Tensor) -> Tensor:
        """The network's accelerations plus the prior (nothing added when c = 0, the default)."""
        if self.prior == 0.0:
            return network_accel
        return network_accel + self.acceleration_prior(node_features)

    def normalized_target(self, node_features: Tensor, target: Tensor) -> Tensor:
        """The training target of `forward_normalized`: the normalised residual a - a_prior."""
        return self.target_norm(target - self.acceleration_prior(node_features))

    def forward(self, node_features: Tensor, edge_index: Tensor, edge_features: Tensor) -> Tensor:
        """Raw accelerations [N, 2] from raw features (factored fast path; scriptable)."""
        return self._with_prior(
            self.target_norm.inverse(self.forward_normalized(node_features, edge_index, edge_features)), node_features)

    @torch.jit.unused
    def forward_normalized_reference(self, node_features: Tensor, edge_index: Tensor,
                                     edge_features: Tensor) -> Tensor:
        """`forward_normalized` through plain PyG eager message passing."""
        self._check(node_features, edge_index, edge_features)
        node_in, edge_in = self.model_inputs(node_features, edge_features)
        x = self.node_encoder(self.node_norm(node_in))
        e = self.edge_encoder(self.edge_norm(edge_in))
        for layer in self.processor:
            assert isinstance(layer, InteractionLayer)
            x, e = layer.forward_reference(x, edge_index, e)
        return self.decoder(x)

    @torch.jit.unused
    def forward_reference(self, node_features: Tensor, edge_index: Tensor, edge_features: Tensor) -> Tensor:
        """`forward` through plain PyG eager message passing (reference and benchmark baseline)."""
        return self._with_prior(
            self.target_norm.inverse(self.forward_normalized_reference(node_features, edge_index, edge_features)),
            node_features)

    @torch.jit.unused
    def update_normalizers(self, node_features: Tensor, edge_features: Tensor, target: Tensor) -> None:
        """Fold one batch into the running statistics (single process)."""
        node_in, edge_in = self.model_inputs(node_features, edge_features)
        self.node_norm.update(node_in)
        self.edge_norm.update(edge_in)
        self.target_norm.update(target - self.acceleration_prior(node_features))


def build_model(config: ModelConfig | dict | None = None) -> GNNSimulator:
    """A fresh `GNNSimulator` from a `ModelConfig` or its dict form."""
    if isinstance(config, dict):
        config = ModelConfig.from_dict(config)
    return GNNSimulator(config)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
