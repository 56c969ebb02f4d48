"""Speed of the learned simulator's network: factored (the exported path) vs plain PyG eager.

    PYTHONPATH=python .venv/bin/python benchmarks/model_speed.py [--sizes 1000 10000] [--threads 2]

For each size N it builds a periodic triangular lattice of ~N nodes with 13 % of its bonds removed
at random (mean coordination Z ~ 5.2, as the jammed networks; the GNN's cost depends on N and the
number of bonds, not on geometry), with features of the sizes the data have, and times

- inference, ms per learned step (one forward, no grad): plain PyG eager (`forward_reference`,
  MessagePassing.propagate on cat[x_i, x_j, e]), factored eager (`forward`), factored TorchScript
  (what `lmp-gnn export` writes), and that TorchScript frozen + optimize_for_inference;
- training, graphs per second (forward + backward + Adam step on normalised targets, batches of
  `--batch-graphs` copies of the graph at 1k, 1 graph at 10k and above): plain PyG vs factored;

and prints the ratios measured in this one run. Model: the paper's (h = 3, k = 1, width 128)
unless --history/--layers are given. Each timing is the median of --repeats runs after warm-up.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import numpy as np
import torch

from lmp_gnn.learning.model import GNNSimulator, ModelConfig
from lmp_gnn.step import features

warnings.filterwarnings("ignore", category=DeprecationWarning, message=r".*torch\.jit.*")


def lattice_graph(n_target: int, seed: int = 0, remove: float = 0.13):
    """(positions [N, 2], bonds [M, 2], box [2]) of a periodic triangular lattice with bonds removed at random."""
    rng = np.random.default_rng(seed)
    nx = int(round(np.sqrt(n_target)))
    ny = max(2, int(round(n_target / nx / 2)) * 2)
    h = np.sqrt(3) / 2
    idx = np.arange(nx * ny).reshape(ny, nx)
    i, j = np.meshgrid(np.arange(nx), np.arange(ny))
    pos = np.stack([i + 0.5 * (j % 2), j * h], -1).reshape(-1, 2)
    odd = j % 2
    bonds = []
    for ii, jj in (((i + 1) % nx, j), ((i + odd - 1) % nx, (j + 1) % ny), ((i + odd) % nx, (j + 1) % ny)):
        bonds.append(np.stack([idx[j, i].ravel(), idx[jj, ii].ravel()], 1))
    bonds = np.unique(np.sort(np.concatenate(bonds), axis=1), axis=0)
    bonds = bonds[bonds[:, 0] != bonds[:, 1]]
    bonds = bonds[rng.random(len(bonds)) >= remove]
    box = np.array([nx, ny * h])
    pos = pos + rng.normal(0, 0.05, pos.shape) - box / 2
    return torch.from_numpy(pos), torch.from_numpy(bonds), torch.from_numpy(box)


def make_inputs(n: int, history: int, seed: int = 0):
    pos, bonds, box = lattice_graph(n, seed)
    g = torch.Generator().manual_seed(seed)
    ei = features.edge_index_from_bonds(bonds)
    d = pos[ei[1]] - pos[ei[0]]
    rest = features.minimum_image(d, box).norm(dim=1)
    ef = features.edge_features(pos, box, ei, rest).float()
    nf = (torch.randn(pos.shape[0], 2 * history, generator=g, dtype=torch.float64) * 5e-4).float()
    target = (torch.randn(pos.shape[0], 2, generator=g, dtype=torch.float64) * 1e-5).float()
    return nf, ei, ef, target


def timeit(fns: dict, repeats: int, warmup: int = 2) -> dict:
    """Median seconds per call of each function, calls interleaved round-robin so that load
    from other processes hits every variant alike."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}


def batched(nf, ei, ef, target, copies: int):
    n = nf.shape[0]
    return (nf.repeat(copies, 1), torch.cat([ei + k * n for k in range(copies)], 1), ef.repeat(copies, 1),
            target.repeat(copies, 1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--history", type=int, default=3)
    ap.add_argument("--layers", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--batch-graphs", type=int, default=4, help="graphs per training batch below 10k nodes")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = GNNSimulator(ModelConfig(history=args.history, layers=args.layers))
    nf, ei, ef, target = make_inputs(2000, args.history)
    model.update_normalizers(nf, ef, target)
    model.eval()
    scripted = torch.jit.script(model)
    frozen = torch.jit.optimize_for_inference(torch.jit.freeze(torch.jit.script(model).eval()))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); model h={args.history} "
          f"k={args.layers} width 128, {sum(p.numel() for p in model.parameters())} parameters")
    rows = []
    for n in args.sizes:
        nf, ei, ef, target = make_inputs(n, args.history)
        n_nodes, n_edges = nf.shape[0], ei.shape[1]
        with torch.no_grad():
            ref = model.forward_reference(nf, ei, ef)
            for name, fn in (("factored", model), ("scripted", scripted), ("frozen", frozen)):
                out = fn(nf, ei, ef)
                rel = ((out - ref).abs().max() / ref.abs().max()).item()
                if rel > 1e-4:
                    raise RuntimeError(f"{name} disagrees with plain PyG at N={n_nodes}: relative {rel:.2g}")
            reps = max(3, args.repeats if n_nodes <= 20000 else 3)
            t = timeit({"ref": lambda: model.forward_reference(nf, ei, ef), "fac": lambda: model(nf, ei, ef),
                        "scr": lambda: scripted(nf, ei, ef), "frz": lambda: frozen(nf, ei, ef)}, reps)
            t_ref, t_fac, t_scr, t_frz = t["ref"], t["fac"], t["scr"], t["frz"]

        copies = args.batch_graphs if n_nodes < 10000 else 1
        bnf, bei, bef, btg = batched(nf, ei, ef, target, copies)
        train_model = GNNSimulator(ModelConfig(history=args.history, layers=args.layers))
        train_model.load_state_dict(model.state_dict())
        train_model.train()
        opt = torch.optim.Adam(train_model.parameters(), lr=1e-6)

        def step(reference: bool):
            fwd = train_model.forward_normalized_reference if reference else train_model.forward_normalized
            loss = ((fwd(bnf, bei, bef) - train_model.target_norm(btg)) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()

        t = timeit({"ref": lambda: step(True), "fac": lambda: step(False)}, max(3, reps // 2))
        tr_ref, tr_fac = t["ref"], t["fac"]
        rows.append((n_nodes, n_edges, t_ref, t_fac, t_scr, t_frz, copies / tr_ref, copies / tr_fac))
        print(f"N={n_nodes:6d} E={n_edges:6d} | inference ms/step: PyG eager {t_ref * 1e3:8.2f}, factored "
              f"{t_fac * 1e3:8.2f}, TorchScript {t_scr * 1e3:8.2f}, frozen+optimized {t_frz * 1e3:8.2f} | "
              f"ratios PyG/factored {t_ref / t_fac:4.2f}x, PyG/TorchScript {t_ref / t_scr:4.2f}x, "
              f"PyG/frozen {t_ref / t_frz:4.2f}x | training graphs/s "
              f"(batch {copies}): PyG {copies / tr_ref:7.2f}, factored {copies / tr_fac:7.2f}, "
              f"ratio {tr_ref / tr_fac:4.2f}x", flush=True)


if __name__ == "__main__":
    main()
