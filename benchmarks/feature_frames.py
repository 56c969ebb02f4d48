"""Which frame should a learned step's node features live in? Three, trained and judged alike.

    python benchmarks/feature_frames.py train v1 v1.pt --data TRAIN_DIR --steps 6000
    python benchmarks/feature_frames.py train v2 v2.pt --data TRAIN_DIR --steps 6000
    python benchmarks/feature_frames.py train v3 v3.pt --data TRAIN_DIR --steps 6000
    python benchmarks/feature_frames.py eval v1.pt v2.pt v3.pt zero1 zero2 --data TEST_DIR [--start warm|h2]

- v1, the feature contract of today: node features are the absolute velocities v(t-k) = r(t-k) -
  r(t-k-1); the model predicts a(t); the free box axis follows the learned motion (box rule fit).
- v2, the box's co-deforming frame: w(t) = v(t) - s(t) R(t-1), s(t) = L(t)/L(t-1) - 1 the box
  strain of the step (R unwrapped from the box centre): the velocity less the homogeneous flow of
  the box, what LAMMPS's own velocities are under `fix deform remap x`. The model predicts
  w(t+1) - w(t); the step is u = s R + w(t+1) with s = (-Δl/Lx, the last step's free-axis strain):
  the free axis keeps its strain rate (the baseline's extrapolation of that one global number).
- v3, v2 plus a global head: the mean of the processed node latents predicts the change of the
  free-axis strain per step, Δs_y, trained on its own loss beside the accelerations.
- zero1 / zero2: the zero-acceleration baselines of v1 / v2 (zero2 keeps both the non-affine
  velocities and the free-axis strain rate).

The same GNNSimulator (h = 3, k = 1, width 128, prior 1), the same one-step loop (Adam 1e-3 ->
1e-5, batch 8, windows past the start-up transient and without events, float32, 1 thread) and the
same data for each. Printed per model: position MSE after 1 and 100 steps (geometric mean), mean
|Δν_est| at 1 % and 4.9 % strain against MD (max, R²), mean |Δν_box| at 4.9 %, non-finite
rollouts. Rollouts start at 0.25 % strain (--start warm) or at snapshot h + 2. The trajectories of
a box of another size must be recorded at the same strain per snapshot (`lmp-gnn simulate
--delta-strain`). What it measured: docs/model.md, "The frame of the node features".
"""

import argparse
import glob
import json
import time

import numpy as np
import torch

from lmp_gnn.evaluation.analysis import r2_score, snapshot_at_strain
from lmp_gnn.learning.dataset import quiet_snapshots
from lmp_gnn.learning.model import MLP, GNNSimulator, ModelConfig
from lmp_gnn.physics.trajectory import load_trajectory
from lmp_gnn.step import features as F
from lmp_gnn.step.rules import free_axis_strain, free_strain_from_fits, nu_estimator

H = 3


class GlobalHead(GNNSimulator):
    """v2 + a global readout: the change of the free-axis box strain per step, Δs_y, from the
    mean over nodes of the processed node latents (normalised by a fixed scale)."""

    def __init__(self, cfg):
        super().__init__(cfg)
        self.glob = MLP(cfg.latent, cfg.hidden, 1, 2)
        self.register_buffer("ds_scale", torch.tensor(1.0))

    def latents(self, nf, ei, ef):
        node_in, edge_in = self.model_inputs(nf, ef)
        x = self.node_encoder(self.node_norm(node_in))
        e = self.edge_encoder(self.edge_norm(edge_in))
        for layer in self.processor:
            x, e = layer(x, ei, e, False)
        return x

    def both(self, nf, ei, ef, batch, nb):
        x = self.latents(nf, ei, ef)
        pooled = torch.zeros(nb, x.shape[1], dtype=x.dtype).index_add_(0, batch, x)
        counts = torch.zeros(nb, dtype=x.dtype).index_add_(0, batch, torch.ones_like(batch, dtype=x.dtype))
        return self.decoder(x), self.glob(pooled / counts[:, None]).squeeze(1)


