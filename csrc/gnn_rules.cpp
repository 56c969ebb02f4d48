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
