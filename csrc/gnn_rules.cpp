/* ----------------------------------------------------------------------
   lmp-gnn: the learned step's rules over whole configurations (see gnn_rules.h)
------------------------------------------------------------------------- */

#include "gnn_rules.h"

namespace LMPGNN {

double free_axis_strain(int64_t nnodes, const double *positions, const double *displacement, int axis)
{
  double num = 0.0, den = 0.0;
  for (int64_t i = 0; i < nnodes; ++i)
    free_axis_sums(positions[2 * i + axis], 0.0, displacement[2 * i + axis], num, den);
  return num / den;
}

void net_bond_force(int64_t nnodes, int64_t nedges, const int64_t *edge_index, const double *edge_features,
                    double *out)
{
  for (int64_t k = 0; k < 2 * nnodes; ++k) out[k] = 0.0;
  const int64_t *receivers = edge_index + nedges;
  for (int64_t e = 0; e < nedges; ++e)
    if (receivers[e] < nnodes) add_bond_force(&edge_features[EDGE_DIM * e], &out[2 * receivers[e]]);
}

double nu_estimator(int64_t nnodes, const double *r0, const double *rt, const double box0[2],
                    const double boxt[2], int driven)
{
  double sum0[2] = {0.0, 0.0}, sumt[2] = {0.0, 0.0};
  for (int64_t i = 0; i < nnodes; ++i)
    for (int d = 0; d < 2; ++d) {
      const double image0 = estimator_image(r0[2 * i + d], box0[d]);
      sum0[d] += estimator_distance(r0[2 * i + d], image0, box0[d]);
      sumt[d] += estimator_distance(rt[2 * i + d], image0, boxt[d]);
    }
  return nu_estimator_from_sums(sum0, sumt, driven);
}

}    // namespace LMPGNN
