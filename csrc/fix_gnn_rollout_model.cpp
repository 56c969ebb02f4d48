/* ----------------------------------------------------------------------
   lmp-gnn: fix gnn/rollout, the model call (features of the local graph -> accelerations,
   checked on every rank) and the bound on a learned step's displacement
------------------------------------------------------------------------- */

#include "fix_gnn_rollout.h"
#include "gnn_bond_graph.h"
#include "gnn_features.h"
#include "gnn_model.h"
#include "gnn_rules.h"
#include "atom.h"
#include "comm.h"
#include "domain.h"
#include "error.h"
#include "force.h"
#include "group.h"
#include "memory.h"
#include "modify.h"
#include "update.h"
#include <dlfcn.h>
#include <sched.h>
#include <algorithm>
#include <cmath>
#include <cstring>
#include <thread>

using namespace LAMMPS_NS;

/* ----------------------------------------------------------------------
   accelerations of all graph nodes into out_accel: node features from the
   history columns hh[i][hcol..], edge features from positions pos[i][pcol..]
   (any image: minimum image in `box`). Collective: every rank calls it, also a
   rank without group atoms (its empty graph is not handed to the model), and every
   rank stops with the same ERROR when the model failed on any rank or returned a
   non-finite or too large acceleration for an owned atom; `kept` names what the
   error leaves unchanged. Returns false without calling the model when the live
   error signal of the state (last_force_rms) is above max_signal (mode adaptive)
------------------------------------------------------------------------- */