class Traj:
    def __init__(self, path):
        t = load_trajectory(path)
        self.name = path.split("/")[-1]
        self.P = torch.as_tensor(t.positions)  # [T,N,2] unwrapped, from the box centre
        self.B = torch.as_tensor(t.box)  # [T,2]
        self.bonds = torch.as_tensor(t.bonds, dtype=torch.long)
        self.rest = torch.as_tensor(t.rest_length)
        self.ei = F.edge_index_from_bonds(self.bonds)
        self.er = torch.cat([self.rest, self.rest])
        self.delta_l = float(t.metadata["delta_l"])
        V = self.P[1:] - self.P[:-1]  # V[t-1] = v(t)
        S = self.B[1:] / self.B[:-1] - 1.0  # S[t-1] = s(t)
        self.V = torch.cat([torch.zeros_like(V[:1]), V])  # index t -> v(t)
        self.S = torch.cat([torch.zeros_like(S[:1]), S])  # index t -> s(t)
        W = self.V.clone()
        W[1:] = V - S[:, None, :] * self.P[:-1]
        self.W = W  # index t -> w(t)
        self.windows = [t for t in quiet_snapshots(self.P, H, 100.0) if t >= H + 2]

    def sample(self, version, t):
        X = self.W if version >= 2 else self.V
        hist = X[t - H + 1 : t + 1].flip(0)  # [h,N,2] newest first
        nf = F.node_features(hist)
        ef = F.edge_features(self.P[t], self.B[t], self.ei, self.er)
        target = X[t + 1] - X[t]
        return nf, ef, target


def batch(trajs, version, idx, extra=False):
    nfs, efs, eis, tgs, bs, ds, off = [], [], [], [], [], [], 0
    for j, (k, t) in enumerate(idx):
        nf, ef, tg = trajs[k].sample(version, t)
        nfs.append(nf)
        efs.append(ef)
        tgs.append(tg)
        eis.append(trajs[k].ei + off)
        off += nf.shape[0]
        bs.append(torch.full((nf.shape[0],), j, dtype=torch.long))
        ds.append(trajs[k].S[t + 1][1] - trajs[k].S[t][1])
    out = (torch.cat(nfs).float(), torch.cat(eis, 1), torch.cat(efs).float(), torch.cat(tgs).float())
    return out + (torch.cat(bs), torch.stack(ds).float()) if extra else out


def model_config(width=128, layers=1):
    """The network of every model here: h = 3, prior 1, `layers` message-passing layers of `width`."""
    return ModelConfig(history=H, layers=layers, latent=width, hidden=width, prior=1.0)


def train(version, out, data, steps, seed=0, cfg=None):
    """Train a model of `cfg` (default: model_config()) for `steps` optimiser steps; save it to `out`."""
    cfg = cfg or model_config()
    files = sorted(glob.glob(data + "/*.npz"))
    trajs = [Traj(f) for f in files]
    torch.manual_seed(seed)
    g = np.random.default_rng(seed)
    model = (GlobalHead(cfg) if version == 3 else GNNSimulator(cfg)).float()
    if version == 3:
        model.ds_scale.fill_(float(torch.cat([t.S[H + 2 :, 1].diff() for t in trajs]).std()))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    gamma = (1e-5 / 1e-3) ** (1.0 / steps)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma)

    def draw():
        return [(k, trajs[k].windows[int(g.integers(0, len(trajs[k].windows)))]) for k in g.integers(0, len(trajs), 8)]

    with torch.no_grad():
        for _ in range(200):
            nf, ei, ef, tg = batch(trajs, version, draw())
            model.update_normalizers(nf, ef, tg)
    t0 = time.time()
    run = 0.0
    for step in range(steps):
        if version == 3:
            nf, ei, ef, tg, b, ds = batch(trajs, version, draw(), extra=True)
            acc, dsp = model.both(nf, ei, ef, b, 8)
            loss = torch.nn.functional.mse_loss(acc, model.normalized_target(nf, tg)) + torch.nn.functional.mse_loss(
                dsp, ds / model.ds_scale
            )
        else:
            nf, ei, ef, tg = batch(trajs, version, draw())
            loss = torch.nn.functional.mse_loss(model.forward_normalized(nf, ei, ef), model.normalized_target(nf, tg))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        run = 0.98 * run + 0.02 * float(loss.detach())
        if step % 500 == 0:
            print(f"v{version} step {step} loss {run:.4g} {time.time() - t0:.0f}s", flush=True)
    torch.save(
        {"version": version, "state": model.state_dict(), "steps": steps, "seed": seed, "model": cfg.to_dict()}, out
    )


def load(path):
    ck = torch.load(path, weights_only=False)
    cfg = ModelConfig.from_dict(ck["model"]) if "model" in ck else model_config()
    model = (GlobalHead(cfg) if ck["version"] == 3 else GNNSimulator(cfg)).float()
    model.load_state_dict(ck["state"])
    model.eval()
    return ck["version"], model


