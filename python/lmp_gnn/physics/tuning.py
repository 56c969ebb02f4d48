"""Tuning a network's Poisson's ratio by greedy bond pruning driven by exact linear response.

The network's elastic response is the quadratic form E(u, e) = ½ Σ_b k_b (β_b·u + a_b·e)²
(unstressed bonds, k_b = 2 K_b, see `lmp_gnn.physics.elastic`). With G = H⁺ the relaxed constants are
A C = S = Σ_b k_b w_b w_bᵀ, w_b = a_b - Yᵀ G β_b (the relaxed stretch of bond b per unit
strain). Removing bond b is a rank-1 change of H, and exactly

    S' = S - k_b w_b w_bᵀ / (1 - p_b),     p_b = k_b β_bᵀ G β_b ∈ [0, 1],

    G' = G + k_b (G β_b)(G β_b)ᵀ / (1 - p_b)      (Sherman–Morrison).

p_b = 1 means bond b alone holds some mode: removing it creates a floppy mode, and such
removals are refused (p_b > 1 - pivot_tol). Every step evaluates ν' for every candidate bond at
once and removes the one that brings ν closest to the target (for "joint", below: the smallest
sum of squared deviations of the tuned ratios), keeping every node at ≥ 3 bonds and the elastic
matrix positive definite; it stops within `tol` of the target, or raises `TargetNotReachedError`
with the best ν reached when no removal gets closer (what it reaches: docs/physics.md §4).

The pruned network keeps all its nodes and positions; removed bonds simply disappear (rest
lengths unchanged, still unstressed).

`tune_positions` is the paper's alternative (supplement §I.A.4, docs/physics.md §4): keep every bond and move
the nodes by clipped gradient descent on ν with minimum-distance and minimum-angle penalties;
here the gradient is exact (linear response written in torch), not finite differences.

Both take objective "nu" (the isotropic ν of docs/physics.md §5) or "joint": ν together with the two
ratios an MD compression along x measures, the box ratio ν_box = C12/C22 and the paper's node
estimator ν_est. On pruned auxetic networks these three can differ by 0.1–0.3
(docs/physics.md §7); "joint" keeps all three within tol of the target.

Cost: both keep dense [2N, 2N] matrices, memory ~ 8·(4N² + 2MN) bytes: fine to N ≈ 1000
(measured times: docs/physics.md §4).
"""

from __future__ import annotations

import time

import numpy as np
import scipy.linalg
from scipy.spatial import cKDTree

from lmp_gnn.physics.elastic import (
    FloppyNetworkError,
    bond_geometry,
    compatibility_matrix,
    elastic_matrix,
    nu_from_matrix,
    strain_vectors,
    uniaxial_response,
)
from lmp_gnn.physics.network import Network

NU_RANGE = (-0.6, 0.4)


class TargetNotReachedError(RuntimeError):
    """Tuning could not bring ν (or, for "joint", all tuned ratios) within tolerance of the target.

    Attributes:
        target: the requested ν.
        best_nu: the ν closest to the target that was reached.
        network: the network at best_nu (a valid, rigid network).
        report: the tuning report up to the point where it stopped.
    """

    def __init__(self, message: str, target: float, best_nu: float, network: Network, report: dict):
        super().__init__(message)
        self.target = target
        self.best_nu = best_nu
        self.network = network
        self.report = report


OBJECTIVES = ("nu", "joint")


