/* ----------------------------------------------------------------------
   lmp-gnn: fix gnn/rollout, the start checks (docs/fix_gnn_rollout.md, "Start checks"):
   the deck against what the model was trained on, at every init
------------------------------------------------------------------------- */

#include "fix_gnn_rollout.h"

#include "gnn_model.h"

#include "atom.h"
#include "comm.h"
#include "domain.h"
#include "error.h"
#include "force.h"
#include "group.h"
#include "modify.h"
#include "update.h"

#include <algorithm>
#include <cmath>
#include <cstring>

using namespace LAMMPS_NS;

/* ----------------------------------------------------------------------
   does the deck match what the model was trained on (docs/fix_gnn_rollout.md, "Start
   checks")? units other than lj are an ERROR (unless units any); a different MD time per
   learned step, masses other than 1, a bond style other than harmonic, a box far from the
   training boxes, or a strain per learned step that stands for other MD steps at the training
   strain rate are a WARNING naming both values, each kind once per fix
------------------------------------------------------------------------- */

namespace {
enum {
  CHECK_TIME = 1 << 0,
  CHECK_EVERY = 1 << 1,
  CHECK_MASS = 1 << 2,
  CHECK_BOND = 1 << 3,
  CHECK_BOX = 1 << 4,
  CHECK_STRAIN = 1 << 5
};
constexpr double TIME_TOLERANCE = 0.05;    // relative: MD time per learned step
constexpr double BOX_TOLERANCE = 0.2;      // relative: box length, MD steps implied by the box
constexpr double MASS_TOLERANCE = 1e-6;    // relative to the training mass 1

bool differs(double a, double b, double tol)
{
  return std::fabs(a - b) > tol * std::fabs(b);
}

// bond_style harmonic and its accelerated variants (harmonic/omp, harmonic/kk, ...), not
// harmonic/shift and the like
bool harmonic_style(const std::string &style)
{
  for (const char *name : {"harmonic", "harmonic/omp", "harmonic/opt", "harmonic/intel",
                           "harmonic/gpu", "harmonic/kk", "harmonic/kk/host", "harmonic/kk/device"})
    if (style == name) return true;
  return false;
}
}    // namespace