def roll(model, version, tr, start, n):
    """model None: zero acceleration in that version's frame."""
    R = tr.P[start].clone()
    L = tr.B[start].clone()
    X = (tr.W if version >= 2 else tr.V)[start - H + 1 : start + 1].flip(0).clone()
    s_free = tr.S[start][1].clone()
    out = [R.clone()]
    boxes = [L.clone()]
    with torch.no_grad():
        for _ in range(n):
            if model is None:
                a = torch.zeros_like(R)
            elif version == 3:
                nf = F.node_features(X).float()
                ef = F.edge_features(R, L, tr.ei, tr.er).float()
                acc, dsp = model.both(nf, tr.ei, ef, torch.zeros(len(R), dtype=torch.long), 1)
                a = model._with_prior(model.target_norm.inverse(acc), nf).double()
                s_free = s_free + float(dsp[0]) * float(model.ds_scale)
            else:
                nf = F.node_features(X).float()
                ef = F.edge_features(R, L, tr.ei, tr.er).float()
                a = model(nf, tr.ei, ef).double()
            x_new = X[0] + a
            if version >= 2:
                s = torch.stack([-tr.delta_l / L[0], s_free])
                u = s * R + x_new
            else:
                u = x_new  # the box rule of lmp_gnn.step.rollout
                driven = -tr.delta_l / float(L[0])
                free = free_strain_from_fits(free_axis_strain(R, u, 1), free_axis_strain(R, u, 0), driven)
                s = torch.stack([torch.as_tensor(driven, dtype=R.dtype), torch.as_tensor(free, dtype=R.dtype)])
            R = R + u
            L = L * (1 + s)
            X = torch.cat([x_new[None], X[:-1]])
            out.append(R.clone())
            boxes.append(L.clone())
    return torch.stack(out), torch.stack(boxes)


def evaluate(path, data, startmode):
    if path in ("zero1", "zero2"):
        version, model = int(path[-1]), None
    else:
        version, model = load(path)
    rows = []
    for f in sorted(glob.glob(data + "/*.npz")):
        tr = Traj(f)
        box = tr.B.numpy()
        start = snapshot_at_strain(box, 0.0025) if startmode == "warm" else H + 2
        end = snapshot_at_strain(box, 0.049)
        Rs, Ls = roll(model, version, tr, start, end - start)
        P0 = tr.P[0].numpy()
        B0 = box[0]
        row = {"name": tr.name, "N": tr.P.shape[1]}
        for k in (1, 100):
            row[f"mse{k}"] = float(((Rs[k] - tr.P[start + k]) ** 2).mean())
        for eps in (0.01, 0.049):
            t = snapshot_at_strain(box, eps)
            row[f"nu_md{eps}"] = nu_estimator(P0, tr.P[t].numpy(), B0, box[t])
            row[f"nu{eps}"] = nu_estimator(P0, Rs[t - start].numpy(), B0, Ls[t - start].numpy())
            row[f"nubox_md{eps}"] = -(box[t, 1] / B0[1] - 1) / (box[t, 0] / B0[0] - 1)
            row[f"nubox{eps}"] = float(-(Ls[t - start][1] / B0[1] - 1) / (Ls[t - start][0] / B0[0] - 1))
        row["finite"] = bool(torch.isfinite(Rs).all())
        rows.append(row)
    return rows


def summary(rows, label):
    def md(key):
        return np.array([r[key] for r in rows])

    s = {"label": label, "n": len(rows), "nonfinite": sum(not r["finite"] for r in rows)}
    for k in (1, 100):
        s[f"mse{k}_mean"] = float(np.mean(md(f"mse{k}")))
        s[f"mse{k}_gmean"] = float(np.exp(np.mean(np.log(md(f"mse{k}") + 1e-300))))
    for eps in (0.01, 0.049):
        d = np.abs(md(f"nu{eps}") - md(f"nu_md{eps}"))
        s[f"nu{eps}_mean"] = float(d.mean())
        s[f"nu{eps}_max"] = float(d.max())
        s[f"nu{eps}_r2"] = float(r2_score(md(f"nu_md{eps}"), md(f"nu{eps}")))
        s[f"nubox{eps}_mean"] = float(np.abs(md(f"nubox{eps}") - md(f"nubox_md{eps}")).mean())
    return s


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("cmd", choices=("train", "eval"))
    p.add_argument("args", nargs="+", help="train: v1|v2|v3 OUT.pt; eval: model files (or zero1, zero2)")
    p.add_argument("--data", required=True, help="directory of trajectory files")
    p.add_argument("--steps", type=int, default=6000, help="optimiser steps (train)")
    p.add_argument("--start", choices=("warm", "h2"), default="warm", help="rollout start (eval)")
    a = p.parse_args()
    torch.set_num_threads(1)
    if a.cmd == "train":
        train(int(a.args[0][1]), a.args[1], a.data, a.steps)
    else:
        out = {}
        for m in a.args:
            rows = evaluate(m, a.data, a.start)
            s = summary(rows, m)
            out[m] = {"summary": s, "rows": rows}
            print(json.dumps(s), flush=True)


if __name__ == "__main__":
    main()