def tune_poisson(net: Network, target_nu: float, tol: float = 0.01, *, objective: str = "nu",
                 max_removed_fraction: float = 0.25, min_coordination: int = 3, pivot_tol: float = 1e-6,
                 refresh_every: int = 20, affine_slack: float = 0.0) -> tuple[Network, dict]:
    """Prune bonds of `net` until its linear-response ν is within `tol` of `target_nu`.

    Args:
        net: an unstressed, rigid network (every bond at its rest length), e.g. from
            `lmp_gnn.physics.generate.jammed_network`.
        target_nu: the Poisson's ratio wanted, ν = (1 - G/B)/(1 + G/B) (docs/physics.md §5); the
            generator's networks reach any target in [-0.6, 0.4].
        tol: stop when |ν - target| < tol (for "joint": every tracked ratio within tol).
        objective: "nu" tunes the isotropic ν only. "joint" also brings the two ratios a
            compression along x measures (`lmp_gnn.physics.elastic.uniaxial_response`: the box ratio
            ν_box = C12/C22 and the paper's node estimator ν_est) within tol of the target, so
            that MD of the tuned network shows the target ν by either measure at small strain;
            each step then minimises the largest of the three deviations.
        max_removed_fraction: give up after removing this fraction of the bonds.
        min_coordination: never take a node below this many bonds.
        pivot_tol: refuse removals with 1 - p_b < pivot_tol (they would create a floppy or
            nearly floppy mode).
        refresh_every: recompute G from scratch after this many removals (bounds round-off).
        affine_slack: 0 (default) is plain greedy. With s in (0, 1), each step considers every
            removal that achieves at least (1 - s) of the best step's decrease of the loss and
            takes the one whose linear response to a compression along x is the least
            non-affine (smallest mean squared non-affine node displacement per unit strain):
            pruned networks with large non-affine motion tend to be nonlinear already at 1 %
            strain.

    Returns:
        (tuned, report): tuned is a new Network (same nodes, a subset of the bonds, info
        extended with "tuning"); report is a JSON-serialisable dict: method, objective, target,
        tol, status, nu_initial, nu_final (recomputed from scratch), nu_tracked (from the
        rank-1 updates), uniaxial_x_initial/final (ν, ν_box, ν_est under compression along x),
        removed_bonds (indices into net.bonds, in removal order), n_removed, removed_fraction,
        nu_history, Z_initial, Z_final, min_pivot (smallest 1 - p_b accepted),
        lambda_min_nonzero_initial/final (softest non-trivial Hessian eigenvalue), affine_slack,
        nonaffinity_final (`nonaffinity_x` of the tuned network), nonaffinity_tracked (the same
        from the rank-1 updates, NaN unless affine_slack > 0 and the target was reached), wall_time_s.

    Raises:
        ValueError: bad arguments or a stressed network.
        FloppyNetworkError: `net` itself is floppy.
        TargetNotReachedError: no sequence of allowed removals got within tol; carries the
            best ν reached and that network.
    """
    t0 = time.perf_counter()
    if objective not in OBJECTIVES:
        raise ValueError(f"expected objective in {OBJECTIVES}, got {objective!r}")
    if not np.isfinite(target_nu):
        raise ValueError(f"expected a finite target ν, got {target_nu}")
    if not -1.0 < target_nu < 1.0:
        raise ValueError(f"expected a target ν in (-1, 1) (the 2D stability range), got {target_nu}")
    if not tol > 0:
        raise ValueError(f"expected tol > 0, got {tol}")
    if not 0.0 <= affine_slack < 1.0:
        raise ValueError(f"expected 0 ≤ affine_slack < 1, got {affine_slack}")
    if not 0 < max_removed_fraction <= 1:
        raise ValueError(f"expected 0 < max_removed_fraction ≤ 1, got {max_removed_fraction}")
    n, l = bond_geometry(net)
    strain_err = np.max(np.abs(l - net.rest_length) / net.rest_length)
    if strain_err > 1e-9:
        raise ValueError(f"expected an unstressed network (|l - l_r|/l_r ≤ 1e-9 for every bond), "
                         f"got max {strain_err:.3g}; tuning assumes bonds at rest length")
    C0, _, diag0 = elastic_matrix(net)  # raises FloppyNetworkError
    nu0 = nu_from_matrix(C0)
    uni0 = uniaxial_response(net, "x")

    N, M = net.n_nodes, net.n_bonds
    k = 2.0 * net.stiffness  # E = ½ k δl²
    a = strain_vectors(n, l)  # [M, 3]
    beta = compatibility_matrix(net, n)[:, 2:].tocsr()  # node 0 pinned: [M, 2N-2]
    alive = np.ones(M, dtype=bool)
    coord = net.coordination().astype(np.int64)
    i_node, j_node = net.bonds[:, 0], net.bonds[:, 1]
    # the estimator's linear functionals on the pinned displacements: s_η = Σ_i (sign - mean) u_η,i / Σ|r_η|
    r = net.wrapped_positions()
    sgn = np.sign(r)
    ell = ((sgn - sgn.mean(axis=0)) / np.abs(r).sum(axis=0))[1:].reshape(-1)  # [2N-2], x and y interleaved
    ell_x = np.where(np.arange(2 * N - 2) % 2 == 0, ell, 0.0)
    ell_y = np.where(np.arange(2 * N - 2) % 2 == 1, ell, 0.0)
    mask_x = (np.arange(2 * N - 2) % 2 == 0).astype(float)
    mask_y = 1.0 - mask_x

    def fresh_G():
        kb = beta[alive].multiply(np.sqrt(k[alive])[:, None]).tocsr()
        H = (kb.T @ kb).toarray()
        cf = scipy.linalg.cho_factor(H)  # positive definite: rigid checked
        return scipy.linalg.cho_solve(cf, np.eye(H.shape[0]))

    def ratios(S, Z):
        """(ν, ν_box, ν_est) of the current state (S [3,3] = A·C, Z [2N-2, 3] = G Y)."""
        e = np.array([1.0, -S[1, 0] / S[1, 1], 0.0])
        u = -Z @ e
        return nu_from_matrix(S), -e[1], -(e[1] + ell_y @ u) / (1.0 + ell_x @ u)

    G = fresh_G()
    Y = np.asarray(beta.T @ (k[:, None] * a))  # [2N-2, 3]
    S = (a * k[:, None]).T @ a - Y.T @ G @ Y
    Z = G @ Y

    def deviation(nu_, box_, est_):
        """Largest deviation from the target of the tuned ratios (the stopping criterion)."""
        d = np.abs(np.asarray(nu_) - target_nu)
        if objective == "joint":
            d = np.maximum(d, np.maximum(np.abs(np.asarray(box_) - target_nu), np.abs(np.asarray(est_) - target_nu)))
        return d

    def loss(nu_, box_, est_):
        """What each greedy step minimises: the squared deviations of the tuned ratios."""
        d = (np.asarray(nu_) - target_nu) ** 2
        if objective == "joint":
            d = d + (np.asarray(box_) - target_nu) ** 2 + (np.asarray(est_) - target_nu) ** 2
        return d

    nu, nu_box, nu_est = ratios(S, Z)
    dev = float(deviation(nu, nu_box, nu_est))
    cur_loss = float(loss(nu, nu_box, nu_est))
    history = [nu]
    removed: list[int] = []
    best = (dev, nu, alive.copy(), len(removed))
    min_pivot = 1.0
    nonaffinity = float("nan")
    max_removed = int(max_removed_fraction * M)
    status = "reached"

    while dev >= tol:
        if len(removed) >= max_removed:
            status = f"stopped after removing {len(removed)} bonds (max_removed_fraction={max_removed_fraction})"
            break
        BG = np.asarray(beta @ G)  # [M, 2N-2], row b = (G β_b)ᵀ
        p = k * np.asarray(beta.multiply(BG).sum(axis=1)).ravel()
        piv = 1.0 - p
        ok = alive & (coord[i_node] > min_coordination) & (coord[j_node] > min_coordination) & (piv > pivot_tol)
        cand = np.flatnonzero(ok)
        if len(cand) == 0:
            status = "no removable bond left"
            break
        W = a[cand] - BG[cand] @ Y  # [m, 3] relaxed stretch per unit strain
        c = k[cand] / piv[cand]
        Sc = S[None] - c[:, None, None] * W[:, :, None] * W[:, None, :]
        Sc = 0.5 * (Sc + Sc.transpose(0, 2, 1))
        ev = np.linalg.eigvalsh(Sc)
        c11a = 0.5 * (Sc[:, 0, 0] + Sc[:, 1, 1])
        c12a = Sc[:, 0, 1]
        Bm, Gm = 0.5 * (c11a + c12a), 0.5 * (c11a - c12a)
        stable = (ev[:, 0] > 1e-10 * ev[:, -1]) & (Bm > 0) & (Gm > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            nus = (Bm - Gm) / (Bm + Gm)
            ey = -Sc[:, 1, 0] / Sc[:, 1, 1]
            if objective == "joint":
                # Z' = Z - c g wᵀ  =>  u' = -Z e' + c g (w·e')
                E = np.stack([np.ones_like(ey), ey, np.zeros_like(ey)], axis=1)
                we = np.sum(W * E, axis=1)
                sx = 1.0 + (-(E @ (Z.T @ ell_x)) + c * (BG[cand] @ ell_x) * we)
                sy = ey + (-(E @ (Z.T @ ell_y)) + c * (BG[cand] @ ell_y) * we)
                ests = -sy / sx
            else:
                ests = nus
            dist = np.where(stable, loss(nus, -ey, ests), np.inf)
        pick = int(np.argmin(dist))
        if not np.isfinite(dist[pick]) or dist[pick] >= cur_loss:
            status = "no removal brings the tuned ratios closer to the target"
            break
        if affine_slack > 0:
            good = np.flatnonzero(dist <= cur_loss - (1.0 - affine_slack) * (cur_loss - dist[pick]))
            gamma = _nonaffinity(Z, BG[cand[good]], W[good], c[good], ey[good], N, mask_x, mask_y)
            pick = int(good[np.argmin(gamma)])
            nonaffinity = float(gamma.min())
        b = int(cand[pick])
        gb = BG[b]
        G += c[pick] * np.outer(gb, gb)
        Z -= c[pick] * np.outer(gb, W[pick])
        brow = beta[b].toarray().ravel()
        Y -= k[b] * np.outer(brow, a[b])
        S = Sc[pick]
        alive[b] = False
        coord[i_node[b]] -= 1
        coord[j_node[b]] -= 1
        removed.append(b)
        min_pivot = min(min_pivot, float(piv[b]))
        cur_loss = float(dist[pick])
        dev = float(deviation(nus[pick], -ey[pick], ests[pick]))
        nu = float(nus[pick])
        history.append(nu)
        if dev < best[0]:
            best = (dev, nu, alive.copy(), len(removed))
        if len(removed) % refresh_every == 0:
            G = fresh_G()
            S = (a[alive] * k[alive, None]).T @ a[alive] - Y.T @ G @ Y
            Z = G @ Y

    reached = dev < tol
    keep = alive if reached else best[2]
    n_kept_removals = len(removed) if reached else best[3]
    removed_final = removed[:n_kept_removals]
    tuned = _subnetwork(net, keep)
    C1, _, diag = elastic_matrix(tuned)  # from scratch; raises FloppyNetworkError if something went wrong
    nu1 = nu_from_matrix(C1)
    uni1 = uniaxial_response(tuned, "x")
    dev1 = float(deviation(nu1, uni1["nu_box"], uni1["nu_est"]))
    report = {
        "method": "greedy bond pruning (exact linear response, rank-1 updates)",
        "objective": objective,
        "target": float(target_nu),
        "tol": float(tol),
        "affine_slack": float(affine_slack),
        "status": "reached" if dev1 < tol else status,
        "nu_initial": float(nu0),
        "nu_final": float(nu1),
        "nu_tracked": float(nu if reached else best[1]),
        "uniaxial_x_initial": uni0,
        "uniaxial_x_final": uni1,
        "removed_bonds": [int(x) for x in removed_final],
        "n_removed": len(removed_final),
        "removed_fraction": len(removed_final) / M,
        "nu_history": [float(x) for x in history[:n_kept_removals + 1]],
        "Z_initial": 2.0 * M / N,
        "Z_final": 2.0 * tuned.n_bonds / N,
        "min_pivot": float(min_pivot),
        "nonaffinity_final": nonaffinity_x(tuned),
        "nonaffinity_tracked": nonaffinity if reached else float("nan"),
        "lambda_min_nonzero_initial": float(diag0["lambda_min_nonzero"]),
        "lambda_min_nonzero_final": float(diag["lambda_min_nonzero"]),
        "wall_time_s": time.perf_counter() - t0,
    }
    tuned.info["tuning"] = {k_: v for k_, v in report.items() if k_ not in ("nu_history", "removed_bonds")}
    if dev1 >= tol:
        what = "ν" if objective == "nu" else "max(|ν|, |ν_box|, |ν_est|) deviation"
        raise TargetNotReachedError(
            f"expected ν within {tol} of {target_nu} (objective {objective!r}), got best ν = {nu1:.4f} "
            f"({what} {dev1:.4f} from the target; ν_box = {uni1['nu_box']:.4f}, ν_est = {uni1['nu_est']:.4f}) "
            f"after removing {len(removed_final)} of {M} bonds: {report['status']}",
            float(target_nu), float(nu1), tuned, report)
    return tuned, report


def nonaffinity_x(net: Network) -> float:
    """Mean squared non-affine node displacement per unit strain, Σ_i |u_i - ū|² / N, of the
    linear response to a compression along x with zero stress on y (the quantity
    `tune_poisson(..., affine_slack > 0)` keeps small)."""
    import scipy.sparse.linalg as spla

    from lmp_gnn.physics.elastic import _assemble

    C, _, _ = elastic_matrix(net, check_floppy=False)
    H, Y, _, _ = _assemble(net)
    e = np.array([1.0, -C[1, 0] / C[1, 1], 0.0])
    u: np.ndarray = np.zeros(2 * net.n_nodes)
    u[2:] = -spla.splu(H[2:, 2:].tocsc()).solve(Y[2:] @ e)
    u = u.reshape(-1, 2)
    u -= u.mean(axis=0)
    return float(np.mean(np.sum(u ** 2, axis=1)))


def _nonaffinity(Z, g, W, c, ey, N, mask_x, mask_y):
    """[m] mean squared non-affine displacement per unit strain of the compression along x
    (e = (1, ey, 0)) after each of m candidate removals (rows of g = G β_b, W, c, ey).

    u' = -Z e + c g (w·e) on the pinned dofs (node 0 fixed); its mean over all N nodes is removed.
    """
    v0, v1 = Z[:, 0], Z[:, 1]
    we = W[:, 0] + ey * W[:, 1]
    cw = c * we
    gv0, gv1, gg = g @ v0, g @ v1, np.einsum("ij,ij->i", g, g)
    sq = (v0 @ v0 + 2 * ey * (v0 @ v1) + ey ** 2 * (v1 @ v1) - 2 * cw * (gv0 + ey * gv1) + cw ** 2 * gg)
    sx = -(mask_x @ v0 + ey * (mask_x @ v1)) + cw * (g @ mask_x)
    sy = -(mask_y @ v0 + ey * (mask_y @ v1)) + cw * (g @ mask_y)
    return (sq - (sx ** 2 + sy ** 2) / N) / N


def _subnetwork(net: Network, keep_bonds: np.ndarray) -> Network:
    """The network with only the bonds where keep_bonds [M] is True (all nodes kept)."""
    return Network(net.positions.copy(), net.box.copy(), net.bonds[keep_bonds], net.rest_length[keep_bonds],
                   net.stiffness[keep_bonds], net.node_type.copy(), dict(net.info))


__all__ = ["tune_poisson", "tune_positions", "TargetNotReachedError", "FloppyNetworkError", "NU_RANGE", "OBJECTIVES"]


# ---------------------------------------------------------------------------- node positions
def tune_positions(net: Network, target_nu: float, tol: float = 0.01, *, objective: str = "nu",
                   max_iter: int = 50, learning_rate: float = 4.0, clip: float = 0.01, r_min: float = 0.2,
                   theta_min_deg: float = 15.0) -> tuple[Network, dict]:
    """Tune ν by moving nodes: the paper's gradient descent (supplement §I.A.4, docs/physics.md §4).

    Every iteration moves all nodes at once, r ← r - λ·clip(∂L/∂r, ±clip), with

        L = s·ν (s = sign(ν - target), so ν moves towards the target from either side)
            + 0.1 Σ_pairs H(r_min - r_ij)(r_ij - r_min)²          (any two nodes closer than r_min)
            + 0.01 Σ_angles H(θ_min - θ)(θ - θ_min)⁶               (θ in degrees, every pair of
                                                                   bonds at a node)

    and then resets every bond's rest length to its new length (the network stays unstressed,
    K = 1/l_r). Unlike the paper, λ halves whenever ν overshoots the target (the sign of ν - target
    flips), which stops the fixed-step oscillation around the target seen with λ = 4. The gradient
    of ν is exact: the linear response is written in torch (float64) and differentiated through,
    where the paper used finite differences of LAMMPS runs. With objective "joint" the ν term is
    replaced by the largest-deviation term among ν, ν_box and ν_est of a compression along x, each
    with its own sign. It stops when the tuned ratios are
    within `tol` of the target or after `max_iter` iterations; finally lengths are rescaled to
    mean bond length 1. The paper's degree unit for θ is an assumption (it does not say).

    Args:
        net: an unstressed, rigid network.
        target_nu, tol, objective: as in `tune_poisson`.
        max_iter: iteration limit (the paper: 50).
        learning_rate: λ (the paper: 4).
        clip: gradient clip per coordinate (the paper: 0.01), so nodes move ≤ λ·clip per step.
        r_min: minimum node distance of the penalty (mean-bond-length units; the paper: 0.2).
        theta_min_deg: minimum bond angle of the penalty (the paper: 15°).

    Returns:
        (tuned, report) as `tune_poisson`; report has nu_history, max_displacement (largest
        node move from the start, in the final length unit), iterations, wall_time_s.

    Raises:
        TargetNotReachedError: not within tol after max_iter (carries the closest network).
        FloppyNetworkError: `net` is floppy.
    """
    import torch

    t0 = time.perf_counter()
    if objective not in OBJECTIVES:
        raise ValueError(f"expected objective in {OBJECTIVES}, got {objective!r}")
    if not -1.0 < target_nu < 1.0:
        raise ValueError(f"expected a target ν in (-1, 1) (the 2D stability range), got {target_nu}")
    if not tol > 0 or max_iter < 0 or not learning_rate > 0 or not clip > 0:
        raise ValueError(f"expected tol, learning_rate, clip > 0 and max_iter ≥ 0, got {tol}, {learning_rate}, "
                         f"{clip}, {max_iter}")
    _, l0 = bond_geometry(net)
    strain_err = np.max(np.abs(l0 - net.rest_length) / net.rest_length)
    if strain_err > 1e-9:
        raise ValueError(f"expected an unstressed network (|l - l_r|/l_r ≤ 1e-9 for every bond), "
                         f"got max {strain_err:.3g}")
    C0, _, _ = elastic_matrix(net)
    nu0 = nu_from_matrix(C0)
    box = torch.tensor(net.box, dtype=torch.float64)
    bi = torch.tensor(net.bonds[:, 0])
    bj = torch.tensor(net.bonds[:, 1])
    angle_pairs = _bond_pairs_at_nodes(net)  # [P, 3]: centre node, bond a, bond b
    pa, pb = torch.tensor(angle_pairs[:, 1]), torch.tensor(angle_pairs[:, 2])
    sign_a = torch.tensor(np.where(net.bonds[angle_pairs[:, 1], 0] == angle_pairs[:, 0], 1.0, -1.0))
    sign_b = torch.tensor(np.where(net.bonds[angle_pairs[:, 2], 0] == angle_pairs[:, 0], 1.0, -1.0))
    ratios = _torch_ratios(net, objective)

    def penalties(pos_t):
        p = pos_t.detach().numpy()
        pw = p - net.box * np.floor(p / net.box)
        pairs = cKDTree(pw % net.box, boxsize=net.box).query_pairs(r=r_min, output_type="ndarray")
        pen = torch.zeros((), dtype=torch.float64)
        if len(pairs):
            dd = pos_t[pairs[:, 1]] - pos_t[pairs[:, 0]]
            dd = dd - box * torch.round(dd / box)
            rr = torch.linalg.norm(dd, dim=1)
            pen = pen + 0.1 * torch.sum(torch.clamp(r_min - rr, min=0.0) ** 2)
        if len(angle_pairs):
            d = pos_t[bj] - pos_t[bi]
            d = d - box * torch.round(d / box)
            va, vb = d[pa] * sign_a[:, None], d[pb] * sign_b[:, None]  # both pointing away from the centre
            cos = (va * vb).sum(dim=1) / (torch.linalg.norm(va, dim=1) * torch.linalg.norm(vb, dim=1))
            theta = torch.rad2deg(torch.arccos(torch.clamp(cos, -1.0 + 1e-15, 1.0 - 1e-15)))
            pen = pen + 0.01 * torch.sum(torch.clamp(theta_min_deg - theta, min=0.0) ** 6)
        return pen

    def devs(nu_, box_, est_):
        vals = [nu_] if objective == "nu" else [nu_, box_, est_]
        return [float(v.detach()) - target_nu for v in vals]

    pos = torch.tensor(net.positions, dtype=torch.float64)
    start = pos.clone()
    history, best = [], None
    it = 0
    step = learning_rate
    last_sign = None
    while True:
        pos.requires_grad_(True)
        nu_t, box_t, est_t = ratios(pos)
        dv = devs(nu_t, box_t, est_t)
        dev = max(abs(x) for x in dv)
        history.append(float(nu_t.detach()))
        if best is None or dev < best[0]:
            best = (dev, pos.detach().clone(), it)
        if dev < tol or it >= max_iter:
            break
        terms = [nu_t] if objective == "nu" else [nu_t, box_t, est_t]
        worst = int(np.argmax([abs(x) for x in dv]))
        sign = np.sign(dv[worst])
        if last_sign is not None and last_sign[0] == worst and last_sign[1] != sign:
            step *= 0.5  # overshot the target: halve the step (the paper keeps λ fixed)
        last_sign = (worst, sign)
        loss = sign * terms[worst] + penalties(pos)
        (grad,) = torch.autograd.grad(loss, pos)
        with torch.no_grad():
            pos = pos - step * torch.clamp(grad, -clip, clip)
        it += 1

    final = best[1].numpy()
    moved = np.linalg.norm(_min_image(final - start.numpy(), net.box), axis=1).max()
    d = _min_image(final[net.bonds[:, 1]] - final[net.bonds[:, 0]], net.box)
    lengths = np.linalg.norm(d, axis=1)
    scale = 1.0 / lengths.mean()
    pos_f = final * scale
    box_f = net.box * scale
    pos_f = pos_f - box_f * np.round(pos_f / box_f)
    rest = lengths * scale
    tuned = Network(pos_f, box_f, net.bonds.copy(), rest, 1.0 / rest, net.node_type.copy(), dict(net.info))
    C1, _, diag = elastic_matrix(tuned)
    nu1 = nu_from_matrix(C1)
    uni1 = uniaxial_response(tuned, "x")
    dev1 = max(abs(v - target_nu) for v in ([nu1] if objective == "nu" else [nu1, uni1["nu_box"], uni1["nu_est"]]))
    report = {
        "method": "node-position gradient descent (exact linear-response gradient, clipped)",
        "objective": objective, "target": float(target_nu), "tol": float(tol),
        "status": "reached" if dev1 < tol else f"not within tol after {max_iter} iterations",
        "nu_initial": float(nu0), "nu_final": float(nu1), "uniaxial_x_final": uni1,
        "iterations": int(best[2]), "nu_history": history[:best[2] + 1],
        "max_displacement": float(moved * scale), "length_scale": float(scale),
        "min_bond_length": float(rest.min()),
        "lambda_min_nonzero_final": float(diag["lambda_min_nonzero"]),
        "wall_time_s": time.perf_counter() - t0,
    }
    tuned.info["tuning"] = {k_: v for k_, v in report.items() if k_ != "nu_history"}
    if not dev1 < tol:
        raise TargetNotReachedError(
            f"expected ν within {tol} of {target_nu} (objective {objective!r}), got best ν = {nu1:.4f} after "
            f"{max_iter} iterations of node-position descent", float(target_nu), float(nu1), tuned, report)
    return tuned, report


def _torch_ratios(net: Network, objective: str):
    """A differentiable map positions [N, 2] (torch float64) → (ν, ν_box, ν_est) of the network
    with the same bonds, every bond at rest in the given geometry (l_r = l, K = 1/l).

    ν_box and ν_est (compression along x) are None for objective "nu".
    """
    import torch

    N = net.n_nodes  # and M = net.n_bonds in the shapes below
    box = torch.tensor(net.box, dtype=torch.float64)
    bi = torch.tensor(net.bonds[:, 0])
    bj = torch.tensor(net.bonds[:, 1])
    # flat indices of each bond's Hessian blocks (ii, jj, ij, ji; 2x2 each) and force blocks (i, j; 2x3)
    di = torch.stack([2 * bi, 2 * bi + 1], dim=1)  # [M, 2]
    dj = torch.stack([2 * bj, 2 * bj + 1], dim=1)
    blocks = ((di, di), (dj, dj), (di, dj), (dj, di))
    h_index = torch.stack([(r[:, :, None] * (2 * N) + c[:, None, :]) for r, c in blocks], dim=1).reshape(-1)
    y_index = torch.stack([(r[:, :, None] * 3 + torch.arange(3)[None, None, :]) for r in (di, dj)], dim=1).reshape(-1)

    def ratios(pos_t):
        d = pos_t[bj] - pos_t[bi]
        d = d - box * torch.round(d / box)
        l = torch.linalg.norm(d, dim=1)
        n = d / l[:, None]
        k = 2.0 / l  # K = 1/l_r with l_r = l: every bond at rest in the current geometry
        a = l[:, None] * torch.stack([n[:, 0] ** 2, n[:, 1] ** 2, n[:, 0] * n[:, 1]], dim=1)
        # H = Σ_b k_b β_b β_bᵀ and Y = Σ_b k_b β_b a_bᵀ, scattered 2x2 / 2x3 blocks
        knn = k[:, None, None] * n[:, :, None] * n[:, None, :]  # [M, 2, 2]
        blocks = torch.stack([knn, knn, -knn, -knn], dim=1).reshape(-1)  # (ii, jj, ij, ji)
        H = torch.zeros(4 * N * N, dtype=torch.float64).index_put((h_index,), blocks, accumulate=True)
        H = H.reshape(2 * N, 2 * N)[2:, 2:]
        kna = (k[:, None] * n)[:, :, None] * a[:, None, :]  # [M, 2, 3]
        Y = torch.zeros(6 * N, dtype=torch.float64).index_put((y_index,), torch.stack([-kna, kna], dim=1).reshape(-1),
                                                            accumulate=True)
        Y = Y.reshape(2 * N, 3)[2:]
        Z = _spd_solve(H, Y)  # G Y
        S = (a * k[:, None]).T @ a - Y.T @ Z
        S = 0.5 * (S + S.T)
        c11a = 0.5 * (S[0, 0] + S[1, 1])
        Bm, Gm = 0.5 * (c11a + S[0, 1]), 0.5 * (c11a - S[0, 1])
        nu_ = (Bm - Gm) / (Bm + Gm)
        if objective == "nu":
            return nu_, None, None
        ey = -S[1, 0] / S[1, 1]
        e = torch.stack([torch.ones_like(ey), ey, torch.zeros_like(ey)])
        u = torch.cat([torch.zeros(2, dtype=torch.float64), -(Z @ e)]).reshape(N, 2)
        u = u - u.mean(dim=0)
        r = pos_t - box * torch.round(pos_t / box)
        sg = torch.sign(r).detach()
        s = (sg * (r * e[:2] + u)).sum(dim=0) / torch.abs(r).sum(dim=0)
        return nu_, -ey, -s[1] / s[0]

    return ratios


def _spd_solve(H, Y):
    """Z = H⁻¹ Y for a symmetric positive-definite H, differentiable in H and Y (torch).

    The backward pass reuses the Cholesky factor: Ȳ = H⁻¹ Z̄, H̄ = -Ȳ Zᵀ, O(n²) per right-hand
    side instead of the O(n³) of differentiating through the factorisation.
    """
    import torch

    class _Solve(torch.autograd.Function):
        @staticmethod
        def forward(ctx, H_, Y_):
            cf = scipy.linalg.cho_factor(H_.detach().numpy())
            Z_ = torch.from_numpy(scipy.linalg.cho_solve(cf, Y_.detach().numpy()))
            ctx.cf = cf
            ctx.save_for_backward(Z_)
            return Z_

        @staticmethod
        def backward(ctx, gZ):
            (Z_,) = ctx.saved_tensors
            gY = torch.from_numpy(scipy.linalg.cho_solve(ctx.cf, gZ.numpy()))
            return -gY @ Z_.T, gY

    return _Solve.apply(H, Y)


def _min_image(d: np.ndarray, box: np.ndarray) -> np.ndarray:
    return d - box * np.round(d / box)


def _bond_pairs_at_nodes(net: Network) -> np.ndarray:
    """[P, 3] (node, bond a, bond b) for every pair of bonds a < b sharing that node."""
    out = []
    ends = np.concatenate([net.bonds[:, 0], net.bonds[:, 1]])
    ids = np.concatenate([np.arange(net.n_bonds), np.arange(net.n_bonds)])
    order = np.argsort(ends, kind="stable")
    ends, ids = ends[order], ids[order]
    starts = np.searchsorted(ends, np.arange(net.n_nodes + 1))
    for v in range(net.n_nodes):
        b = ids[starts[v]:starts[v + 1]]
        for x in range(len(b)):
            for y in range(x + 1, len(b)):
                out.append((v, b[x], b[y]))
    return np.array(out, dtype=np.int64).reshape(-1, 3)
