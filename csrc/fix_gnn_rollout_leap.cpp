/* ----------------------------------------------------------------------
   lmp-gnn: fix gnn/rollout mode leap (see fix_gnn_rollout_leap.h)
------------------------------------------------------------------------- */

#include "fix_gnn_rollout_leap.h"

#include "gnn_bond_graph.h"
#include "gnn_rules.h"

#include "atom.h"
#include "domain.h"
#include "error.h"
#include "update.h"

#include <cmath>

using namespace LAMMPS_NS;
using namespace FixConst;

/* ---------------------------------------------------------------------- */

FixGNNRolloutLeap::FixGNNRolloutLeap(LAMMPS *lmp, int narg, char **arg) :
    FixGNNRolloutLeap(lmp, narg, arg, LEAP)
{
  setup_state(0, "");
}

// the part mode interleave shares: this fix integrates its group and may drive the box
FixGNNRolloutLeap::FixGNNRolloutLeap(LAMMPS *lmp, int narg, char **arg, int mode_) :
    FixGNNRollout(lmp, narg, arg, mode_)
{
  time_integrate = 1;
  if (boxflag) box_change |= BOX_CHANGE_X | BOX_CHANGE_Y;
}

int FixGNNRolloutLeap::setmask()
{
  return INITIAL_INTEGRATE | POST_NEIGHBOR;
}

void FixGNNRolloutLeap::setup(int vflag)
{
  FixGNNRollout::setup(vflag);
  if (!hist_ready) init_history();
}

void FixGNNRolloutLeap::initial_integrate(int /*vflag*/)
{
  leap_step(false);
}

/* ----------------------------------------------------------------------
   one learned step: features -> model -> positions, histories, velocities, box;
   not taken (false, nothing changed) when the live error signal of the state is above
   max_signal
------------------------------------------------------------------------- */

bool FixGNNRolloutLeap::leap_step(bool nonaffine, double max_signal)
{
  const double t0 = platform::walltime();
  const int nown = graph->nown();
  const std::vector<int> &node_atom = graph->node_atom();
  forward_state({{C_HIST, nhist}});    // velocity histories of the ghost atoms

  double **x = atom->x;
  double **v = atom->v;

  const double box[2] = {domain->xprd, domain->yprd};
  if (!model_accel(x, 0, state, C_HIST, box, "positions were not updated", max_signal))
    return false;    // (a is checked)

  // displacements u = v(t) + a(t): the strain fits of both axes (the box rule's ratio)

  double centre[2];
  for (int d = 0; d < 2; d++) centre[d] = 0.5 * (domain->boxlo[d] + domain->boxhi[d]);
  double sums[4] = {0.0, 0.0, 0.0, 0.0};    // free: sum u y, sum y^2; driven: sum u x, sum x^2
  for (int k = 0; k < nown; k++) {
    const int i = node_atom[k];
    const double *a = &out_accel[2 * k];
    double u[2], r[2];
    LMPGNN::learned_displacement(&state[i][C_HIST], a, u);
    unwrapped(i, r);
    LMPGNN::free_axis_sums(r[freeaxis], centre[freeaxis], u[freeaxis], sums[0], sums[1]);
    LMPGNN::free_axis_sums(r[driven], centre[driven], u[driven], sums[2], sums[3]);
  }
  MPI_Allreduce(MPI_IN_PLACE, sums, 4, MPI_DOUBLE, MPI_SUM, world);

  // MD velocities: the learned displacement per MD time, less (nonaffine) the affine part
  // strain (x + n L - c) that the box change of this step carries (interleave: the MD that
  // follows deforms the box and remaps the atoms itself)
  const double prd[2] = {domain->prd[0], domain->prd[1]};
  last_eps = LMPGNN::free_strain_from_fits(LMPGNN::free_axis_strain_from_sums(sums[0], sums[1]),
                                           LMPGNN::free_axis_strain_from_sums(sums[2], sums[3]),
                                           -delta_l / prd[driven]);
  double newbox[2], strain[2] = {0.0, 0.0};
  LMPGNN::box_rule(prd, driven, delta_l, last_eps, newbox);
  for (int d = 0; d < 2; d++)
    if (nonaffine) strain[d] = LMPGNN::box_strain(prd[d], newbox[d]);
  const double md_time = mdsteps * update->dt;
  for (int k = 0; k < nown; k++) {
    const int i = node_atom[k];
    const double *a = &out_accel[2 * k];
    double u[2], rold[2];
    unwrapped(i, rold);
    LMPGNN::advance(history, &state[i][C_HIST], x[i], a, u);
    set_accel(i, a);
    for (int d = 0; d < 2; d++)
      v[i][d] = LMPGNN::hand_over_velocity(u[d], rold[d], centre[d], strain[d], md_time);
    v[i][2] = 0.0;
  }

  if (boxflag) change_box(newbox);
  nsteps_taken++;
  update->atime += (mdsteps - 1.0) * update->dt;    // a learned step stands for mdsteps MD steps
  last_step_ms = 1000.0 * (platform::walltime() - t0);
  return true;
}

/* ----------------------------------------------------------------------
   the box rule's new lengths (LMPGNN::box_rule) applied, centre kept.
   Node positions are not rescaled; an atom with image flag n is shifted by
   -n dL so that its unwrapped position x + n L stays the learned position.
------------------------------------------------------------------------- */

void FixGNNRolloutLeap::change_box(const double lnew[2])
{
  const double lold[2] = {domain->prd[0], domain->prd[1]};
  if (!(lnew[0] > 0.0) || !(lnew[1] > 0.0))
    error->all(FLERR, "Fix gnn/rollout: the box rule gives box lengths {} {} at step {}",
               lnew[0], lnew[1], update->ntimestep);
  // a bond is followed by its minimum image: the box must stay longer than twice any bond
  const double bond = graph->max_bond_length();
  for (int d = 0; d < 2; d++)
    if (lnew[d] < 2.0 * bond)
      error->all(FLERR,
                 "Fix gnn/rollout at step {}: the box rule shrinks the box along {} from {:.6g} "
                 "to {:.6g}, less than twice the longest bond of the group ({:.4g}); bonds "
                 "across the boundary would lose their minimum image: end the run before that "
                 "or use a smaller dl",
                 update->ntimestep, d ? "y" : "x", lold[d], lnew[d], bond);
  for (int d = 0; d < 2; d++) {
    const double c = 0.5 * (domain->boxlo[d] + domain->boxhi[d]);
    domain->boxlo[d] = c - 0.5 * lnew[d];
    domain->boxhi[d] = c + 0.5 * lnew[d];
  }
  domain->set_global_box();
  domain->set_local_box();

  const double dl[2] = {domain->prd[0] - lold[0], domain->prd[1] - lold[1]};
  double **x = atom->x;
  const imageint *image = atom->image;
  const int nown = graph->nown();
  const std::vector<int> &node_atom = graph->node_atom();
  for (int k = 0; k < nown; k++) {
    const int i = node_atom[k];
    const int nx = (image[i] & IMGMASK) - IMGMAX;
    const int ny = (image[i] >> IMGBITS & IMGMASK) - IMGMAX;
    x[i][0] -= nx * dl[0];
    x[i][1] -= ny * dl[1];
  }
}
