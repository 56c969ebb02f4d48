/* ----------------------------------------------------------------------
   lmp-gnn: fix gnn/rollout mode shadow (see fix_gnn_rollout_shadow.h)
------------------------------------------------------------------------- */

#include "fix_gnn_rollout_shadow.h"

#include "gnn_bond_graph.h"
#include "gnn_features.h"
#include "gnn_restart_record.h"
#include "gnn_rules.h"

#include "atom.h"
#include "domain.h"
#include "error.h"
#include "group.h"
#include "update.h"

#include <algorithm>
#include <cmath>

using namespace LAMMPS_NS;
using namespace FixConst;

/* ---------------------------------------------------------------------- */

FixGNNRolloutShadow::FixGNNRolloutShadow(LAMMPS *lmp, int narg, char **arg) :
    FixGNNRollout(lmp, narg, arg, SHADOW), copy_started(0), have_prediction(0), lcopy{0.0, 0.0},
    ccopy{0.0, 0.0}, sum0{0.0, 0.0}, mse_one(0.0), mse_roll(0.0), nu_true(0.0), nu_learned(0.0),
    ngroup(0)
{
  if (every <= 0) every = std::max(1L, std::lround(mdsteps));
  nevery = every;
  c_prev = C_HIST + nhist;
  c_pred = c_prev + 2;
  c_copy = c_pred + 2;
  c_img0 = c_copy + 2;
  c_copy_hist = c_img0 + 2;
  setup_state(8 + nhist, fmt::format(", shadow of MD every {} steps", every));
}

int FixGNNRolloutShadow::setmask()
{
  return END_OF_STEP | POST_NEIGHBOR;
}

void FixGNNRolloutShadow::setup(int vflag)
{
  FixGNNRollout::setup(vflag);
  ngroup = group->count(igroup);
  if (nsnap == 0) snapshot();
}

// a snapshot of the true MD every `every` steps (nevery)
void FixGNNRolloutShadow::end_of_step()
{
  snapshot();
}

void FixGNNRolloutShadow::bind_restart(LMPGNN::RestartRecord &record)
{
  FixGNNRollout::bind_restart(record);
  record.field("snapshots", nsnap);
  record.field("last_snapshot_step", last_snap_step);
  record.field("copy_started", copy_started);
  record.field("have_prediction", have_prediction);
  record.field("copy_box_x", lcopy[0]);
  record.field("copy_box_y", lcopy[1]);
  record.field("copy_centre_x", ccopy[0]);
  record.field("copy_centre_y", ccopy[1]);
  record.field("sum0_x", sum0[0]);
  record.field("sum0_y", sum0[1]);
  record.field("mse_one_step", mse_one);
  record.field("mse_rollout", mse_roll);
  record.field("nu_true", nu_true);
  record.field("nu_learned", nu_learned);
}

// f_ID[7..10]: one-step MSE, rollout MSE of the learned copy, nu_est of truth and copy
double FixGNNRolloutShadow::mode_vector(int n)
{
  switch (n) {
    case 6:
      return mse_one;
    case 7:
      return mse_roll;
    case 8:
      return nu_true;
    case 9:
      return nu_learned;
    default:
      return 0.0;
  }
}

/* ----------------------------------------------------------------------
   record snapshot s of the true MD (unwrapped R = x + n L); score the one-step
   prediction and the learned copy against it; from s = h on, predict snapshot
   s+1 from the true history and advance the free-running learned copy by one
   learned step (box rule on its own box)
------------------------------------------------------------------------- */

