"""The accuracy-size trade of the learned step: width 32 / 64 / 128 and k = 1 / 2 at equal training budget.

    python benchmarks/model_size.py --train TRAIN_DIR --eval EVAL_DIR --out RUN_DIR --steps 4000

For each (width, k) in --widths x --layers (default {32, 64, 128} x {1, 2}) one v1 model of
benchmarks/feature_frames.py (h = 3, prior 1, `latent` = `hidden` = width, k message-passing layers)
is trained by that script's one-step loop with the same optimiser steps, batch (8), learning-rate
schedule, seed and batch sequence, and saved as RUN_DIR/w{width}_k{k}.pt. A checkpoint already there
with the same steps, seed and configuration is reused (the training data are not compared), so a
second call with another --eval directory (the held-out test set) judges the same models without
training them again.

Printed per model, beside the zero-acceleration baseline (zero1) on the --eval trajectories:

- parameter count; FLOPs per node of one learned step (torch.utils.flop_counter, on the first
  --eval network: benchmarks/cost_model.py's count);
- the model-call time (the TorchScript of the export) relative to the reference model (the widest
  width, k = the first of --layers; 128 / 1 by default), on the first --eval network and on the
  n x n lattice of cost_model.py (--lattice): per round, every model is timed (median over
  --seconds) and divided by the reference's time of the same round; the median ratio over
  --repeats rounds, (min-max);
- feature_frames.py's accuracy rows: position MSE after 1 and 100 steps (geometric mean), mean
  |Δν_est| at 1 % and 4.9 % strain against MD (max, R²), mean |Δν_box| at 4.9 %, non-finite rollouts
  (rollouts from 0.25 % strain);
- "keeps": whether the model keeps the reference's accuracy. The rule: on every trajectory paired
  with the reference, (a) the mean of |Δν_est(4.9 %)| - |Δν_est,ref(4.9 %)| and (b) the mean of
  ln(MSE100 / MSE100_ref) are each at most 2 standard errors (of that mean, over the trajectories)
  above 0, and no rollout is non-finite. A model that is significantly better passes; one that is
  worse within the spread over networks passes too.

Everything runs on one thread (torch.set_num_threads(1)). The JSON of all numbers is written to
RUN_DIR/eval_<name of EVAL_DIR>.json. What it measured: docs/model.md, "Model size against accuracy".
"""

from __future__ import annotations

import argparse
import glob
import json
import time
from pathlib import Path

import cost_model
import feature_frames as ff
import numpy as np
import torch

from lmp_gnn.learning.export import quiet_jit, script_model

VERSION = 1  # feature_frames.py's v1: the feature contract of today


def checkpoint_path(out: Path, width: int, layers: int) -> Path:
    return out / f"w{width}_k{layers}.pt"


def ensure_trained(out: Path, data: str, width: int, layers: int, steps: int, seed: int) -> tuple[Path, float | None]:
    """(checkpoint, training wall seconds, None if an equal checkpoint was reused)."""
    path = checkpoint_path(out, width, layers)
    cfg = ff.model_config(width, layers)
    if path.exists():
        ck = torch.load(path, weights_only=False)
        if ck.get("steps") == steps and ck.get("seed") == seed and ck.get("model") == cfg.to_dict():
            return path, None
    t0 = time.perf_counter()
    ff.train(VERSION, str(path), data, steps, seed=seed, cfg=cfg)
    return path, time.perf_counter() - t0


def call_time_ratios(models: dict[str, torch.nn.Module], ref: str, graph, repeats: int, seconds: float):
    """{name: (median, min, max)} over `repeats` rounds of (call time / the reference's, same round)."""
    with quiet_jit():
        scripted = {name: script_model(m) for name, m in models.items()}
    ratios: dict[str, list[float]] = {name: [] for name in models}
    with torch.no_grad():
        for _ in range(repeats):
            times = {name: cost_model.seconds_per_call(lambda s=s: s(*graph), seconds) for name, s in scripted.items()}
            for name in models:
                ratios[name].append(times[name] / times[ref])
    return {name: (float(np.median(r)), min(r), max(r)) for name, r in ratios.items()}


def keeps(rows: list[dict], ref_rows: list[dict]) -> dict:
    """The choice rule of the docstring, with its paired differences (mean, standard error)."""
    assert [r["name"] for r in rows] == [r["name"] for r in ref_rows]

    def paired(f):
        d = np.array([f(r) - f(q) for r, q in zip(rows, ref_rows, strict=True)])
        se = float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else float("nan")
        return float(d.mean()), se

    nu = paired(lambda r: abs(r["nu0.049"] - r["nu_md0.049"]))
    mse = paired(lambda r: float(np.log(r["mse100"])))
    finite = all(r["finite"] for r in rows)
    ok = finite and all(np.isfinite(m) and np.isfinite(se) and m <= 2 * se for m, se in (nu, mse))
    return {"keeps": bool(ok), "dnu0.049": nu, "dlog_mse100": mse}