bool FixGNNRollout::model_accel(double **pos, int pcol, double **hh, int hcol, const double box[2],
                                const char *kept, double max_signal)
{
  const std::vector<int> &node_atom = graph->node_atom();
  const std::vector<double> &edge_rest = graph->edge_rest();
  const std::vector<int64_t> &edge_index = graph->edge_index();
  const int nnodes = (int) node_atom.size();
  const int64_t nedges = (int64_t) edge_rest.size();

  node_feat.resize((std::size_t) nnodes * nhist);
  for (int k = 0; k < nnodes; k++)
    std::memcpy(&node_feat[(std::size_t) k * nhist], &hh[node_atom[k]][hcol],
                sizeof(double) * nhist);
  edge_feat.resize((std::size_t) nedges * LMPGNN::EDGE_DIM);
  const int64_t *senders = edge_index.data();
  const int64_t *receivers = senders + nedges;
  for (int64_t e = 0; e < nedges; e++) {
    const double *ps = &pos[node_atom[senders[e]]][pcol];
    const double *pr = &pos[node_atom[receivers[e]]][pcol];
    LMPGNN::edge_feature(pr[0] - ps[0], pr[1] - ps[1], box, edge_rest[e],
                         &edge_feat[LMPGNN::EDGE_DIM * e]);
  }

  // the live error signal: how far the state is from force balance (RMS net bond force over the
  // group's atoms), from the edge features the model is given
  const int nown = graph->nown();
  bond_force.resize((std::size_t) 2 * nown);
  LMPGNN::net_bond_force(nown, nedges, edge_index.data(), edge_feat.data(), bond_force.data());
  double force_sums[2] = {0.0, (double) nown};    // sum |F|^2, atoms
  for (int k = 0; k < 2 * nown; k++) force_sums[0] += bond_force[k] * bond_force[k];
  MPI_Allreduce(MPI_IN_PLACE, force_sums, 2, MPI_DOUBLE, MPI_SUM, world);
  last_force_rms = force_sums[1] > 0.0 ? std::sqrt(force_sums[0] / force_sums[1]) : 0.0;
  if (!(last_force_rms <= max_signal)) return false;    // (the same on every rank)

  out_accel.resize((std::size_t) nnodes * 2);
  const double tm = platform::walltime();
  std::string failure;
  if (nnodes > 0) {    // (the owned nodes come first: no owned atom, no ghost nodes either)
    try {
      model->compute(nnodes, node_feat.data(), nedges, edge_index.data(), edge_feat.data(),
                     out_accel.data());
    } catch (std::exception &e) {
      failure = e.what();
      if (failure.empty()) failure = "the model failed without a message";
    }
  }
  last_model_ms = 1000.0 * (platform::walltime() - tm);
  sum_model_ms += last_model_ms;
  nmodel_calls++;

  // the message of the lowest rank whose model call failed, raised on every rank
  int failed_rank = failure.empty() ? comm->nprocs : comm->me;
  MPI_Allreduce(MPI_IN_PLACE, &failed_rank, 1, MPI_INT, MPI_MIN, world);
  if (failed_rank < comm->nprocs) {
    int len = (int) failure.size();
    MPI_Bcast(&len, 1, MPI_INT, failed_rank, world);
    failure.resize(len);
    MPI_Bcast(failure.data(), len, MPI_CHAR, failed_rank, world);
    error->all(FLERR, "Fix gnn/rollout at step {}{}: {}", update->ntimestep,
               comm->nprocs > 1 ? fmt::format(" (MPI rank {})", failed_rank) : "", failure);
  }

  // accelerations of the owned atoms: finite, and they and the displacements u = v(t) + a
  // they give less than a learned step can carry (step_limit)
  std::string limit_what;
  const double limit = step_limit(limit_what);
  double counts[3] = {0.0, 0.0, 0.0};    // non-finite, too large a, too large u
  double largest[2] = {0.0, 0.0};        // |a|, |u|
  for (int k = 0; k < graph->nown(); k++) {
    const double *a = &out_accel[2 * k];
    if (!std::isfinite(a[0]) || !std::isfinite(a[1])) {
      counts[0] += 1.0;
      continue;
    }
    const double *v = &hh[node_atom[k]][hcol];
    const double anorm = std::hypot(a[0], a[1]), unorm = std::hypot(v[0] + a[0], v[1] + a[1]);
    if (anorm > limit) counts[1] += 1.0;
    if (unorm > limit) counts[2] += 1.0;
    largest[0] = std::max(largest[0], anorm);
    largest[1] = std::max(largest[1], unorm);
  }
  MPI_Allreduce(MPI_IN_PLACE, counts, 3, MPI_DOUBLE, MPI_SUM, world);
  if (counts[0] > 0.0)
    error->all(FLERR,
               "Fix gnn/rollout: the model returned non-finite accelerations for {} atom(s) at "
               "step {}; {}",
               (bigint) counts[0], update->ntimestep, kept);
  if (counts[1] > 0.0 || counts[2] > 0.0) {
    MPI_Allreduce(MPI_IN_PLACE, largest, 2, MPI_DOUBLE, MPI_MAX, world);
    if (counts[1] > 0.0)
      error->all(FLERR,
                 "Fix gnn/rollout: the model returned accelerations of magnitude up to {:.4g} "
                 "(distance per learned step^2) for {} atom(s) at step {}: expected at most {} "
                 "({:.4g}); {}",
                 largest[0], (bigint) counts[1], update->ntimestep, limit_what, limit, kept);
    error->all(FLERR,
               "Fix gnn/rollout: the model's accelerations give displacements of up to {:.4g} in "
               "one learned step for {} atom(s) at step {}: expected at most {} ({:.4g}); {}",
               largest[1], (bigint) counts[2], update->ntimestep, limit_what, limit, kept);
  }
  return true;
}

/* ----------------------------------------------------------------------
   the largest displacement per learned step (velocity history entry) and change of it
   (acceleration) a node of the group can have: the longest bond of the group, or half the
   shortest box length if that is smaller (the edge features are minimum images); `what`
   names the bound
------------------------------------------------------------------------- */

double FixGNNRollout::step_limit(std::string &what) const
{
  const double bond = std::max(graph->max_bond_length(), graph->max_rest_length());
  const double half_box = 0.5 * std::min(domain->prd[0], domain->prd[1]);
  if (bond > 0.0 && bond <= half_box) {
    what = "the longest bond of the group";
    return bond;
  }
  what = "half the shortest box length";
  return half_box;
}

// the unwrapped position R = x + n L of local atom i (in-plane)
void FixGNNRollout::unwrapped(int i, double *r) const
{
  const imageint image = atom->image[i];
  const int n[2] = {(int) (image & IMGMASK) - IMGMAX, (int) (image >> IMGBITS & IMGMASK) - IMGMAX};
  for (int d = 0; d < 2; d++) r[d] = LMPGNN::unwrap(atom->x[i][d], n[d], domain->prd[d]);
}

