/* ----------------------------------------------------------------------
   lmp-gnn: the feature kernel (see gnn_features.h and docs/formats.md)
------------------------------------------------------------------------- */

#include "gnn_features.h"

namespace LMPGNN {

void edge_index_from_bonds(int64_t nbonds, const int64_t *bonds, int64_t *edge_index)
{
  const int64_t nedges = 2 * nbonds;
  int64_t *senders = edge_index;
  int64_t *receivers = edge_index + nedges;
  for (int64_t m = 0; m < nbonds; ++m) {
    senders[m] = bonds[2 * m];
    receivers[m] = bonds[2 * m + 1];
    senders[nbonds + m] = bonds[2 * m + 1];
    receivers[nbonds + m] = bonds[2 * m];
  }
}

void edge_features(const double *positions, const double box[2], int64_t nedges,
                   const int64_t *edge_index, const double *rest_length, double *out)
{
  const int64_t *senders = edge_index;
  const int64_t *receivers = edge_index + nedges;
  for (int64_t e = 0; e < nedges; ++e) {
    const double *rs = positions + 2 * senders[e];
    const double *rr = positions + 2 * receivers[e];
    edge_feature(rr[0] - rs[0], rr[1] - rs[1], box, rest_length[e], out + EDGE_DIM * e);
  }
}

void node_features(int history, int64_t nnodes, const double *velocities, double *out)
{
  for (int64_t i = 0; i < nnodes; ++i)
    for (int k = 0; k < history; ++k) {
      out[2 * history * i + 2 * k] = velocities[2 * (k * nnodes + i)];
      out[2 * history * i + 2 * k + 1] = velocities[2 * (k * nnodes + i) + 1];
    }
}

}    // namespace LMPGNN
