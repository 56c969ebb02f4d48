/* -*- c++ -*- ----------------------------------------------------------
   lmp-gnn: the feature kernel of fix gnn/rollout (docs/formats.md, "The feature contract").

   One C++ definition of the graph snapshot, mirrored from python/lmp_gnn/step/features.py and
   checked against it in float64 by tests/test_feature_parity.py (through the pybind11
   module lmp_gnn._core). No LAMMPS and no torch in here: plain arrays in, plain arrays out.

   Layouts (row-major, float64 unless stated):
     positions      [N][2]
     history        [N][2h]  per node v(t), v(t-1), ..., v(t-h+1) as (vx, vy) pairs, newest
                             first; this IS the node-feature row of the node
     edge_index     [2][E]   int64, row 0 = senders, row 1 = receivers
     edge_features  [E][4]   (dx, dy, |d|, 1/l_r), d = minimum image of r_receiver - r_sender
------------------------------------------------------------------------- */

#ifndef LMP_GNN_FEATURES_H
#define LMP_GNN_FEATURES_H

#include <cmath>
#include <cstdint>

namespace LMPGNN {

constexpr int FEATURE_VERSION = 1;    // bump together with python/lmp_gnn/step/features.py
constexpr int EDGE_DIM = 4;           // (dx, dy, |d|, 1/l_r)

// minimum image of a separation d in a periodic length L: d - L round(d / L), round half to even
// (the rounding of torch.round, so that C++ and Python agree bit for bit on ties)
inline double minimum_image(double d, double L)
{
  return d - L * std::nearbyint(d / L);
}

// features of one directed edge from its (unwrapped or wrapped) separation r_receiver - r_sender
inline void edge_feature(double dx, double dy, const double box[2], double rest_length, double *out)
{
  dx = minimum_image(dx, box[0]);
  dy = minimum_image(dy, box[1]);
  out[0] = dx;
  out[1] = dy;
  out[2] = std::sqrt(dx * dx + dy * dy);
  out[3] = 1.0 / rest_length;
}

// [M][2] bonds -> [2][2M] directed edges: forward copies (i -> j) first, then reversed (j -> i)
void edge_index_from_bonds(int64_t nbonds, const int64_t *bonds, int64_t *edge_index);

// [E][4] edge features of every edge (sender = edge_index[e], receiver = edge_index[E + e])
void edge_features(const double *positions, const double box[2], int64_t nedges,
                   const int64_t *edge_index, const double *rest_length, double *out);

// [h][N][2] velocities (newest first) -> [N][2h] node features
void node_features(int history, int64_t nnodes, const double *velocities, double *out);

// push a new velocity v(t+1) into one node's history row of 2h values (newest first)
inline void push_velocity(int history, double *row, double vx, double vy)
{
  for (int k = history - 1; k > 0; --k) {
    row[2 * k] = row[2 * (k - 1)];
    row[2 * k + 1] = row[2 * (k - 1) + 1];
  }
  row[0] = vx;
  row[1] = vy;
}

}    // namespace LMPGNN

#endif
