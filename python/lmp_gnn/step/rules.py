"""The physical rules of a learned step: the one Python definition of each.

The C++ definitions of `fix gnn/rollout` are in csrc/gnn_rules.h; tests/test_rule_parity.py holds
the two equal in float64 on random inputs (through `lmp_gnn._core`). Every caller in the package
(the rollout, training's push-forward and unrolled loss, the Python bridge, the driver, the
analysis) uses these; change both homes or neither. docs/formats.md ("The learned step") states
the rules for users.

Conventions: positions [N, 2] are unwrapped (each node followed continuously across periodic
boundaries) and measured from the box centre; box lengths [2]; axis 0 = x is the driven
(compressed) axis, axis 1 = y the free one.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

DRIVEN_AXIS = 0   # x: the box length follows the protocol, -Δl per step
FREE_AXIS = 1     # y: the box length follows the learned motion
RATIO_MIN, RATIO_MAX = 0.5, 1.5   # the band of the box rule's correction of the free fit (free_strain_from_fits)


# ---------------------------------------------------------------------------- advance
def advance(r: Tensor, velocities: Tensor, a: Tensor) -> tuple[Tensor, Tensor]:
    """One learned step: v(t+1) = v(t) + a(t), r(t+1) = r(t) + v(t+1).

    r [N, 2], velocities [h, N, 2] newest first, a [N, 2] -> (r(t+1), velocities shifted by one,
    v(t+1) first). Differentiable (training's unrolled loss backpropagates through it).
    """
    v_new = velocities[0] + a
    return r + v_new, torch.cat([v_new.unsqueeze(0), velocities[:-1]], dim=0)


# ---------------------------------------------------------------------------- box rule
def free_axis_strain(positions: Tensor, displacement: Tensor, axis: int = FREE_AXIS) -> Tensor:
    """Affine strain increment along `axis` fitted to a step's displacement field.

    eps = Σ_i u_i y_i / Σ_i y_i² with y_i the node's unwrapped coordinate along `axis` at the start
    of the step (box centred at the origin) and u_i the displacement r(t+1) - r(t). Unwrapped, not
    wrapped into the box: the box deforms every periodic image about its centre, so a homogeneous
    strain eps moves a node of image n by eps (x + n L), and only the unwrapped fit returns eps.
    """
    y = positions[:, axis]
    return (displacement[:, axis] * y).sum() / (y * y).sum()


def free_strain_from_fits(fit_free: Tensor | float, fit_driven: Tensor | float,
                          driven_strain: float) -> Tensor | float:
    """The free axis's strain of a step: its fitted strain scaled by how far the driven axis's fit
    is from the driven axis's known box strain, k · fit_free with k = driven_strain / fit_driven.

    Each fit (`free_axis_strain`) also absorbs the part of the non-affine motion that correlates
    with position; the bias is alike on both axes and cancels in the ratio, and the driven axis's
    strain is known from the protocol (-Δl / L). Driven by MD's own displacements, the ratio keeps
    the box ν within a mean 0.011 / 0.016 / 0.026 of MD's after 20 / 100 steps and at 5 % strain on
    16 held-out networks, the plain fit 0.048 / 0.056 / 0.054 (`benchmarks/box_rule.py`). In MD
    compressions k lies in 0.62-1.06 (16 networks, every 5th step); outside [RATIO_MIN, RATIO_MAX]
    (or without a driven strain) k is 1: a step whose nodes do not follow the drive (a start from
    rest, motion other than a compression, a driven fit near 0) has no ratio to take, and the box
    then follows the nodes' own fit rather than run away from them.
    """
    k = driven_strain / fit_driven if fit_driven != 0.0 else 0.0
    return k * fit_free if RATIO_MIN <= k <= RATIO_MAX else fit_free


def step_delta_l(delta_l: float, box_length: float | None, length: float) -> float:
    """The box change Δl per learned step for a box of driven length `length`.

    A learned step is a fixed strain of the driven axis: the model's Δl over the driven length of
    its training boxes (metadata `box_length`), times `length`; so one model serves boxes of every
    size and the learned steps per unit strain do not grow with the box. A model that does not
    record box_length (None or 0) steps by its Δl.
    """
    return float(delta_l) * float(length) / float(box_length) if box_length else float(delta_l)


def box_rule(box: Tensor, delta_l: float, eps: Tensor | float, driven: int = DRIVEN_AXIS) -> Tensor:
    """The box after one learned step: the driven length - Δl, the free length × (1 + eps), eps
    from `free_strain_from_fits`.

    Applied recursively (L(t+1) from L(t)), the box stays centred at the origin, and node
    positions are not rescaled: the model moves the nodes, the box only follows them.
    """
    new = box.clone()
    new[driven] = box[driven] - delta_l
    new[1 - driven] = box[1 - driven] * (1.0 + eps)
    return new


# ---------------------------------------------------------------------------- unwrap
def unwrap(x: np.ndarray, image: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Positions followed continuously across periodic boundaries: R = x + n L.

    x [N, 2] wrapped positions, image [N, 2] LAMMPS image flags n, box [2] lengths.
    """
    return np.asarray(x, dtype=np.float64) + np.asarray(image, dtype=np.float64) * np.asarray(box, dtype=np.float64)


# ---------------------------------------------------------------------------- hand-over to MD
def hand_over_velocity(u: np.ndarray, r: np.ndarray, box: np.ndarray, box_new: np.ndarray,
                       md_time: float) -> np.ndarray:
    """The MD velocity [N, 2] that continues a learned step.

    In MD the box carries the affine part of the motion (fix deform's remap of x, the barostat's
    dilation of y), so the velocity is the step's displacement u [N, 2] less the affine
    displacement strain · r of the box change box -> box_new, per MD time (md_time = MD steps per
    learned step × timestep). r [N, 2]: unwrapped positions before the step, measured from the box
    centre: the remap moves a node of image n with its image, by strain · (x + n L).
    """
    box, box_new = np.asarray(box, dtype=np.float64), np.asarray(box_new, dtype=np.float64)
    strain = box_new / box - 1.0
    return (np.asarray(u, dtype=np.float64) - strain * np.asarray(r, dtype=np.float64)) / md_time


# ---------------------------------------------------------------------------- bond-force signal
def net_bond_force(edge_features: Tensor, edge_index: Tensor, n_nodes: int) -> Tensor:
    """[N, 2] the net force of the harmonic bonds on each node, from the edge features.

    A bond E = K (|d| - l_r)² of stiffness K = 1/l_r (the networks of lmp-gnn; the model's stiffness
    feature) pulls the receiver of edge (dx, dy, |d|, 1/l_r) by -2 K (|d| - l_r) d / |d|; each
    node sums the edges into it. A state of quasi-static MD is nearly in force balance (RMS net
    force ~1e-6 per node on the data's networks); a learned state is not, by about as much as its
    positions are off (fix gnn/rollout's f_ID[13], docs/fix_gnn_rollout.md).
    """
    d, length, inv_rest = edge_features[:, :2], edge_features[:, 2:3], edge_features[:, 3:4]
    force = -2.0 * (length * inv_rest - 1.0) / length * d
    out = torch.zeros(n_nodes, 2, dtype=edge_features.dtype)
    return out.index_add_(0, edge_index[1], force)


# ---------------------------------------------------------------------------- ν_est
def estimator_images(r0: np.ndarray, box0: np.ndarray) -> np.ndarray:
    """[N, 2] the image n0 = round(r0 / L0) of each node in the reference configuration.

    ν_est measures each node's distance from the box centre from this image on, following the
    node continuously: |r(t) - n0 L(t)|. Wrapping instead into the current box would make the
    estimate jump in slope whenever a node crosses the boundary.
    """
    return np.round(np.asarray(r0, dtype=np.float64) / np.asarray(box0, dtype=np.float64))


def estimator_sums(r: np.ndarray, box: np.ndarray, images: np.ndarray) -> np.ndarray:
    """[2] Σ_i |r_i - n0_i L| per axis: the nodes' summed distance from the box centre."""
    r, box = np.asarray(r, dtype=np.float64), np.asarray(box, dtype=np.float64)
    return np.abs(r - images * box).sum(axis=0)


def nu_estimator_from_sums(sum0: np.ndarray, sumt: np.ndarray, driven: int = DRIVEN_AXIS) -> float:
    """ν_est = -e_free / e_driven, e = Σ(t)/Σ(0) - 1 the estimated strain of each axis.

    The paper's D_η = l0_η Σ(t)/Σ(0) - l0_η divided by l0_η: the strain form, which equals the
    imposed ν for an affine deformation of any box (the literal -D_y/D_x is off by l0_y/l0_x).
    """
    strain = np.asarray(sumt, dtype=np.float64) / np.asarray(sum0, dtype=np.float64) - 1.0
    if strain[driven] == 0:
        raise ValueError("expected a configuration strained along the driven axis, got no strain")
    return float(-strain[1 - driven] / strain[driven])


def nu_estimator(r0: np.ndarray, rt: np.ndarray, box0: np.ndarray, boxt: np.ndarray,
                 driven: int = DRIVEN_AXIS) -> float:
    """The paper's ν_est between a reference configuration and a later one of the same nodes.

    r0, rt [N, 2]: unwrapped positions measured from the box centre (rt followed continuously
    from r0); box0, boxt [2]: the box lengths of the two.
    """
    images = estimator_images(r0, box0)
    return nu_estimator_from_sums(estimator_sums(r0, box0, images), estimator_sums(rt, boxt, images), driven)