void FixGNNRolloutShadow::snapshot()
{
  const double t0 = platform::walltime();
  double **x = atom->x;
  const double prd[2] = {domain->prd[0], domain->prd[1]};
  const double centre[2] = {0.5 * (domain->boxlo[0] + domain->boxhi[0]),
                            0.5 * (domain->boxlo[1] + domain->boxhi[1])};
  const int s = (int) nsnap;    // index of this snapshot
  const int nown = graph->nown();
  const std::vector<int> &node_atom = graph->node_atom();

  // sums: 0 one-step squared error, 1 copy squared error, 2-3 sum |r - c| true,
  //       4-5 sum |r - c| learned copy (nu_est: each atom followed from its snapshot-0 image)
  double sums[6] = {0.0, 0.0, 0.0, 0.0, 0.0, 0.0};
  for (int k = 0; k < nown; k++) {
    const int i = node_atom[k];
    double *sh = state[i];
    double r[2];
    unwrapped(i, r);
    if (s > 0)
      LMPGNN::push_velocity(history, &sh[C_HIST], r[0] - sh[c_prev], r[1] - sh[c_prev + 1]);
    for (int d = 0; d < 2; d++) {
      sh[c_prev + d] = r[d];
      if (s == 0) sh[c_img0 + d] = LMPGNN::estimator_image(r[d] - centre[d], prd[d]);
      if (have_prediction) sums[0] += (r[d] - sh[c_pred + d]) * (r[d] - sh[c_pred + d]);
      if (copy_started) {
        sums[1] += (r[d] - sh[c_copy + d]) * (r[d] - sh[c_copy + d]);
        sums[4 + d] += LMPGNN::estimator_distance(sh[c_copy + d] - ccopy[d], sh[c_img0 + d], lcopy[d]);
      }
      sums[2 + d] += LMPGNN::estimator_distance(r[d] - centre[d], sh[c_img0 + d], prd[d]);
    }
  }
  MPI_Allreduce(MPI_IN_PLACE, sums, 6, MPI_DOUBLE, MPI_SUM, world);
  nsnap++;
  last_snap_step = update->ntimestep;
  if (s == 0) {
    for (int d = 0; d < 2; d++) {
      sum0[d] = sums[2 + d];
    }
  }
  const double norm = 1.0 / (2.0 * (double) std::max<bigint>(ngroup, 1));
  if (have_prediction) mse_one = sums[0] * norm;
  if (copy_started) {
    mse_roll = sums[1] * norm;
    nu_learned = LMPGNN::nu_estimator_from_sums(sum0, &sums[4], driven);
  }
  nu_true = LMPGNN::nu_estimator_from_sums(sum0, &sums[2], driven);
  if (s < history) {    // not yet h velocities of the truth
    last_step_ms = 1000.0 * (platform::walltime() - t0);
    return;
  }

  if (!copy_started) {    // the learned copy starts from the true state of snapshot h
    for (int k = 0; k < nown; k++) {
      double *sh = state[node_atom[k]];
      sh[c_copy] = sh[c_prev];
      sh[c_copy + 1] = sh[c_prev + 1];
      for (int c = 0; c < nhist; c++) sh[c_copy_hist + c] = sh[C_HIST + c];
    }
    for (int d = 0; d < 2; d++) {
      lcopy[d] = prd[d];
      ccopy[d] = centre[d];
    }
    mse_roll = 0.0;
    nu_learned = nu_true;
  }
  const bool same_state = !copy_started;
  copy_started = 1;

  // true and learned histories, learned positions of the ghost atoms
  forward_state({{C_HIST, nhist}, {c_copy, 2}, {c_copy_hist, nhist}});

  // one-step prediction of snapshot s+1 from the true state

  const double box[2] = {prd[0], prd[1]};
  model_accel(x, 0, state, C_HIST, box, "the shadow copy was not updated");
  for (int k = 0; k < nown; k++) {
    const int i = node_atom[k];
    const double *a = &out_accel[2 * k];
    double u[2];
    LMPGNN::learned_displacement(&state[i][C_HIST], a, u);
    state[i][c_pred] = state[i][c_prev] + u[0];
    state[i][c_pred + 1] = state[i][c_prev + 1] + u[1];
  }
  have_prediction = 1;

  // one learned step of the free-running copy (same inputs as above when it just started)

  if (!same_state)
    model_accel(state, c_copy, state, c_copy_hist, lcopy, "the shadow copy was not updated");
  double flags[4] = {0.0, 0.0, 0.0, 0.0};    // fit sums: free num, den; driven num, den
  for (int k = 0; k < nown; k++) {
    const int i = node_atom[k];
    double *sh = state[i];
    const double *a = &out_accel[2 * k];
    double u[2];
    LMPGNN::learned_displacement(&sh[c_copy_hist], a, u);
    LMPGNN::free_axis_sums(sh[c_copy + freeaxis], ccopy[freeaxis], u[freeaxis], flags[0], flags[1]);
    LMPGNN::free_axis_sums(sh[c_copy + driven], ccopy[driven], u[driven], flags[2], flags[3]);
    set_accel(i, a);
  }
  MPI_Allreduce(MPI_IN_PLACE, flags, 4, MPI_DOUBLE, MPI_SUM, world);
  for (int k = 0; k < nown; k++) {
    const int i = node_atom[k];
    double u[2];
    LMPGNN::advance(history, &state[i][c_copy_hist], &state[i][c_copy], &state[i][C_ACCEL], u);
  }
  last_eps = LMPGNN::free_strain_from_fits(LMPGNN::free_axis_strain_from_sums(flags[0], flags[1]),
                                           LMPGNN::free_axis_strain_from_sums(flags[2], flags[3]),
                                           -delta_l / lcopy[driven]);
  if (boxflag) {
    const double lold[2] = {lcopy[0], lcopy[1]};
    LMPGNN::box_rule(lold, driven, delta_l, last_eps, lcopy);
  }
  nsteps_taken++;
  last_step_ms = 1000.0 * (platform::walltime() - t0);
}