void FixGNNRollout::check_deck()
{
  const auto &info = model->info();
  const double dt = update->dt;
  auto warn = [&](int check, const std::string &msg) {
    if (warned & check) return;
    warned |= check;
    if (comm->me == 0) error->warning(FLERR, msg);
  };

  if (strcmp(update->unit_style, "lj") != 0 && !units_any)
    error->all(FLERR,
               "Fix gnn/rollout: the model is for units lj (lmp-gnn's training MD), the deck has "
               "units {}; add 'units any' to the fix if the model was trained in units {}",
               update->unit_style, update->unit_style);

  // MD time one learned step stands for: training timestep x md_steps_per_step
  if (info.timestep > 0.0) {
    const double trained = info.timestep * info.md_steps_per_step;
    if (mode != SHADOW && differs(dt * mdsteps, trained, TIME_TOLERANCE))
      warn(CHECK_TIME,
           fmt::format("Fix gnn/rollout: one learned step stands for dt * mdsteps = {} * {} = {:.6g} "
                       "time units here, but for timestep * md_steps_per_step = {} * {} = {:.6g} "
                       "in the model's training data; set timestep {:.6g} or mdsteps {:.6g}",
                       dt, mdsteps, dt * mdsteps, info.timestep, info.md_steps_per_step, trained,
                       trained / mdsteps, trained / dt));
    if (mode != LEAP && differs(dt * every, trained, TIME_TOLERANCE))
      warn(CHECK_EVERY,
           fmt::format("Fix gnn/rollout: snapshots every {} MD steps of dt {} are {:.6g} time units "
                       "apart, but a learned step stood for timestep * md_steps_per_step = {} * "
                       "{} = {:.6g} in the model's training data; set every {:.6g}",
                       every, dt, dt * every, info.timestep, info.md_steps_per_step, trained,
                       trained / dt));
  }

  // masses of the group's atoms: the training networks have mass 1
  {
    const int *mask = atom->mask;
    const int *type = atom->type;
    const int nlocal = atom->nlocal;
    if (atom->rmass_flag) {
      double lo = INFINITY, hi = -INFINITY, lo_all, hi_all;
      for (int i = 0; i < nlocal; i++)
        if (mask[i] & groupbit) {
          lo = std::min(lo, atom->rmass[i]);
          hi = std::max(hi, atom->rmass[i]);
        }
      MPI_Allreduce(&lo, &lo_all, 1, MPI_DOUBLE, MPI_MIN, world);
      MPI_Allreduce(&hi, &hi_all, 1, MPI_DOUBLE, MPI_MAX, world);
      if (lo_all <= hi_all &&
          (differs(lo_all, 1.0, MASS_TOLERANCE) || differs(hi_all, 1.0, MASS_TOLERANCE)))
        warn(CHECK_MASS,
             fmt::format("Fix gnn/rollout: the model was trained on atoms of mass 1, group {} has "
                         "per-atom masses from {} to {}; the learned motion is that of mass 1",
                         group->names[igroup], lo_all, hi_all));
    } else if (atom->mass) {
      const int ntypes = atom->ntypes;
      std::vector<int> seen(ntypes + 1, 0), seen_all(ntypes + 1, 0);
      for (int i = 0; i < nlocal; i++)
        if (mask[i] & groupbit) seen[type[i]] = 1;
      MPI_Allreduce(seen.data(), seen_all.data(), ntypes + 1, MPI_INT, MPI_MAX, world);
      std::string found;
      for (int t = 1; t <= ntypes; t++)
        if (seen_all[t] && atom->mass_setflag[t] && differs(atom->mass[t], 1.0, MASS_TOLERANCE))
          found += fmt::format("{}type {} mass {}", found.empty() ? "" : ", ", t, atom->mass[t]);
      if (!found.empty())
        warn(CHECK_MASS,
             fmt::format("Fix gnn/rollout: the model was trained on atoms of mass 1, group {} has "
                         "atoms of {}; the learned motion is that of mass 1",
                         group->names[igroup], found));
    }
  }

  if (!harmonic_style(force->bond_style))
    warn(CHECK_BOND,
         fmt::format("Fix gnn/rollout: the model was trained with bond_style harmonic, the deck "
                     "has bond_style {}; the rest lengths of the edge features are its "
                     "equilibrium distances",
                     force->bond_style));

  // the box along the driven axis against the training boxes (metadata box_length, optional)
  const double length = domain->prd[driven];
  const char *axis = driven ? "y" : "x";
  if (info.box_length > 0.0 && differs(length, info.box_length, BOX_TOLERANCE))
    warn(CHECK_BOX,
         fmt::format("Fix gnn/rollout: the box is {} long along the driven axis {}, the model's "
                     "training boxes were {} (metadata box_length), {:.0f}% off; the model was "
                     "trained on networks of another size",
                     length, axis, info.box_length, 100.0 * (length / info.box_length - 1.0)));

  // the strain dl / L of a learned step at the training strain rate stands for
  // dl / (strain_rate dt L) MD steps; the deck's learned step stands for mdsteps (every)
  if (info.strain_rate > 0.0 && delta_l > 0.0) {
    const double implied = delta_l / (info.strain_rate * dt * length);
    const double steps = mode == SHADOW ? every : mdsteps;
    if (differs(steps, implied, BOX_TOLERANCE))
      warn(CHECK_STRAIN,
           fmt::format("Fix gnn/rollout: a learned step shrinks this box (L{} = {}) by dl = {}, "
                       "which at the model's training strain rate {} takes dl / (strain_rate * dt "
                       "* L) = {:.6g} MD steps, but {} is {}",
                       axis, length, delta_l, info.strain_rate, implied,
                       mode == SHADOW ? "every" : "mdsteps", steps));
  }
}