def table(results: dict, ref: str) -> str:
    head = [
        "model", "params", "FLOPs/node", "call time, data net", "call time, lattice", "MSE 1 step", "MSE 100 steps",
        "\\|Δν_est\\| 1 %", "\\|Δν_est\\| 4.9 % (max, R²)", "\\|Δν_box\\| 4.9 %", "non-finite", "keeps",
    ]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for name, r in results.items():
        s = r["summary"]
        cost = r.get("cost")
        cells = [name]
        if cost:
            cells += [
                f"{cost['params']:,}",
                f"{cost['flops_per_node']:,.0f}",
                "{:.2f} ({:.2f}-{:.2f})".format(*cost["ratio_data"]),
                "{:.2f} ({:.2f}-{:.2f})".format(*cost["ratio_lattice"]),
            ]
        else:
            cells += ["0", "0", "—", "—"]
        cells += [
            f"{s['mse1_gmean']:.2g}",
            f"{s['mse100_gmean']:.2g}",
            f"{s['nu0.01_mean']:.4f}",
            "—" if s["nonfinite"] else f"{s['nu0.049_mean']:.3f} ({s['nu0.049_max']:.2f}, {s['nu0.049_r2']:.2f})",
            "—" if s["nonfinite"] else f"{s['nubox0.049_mean']:.3g}",
            str(s["nonfinite"]),
            "reference" if name == ref else ("yes" if r["keeps"]["keeps"] else "no") if "keeps" in r else "—",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--train", required=True, help="directory of training trajectory files")
    p.add_argument("--eval", required=True, help="directory of trajectory files to judge the models on")
    p.add_argument("--out", required=True, type=Path, help="directory of the checkpoints and the JSON")
    p.add_argument("--steps", type=int, default=4000, help="optimiser steps of every training")
    p.add_argument("--seed", type=int, default=0, help="seed of every training (initialisation, batches)")
    p.add_argument("--widths", type=int, nargs="+", default=[32, 64, 128])
    p.add_argument("--layers", type=int, nargs="+", default=[1, 2], help="message-passing layers k")
    p.add_argument("--repeats", type=int, default=5, help="timing rounds")
    p.add_argument("--seconds", type=float, default=0.3, help="timing budget per model and round")
    p.add_argument("--lattice", type=int, default=100, help="side n of the timing lattice (N ≈ n²)")
    a = p.parse_args()
    torch.set_num_threads(1)
    a.out.mkdir(parents=True, exist_ok=True)
    names = [f"w{w}_k{k}" for k in a.layers for w in a.widths]
    ref = f"w{max(a.widths)}_k{a.layers[0]}"

    paths, train_s = {}, {}
    for k in a.layers:
        for w in a.widths:
            name = f"w{w}_k{k}"
            paths[name], train_s[name] = ensure_trained(a.out, a.train, w, k, a.steps, a.seed)
            done = f"trained in {train_s[name]:.0f} s" if train_s[name] is not None else "reused"
            print(f"{name}: {done}, {paths[name]}", flush=True)

    models = {name: ff.load(str(paths[name]))[1] for name in names}
    first = ff.Traj(sorted(glob.glob(a.eval + "/*.npz"))[0])
    nf, ef, _ = first.sample(VERSION, first.windows[0])
    data_graph = (nf.float(), first.ei, ef.float())
    ratio_data = call_time_ratios(models, ref, data_graph, a.repeats, a.seconds)
    ratio_lattice = call_time_ratios(models, ref, cost_model.graph(a.lattice), a.repeats, a.seconds)

    results: dict[str, dict] = {}
    for name in [*names, "zero1"]:
        t0 = time.perf_counter()
        rows = ff.evaluate(str(paths[name]) if name in paths else name, a.eval, "warm")
        results[name] = {"summary": ff.summary(rows, name), "rows": rows, "eval_s": time.perf_counter() - t0}
        if name in models:
            m = models[name]
            results[name]["cost"] = {
                "params": sum(q.numel() for q in m.parameters()),
                "flops_per_node": cost_model.flops_by_module(m, *data_graph)["total"] / nf.shape[0],
                "ratio_data": ratio_data[name],
                "ratio_lattice": ratio_lattice[name],
                "train_s": train_s[name],
                "steps": a.steps,
            }
        print(json.dumps(results[name]["summary"]), flush=True)
    for name in names:
        if name != ref:
            results[name]["keeps"] = keeps(results[name]["rows"], results[ref]["rows"])
    results["zero1"]["keeps"] = keeps(results["zero1"]["rows"], results[ref]["rows"])

    out = a.out / f"eval_{Path(a.eval).name}.json"
    out.write_text(json.dumps({"reference": ref, "eval": a.eval, "steps": a.steps, "results": results}, indent=1))
    print(f"\n{len(first.P[0])}-node network for FLOPs and 'data net' timing; lattice n = {a.lattice}")
    print(table(results, ref))
    for name, r in results.items():
        if "keeps" in r:
            kk = r["keeps"]
            print(
                f"{name}: Δ|Δν_est 4.9%| vs {ref} {kk['dnu0.049'][0]:+.4f} ± {kk['dnu0.049'][1]:.4f}, "
                f"Δln MSE100 {kk['dlog_mse100'][0]:+.2f} ± {kk['dlog_mse100'][1]:.2f} (mean ± s.e.)"
            )
    print(f"written {out}")


if __name__ == "__main__":
    main()
