/* -*- c++ -*- ----------------------------------------------------------
   lmp-gnn: the physical rules of a learned step (docs/formats.md, "The learned step").

   The one C++ definition of each rule, mirrored from python/lmp_gnn/step/rules.py and held equal
   to it in float64 by tests/test_rule_parity.py (through the pybind11 module lmp_gnn._core):

     advance              v(t+1) = v(t) + a(t), r(t+1) = r(t) + v(t+1), history rolled
     box rule             driven axis L - delta_l, free axis L (1 + eps), eps the driven
                          strain times the ratio of the two axes' fits to the step's
                          displacements (free_axis_sums, free_strain_from_fits)
     step in strain       delta_l for a box of another size: the model's strain per step
                          times the box's driven length (step_delta_l)
     unwrap               R = x + n L (the position followed continuously across the boundary)
     hand-over velocity   the MD velocity that continues a learned step: its displacement less
                          the affine part the box change carries, per MD time
     nu_est               the paper's estimator in strain form, each node followed from the
                          image it had in snapshot 0
     bond-force signal    the net force of the harmonic bonds (K = 1/l_r) on each node, from
                          the edge features: a learned state's distance from force balance

   No LAMMPS and no torch in here: plain numbers in, plain numbers out.
------------------------------------------------------------------------- */

#ifndef LMP_GNN_RULES_H
#define LMP_GNN_RULES_H

#include "gnn_features.h"

#include <cmath>
#include <cstdint>

namespace LMPGNN {

/* ---------------------------------------------------------------- advance */

// the displacement of a learned step, u = v(t) + a(t) = r(t+1) - r(t); hist_row holds v(t) first
inline void learned_displacement(const double *hist_row, const double a[2], double u[2])
{
  u[0] = hist_row[0] + a[0];
  u[1] = hist_row[1] + a[1];
}

// one learned step of one node: r += u and u pushed onto the history; returns u in `u`
inline void advance(int history, double *hist_row, double r[2], const double a[2], double u[2])
{
  learned_displacement(hist_row, a, u);
  r[0] += u[0];
  r[1] += u[1];
  push_velocity(history, hist_row, u[0], u[1]);
}

/* ---------------------------------------------------------------- box rule */

// partial sums of the free-axis strain fit: num += u_i y_i, den += y_i^2 with y_i the node's
// unwrapped coordinate (x + n L) along the axis measured from the box centre. Unwrapped, not
// wrapped: the box deforms every periodic image about the centre, so a homogeneous strain moves
// a node of image n by eps (x + n L), and only the unwrapped fit returns that eps exactly
inline void free_axis_sums(double coord, double centre, double displacement, double &num, double &den)
{
  const double y = coord - centre;
  num += displacement * y;
  den += y * y;
}

// eps from the summed fit (0 when no node lies off the centre line)
inline double free_axis_strain_from_sums(double num, double den)
{
  return den > 0.0 ? num / den : 0.0;
}

// eps = sum u_i y_i / sum y_i^2 over N nodes along `axis` (positions unwrapped, box centred at
// the origin)
double free_axis_strain(int64_t nnodes, const double *positions, const double *displacement, int axis);

// the free axis's strain of a step: its fit scaled by k = driven_strain / fit_driven (the
// non-affine motion biases both fits alike; the ratio cancels it); k = 1 outside
// [RATIO_MIN, RATIO_MAX] (nodes that do not follow the drive: no ratio to take)
constexpr double RATIO_MIN = 0.5, RATIO_MAX = 1.5;
inline double free_strain_from_fits(double fit_free, double fit_driven, double driven_strain)
{
  const double k = fit_driven != 0.0 ? driven_strain / fit_driven : 0.0;
  return k >= RATIO_MIN && k <= RATIO_MAX ? k * fit_free : fit_free;
}

// the box after one learned step: driven axis - delta_l, the other axis * (1 + eps)
inline void box_rule(const double box[2], int driven, double delta_l, double eps, double out[2])
{
  out[driven] = box[driven] - delta_l;
  out[1 - driven] = box[1 - driven] * (1.0 + eps);
}

// the box change per learned step for a box of driven length `length`: the model's strain per
// step, delta_l / box_length (box_length: the training boxes' driven length), times that length,
// so that a model steps in strain and serves boxes of every size; delta_l itself for a model that
// does not record box_length (0)
inline double step_delta_l(double delta_l, double box_length, double length)
{
  return box_length > 0.0 ? delta_l * length / box_length : delta_l;
}

// the strain of one axis between two box lengths, L_new / L_old - 1
inline double box_strain(double length_old, double length_new)
{
  return length_new / length_old - 1.0;
}

/* ---------------------------------------------------------------- unwrap */

// the position followed continuously across periodic boundaries: x + n L (n the image flag)
inline double unwrap(double x, int image, double length)
{
  return x + image * length;
}

/* ---------------------------------------------------------------- hand-over to MD */

// MD velocity continuing a learned step of displacement u of a node at the unwrapped coordinate
// `coord` (x + n L, before the step) in a box centred at `centre` whose length changed by the
// factor (1 + strain), strain = box_strain(length, new length): MD carries the affine part
// strain * (coord - centre) by remapping the atoms with the box (a node of image n moves with
// its image, by strain * (x + n L - centre)), so the velocity is what is left, per MD time
inline double hand_over_velocity(double u, double coord, double centre, double strain, double md_time)
{
  return (u - strain * (coord - centre)) / md_time;
}

/* ---------------------------------------------------------------- bond-force signal */

// the force on the receiver of an edge with features (dx, dy, |d|, 1/l_r) from a harmonic bond
// E = K (|d| - l_r)^2 of stiffness K = 1/l_r (the networks of lmp-gnn, the model's stiffness
// feature): -2 K (|d| - l_r) d / |d|, added to f
inline void add_bond_force(const double *edge_feature, double f[2])
{
  const double scale = -2.0 * (edge_feature[2] * edge_feature[3] - 1.0) / edge_feature[2];
  f[0] += scale * edge_feature[0];
  f[1] += scale * edge_feature[1];
}

// the net bond force [nnodes][2] on each node, summed over the edges into it (edges into other
// nodes are skipped)
void net_bond_force(int64_t nnodes, int64_t nedges, const int64_t *edge_index, const double *edge_features,
                    double *out);

/* ---------------------------------------------------------------- nu_est */

// the image of a node in snapshot 0 that nu_est follows it from: round(r0 / L0), r0 measured
// from the box centre (round half to even, as numpy and torch)
inline double estimator_image(double r0, double length0)
{
  return std::nearbyint(r0 / length0);
}

// |r - n0 L|: the node's distance from the box centre along one axis, followed continuously
// from its snapshot-0 image n0 (r unwrapped, measured from the centre; L the current length)
inline double estimator_distance(double r, double image0, double length)
{
  return std::fabs(r - image0 * length);
}

// nu_est = -e_free / e_driven with e = sum_t / sum_0 - 1 the estimated strain of each axis
// (the paper's D / l0); 0 while the driven axis is unstrained
inline double nu_estimator_from_sums(const double sum0[2], const double sumt[2], int driven)
{
  double strain[2];
  for (int d = 0; d < 2; ++d) strain[d] = sum0[d] > 0.0 ? sumt[d] / sum0[d] - 1.0 : 0.0;
  return strain[driven] != 0.0 ? -strain[1 - driven] / strain[driven] : 0.0;
}

// nu_est between two configurations of N nodes [N][2], unwrapped, box centred at the origin
double nu_estimator(int64_t nnodes, const double *r0, const double *rt, const double box0[2],
                    const double boxt[2], int driven);

}    // namespace LMPGNN

#endif
