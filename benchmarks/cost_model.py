"""The cost of a learned step, against what this machine's matrix units can do, measured in one run.

    python benchmarks/cost_model.py [--sizes 32 100] [--threads 1 2] [--seconds 0.5]

For the shipped model (python/lmp_gnn/data/demo_model.pt: h = 3, k = 1, width 128) on the jittered
triangular lattice `triangular_network(n, n)` (N ≈ n², 6 directed edges per node):

- FLOPs per node of one model call, by module (torch.utils.flop_counter on the eager model the
  export was made from, same weights: the factored forward the TorchScript runs), and in all;
- the best float32 GEMM rate at the model's largest shape [E, 128] x [128, 128] on this machine,
  through two libraries, at each thread count: `torch.mm` on dense tensors (MKL) and
  `torch.nn.functional.linear` on mkldnn tensors (oneDNN, what `torch.utils.mkldnn` uses);
- the achieved rate of the exported model (TorchScript, the module fix gnn/rollout loads) =
  FLOPs / wall time of a call, and its fraction of the best GEMM rate.

The time the fix spends outside the model call (features, graph, update, box, communication) is
`benchmarks/fix_speed.py`'s "fix ms" less "model ms". Rates are medians of repeated timings in one
run; on a shared machine compare the ratios, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from lmp_gnn.learning.export import load_exported
from lmp_gnn.physics.generate import triangular_network
from lmp_gnn.step import features

warnings.filterwarnings("ignore", category=DeprecationWarning, message=r".*torch\.jit.*")
SHIPPED = Path(__file__).resolve().parents[1] / "python" / "lmp_gnn" / "data" / "demo_model.pt"


def graph(n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(node features [N, 6], edge_index [2, E], edge features [E, 4]) of the n x n lattice, float32."""
    net = triangular_network(n, n, seed=0)
    ei = features.edge_index_from_bonds(torch.from_numpy(net.bonds))
    rest = torch.from_numpy(net.rest_length)
    ef = features.edge_features(torch.from_numpy(net.positions), torch.from_numpy(net.box), ei, torch.cat([rest, rest]))
    nf = torch.randn(net.n_nodes, 6, generator=torch.Generator().manual_seed(0)) * 1e-3
    return nf.float(), ei, ef.float()


def seconds_per_call(fn, budget: float) -> float:
    """Median wall time of fn() over repeats filling about `budget` seconds (after warm-up calls)."""
    for _ in range(2):
        fn()
    times: list[float] = []
    start = time.perf_counter()
    while time.perf_counter() - start < budget or len(times) < 3:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def gemm_rates(rows: int, budget: float) -> dict[str, float]:
    """GFLOP/s of [rows, 128] x [128, 128] float32 through MKL (torch.mm) and oneDNN (mkldnn linear)."""
    a, w = torch.randn(rows, 128), torch.randn(128, 128)
    flops = 2.0 * rows * 128 * 128
    rates = {"MKL torch.mm": flops / seconds_per_call(lambda: torch.mm(a, w), budget) / 1e9}
    if torch.backends.mkldnn.is_available():
        a_m, w_m = a.to_mkldnn(), w.to_mkldnn()
        rates["oneDNN linear"] = flops / seconds_per_call(lambda: torch.nn.functional.linear(a_m, w_m), budget) / 1e9
    return rates


def flops_by_module(eager: torch.nn.Module, nf, ei, ef) -> dict[str, float]:
    """FLOPs of one eager forward by top-level module (each counted at the shallowest depth the
    counter names it), 'outside modules' (the products the factored forward does between them) and
    'total'."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        eager(nf, ei, ef)
    counts = {
        name.split(".", 1)[1]: float(sum(ops.values()))
        for name, ops in counter.get_flop_counts().items()
        if name.count(".") >= 1 and not name.startswith("Global")
    }
    out: dict[str, float] = {}
    for group in dict.fromkeys(name.split(".")[0] for name in counts):
        names = [name for name in counts if name.split(".")[0] == group]
        depth = min(name.count(".") for name in names)
        out[group] = sum(counts[name] for name in names if name.count(".") == depth)
    total = float(counter.get_total_flops())
    out["outside modules"] = total - sum(out.values())
    out["total"] = total
    return out


def eager_twin(scripted: torch.nn.Module, meta: dict) -> torch.nn.Module:
    """The GNNSimulator an exported model was made from (its hyper-parameters), with its weights."""
    from lmp_gnn.learning.model import GNNSimulator, ModelConfig

    model = GNNSimulator(ModelConfig.from_dict(meta["hparams"]["model"])).float().eval()
    model.load_state_dict(scripted.state_dict())
    return model


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[32, 100], help="lattice side n (N ≈ n²)")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="torch thread counts")
    p.add_argument("--seconds", type=float, default=0.5, help="timing budget per measurement")
    p.add_argument("--model", type=Path, default=SHIPPED, help="exported model (default: the shipped one)")
    args = p.parse_args()
    scripted, meta = load_exported(args.model)
    scripted.eval()
    eager = eager_twin(scripted, meta)
    for n in args.sizes:
        nf, ei, ef = graph(n)
        nodes, edges = nf.shape[0], ei.shape[1]
        flops = flops_by_module(eager, nf, ei, ef)
        print(
            f"\nN = {nodes}, E = {edges}: FLOPs per node per learned step "
            + ", ".join(f"{k} {v / nodes:,.0f}" for k, v in flops.items())
        )
        for threads in args.threads:
            torch.set_num_threads(threads)
            rates = gemm_rates(edges, args.seconds)
            best = max(rates.values())
            with torch.no_grad():
                call = seconds_per_call(lambda nf=nf, ei=ei, ef=ef: scripted(nf, ei, ef), args.seconds)
            achieved = flops["total"] / call / 1e9
            print(
                f"  {threads} thread(s): GEMM [E,128]x[128,128] "
                + ", ".join(f"{k} {v:.0f}" for k, v in rates.items())
                + f" GFLOP/s; model call {1000 * call:.2f} ms = {achieved:.0f} GFLOP/s, "
                f"{achieved / best:.2f} of the best GEMM rate"
            )


if __name__ == "__main__":
    main()
