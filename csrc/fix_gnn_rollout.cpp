/* ----------------------------------------------------------------------
   lmp-gnn: fix gnn/rollout, the part every mode shares (see fix_gnn_rollout.h and
   docs/fix_gnn_rollout.md): keywords, model loading, init and setup checks, the graph of the
   rank, the model call and the global outputs. Per-atom state, restart and initial histories:
   fix_gnn_rollout_state.cpp; the modes: fix_gnn_rollout_{leap,shadow,interleave}.cpp.

   MPI: a rank owns its atoms; the graph it hands to the model holds its owned group atoms
   plus the ghost atoms up to k bonds away (k = model layers), GNNBondGraph (gnn_bond_graph.h).
   Only the accelerations of owned atoms are used, so they are exact whenever the ghost shell
   is k bonds deep.
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
using namespace FixConst;

static const char *BACKEND_LIBRARY = "libgnn_torch.so";
static const char *PYTHON_BACKEND_LIBRARY = "libgnn_python.so";

// where this plugin was loaded from: the TorchScript backend library sits next to it
static std::string plugin_directory()
{
  Dl_info info;
  if (dladdr(reinterpret_cast<void *>(&plugin_directory), &info) && info.dli_fname)
    return platform::path_dirname(info.dli_fname);
  return ".";
}

/* ----------------------------------------------------------------------
   bounds of keyword values that follow from what they mean
------------------------------------------------------------------------- */

// MD steps per learned step: at least the one step LAMMPS counts for a learned step (mode leap
// advances the time by mdsteps dt), at most what `every` (an int) holds
static bool valid_mdsteps(double n)
{
  return n >= 1.0 && n <= (double) MAXSMALLINT;
}

// box-length decrease per learned step: the models are trained on compression (0: no change)
static bool valid_delta_l(double dl)
{
  return std::isfinite(dl) && dl >= 0.0;
}

// the cores this process may run on (its CPU affinity), at least 1
static int usable_cores()
{
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) return std::max(1, CPU_COUNT(&set));
  return std::max(1u, std::thread::hardware_concurrency());
}

/* ----------------------------------------------------------------------
   the mode keyword of a fix gnn/rollout command, walking the keywords as the constructor
   does (init takes one or two values, every other keyword one)
------------------------------------------------------------------------- */

int FixGNNRollout::mode_of_args(int narg, char **arg)
{
  int iarg = (narg > 3 && strcmp(arg[3], "python") == 0) ? 5 : 4;
  int found = LEAP;
  while (iarg + 1 < narg) {
    const char *key = arg[iarg], *value = arg[iarg + 1];
    if (strcmp(key, "mode") == 0) {
      if (strcmp(value, "shadow") == 0)
        found = SHADOW;
      else if (strcmp(value, "interleave") == 0)
        found = INTERLEAVE;
      else
        found = LEAP;
    }
    const bool two_values =
        strcmp(key, "init") == 0 && (strcmp(value, "file") == 0 || strcmp(value, "fix") == 0);
    iarg += two_values ? 3 : 2;
  }
  return found;
}

const char *FixGNNRollout::mode_name(int m)
{
  static const char *names[] = {"leap", "shadow", "interleave"};
  return names[std::clamp(m, 0, 2)];
}

/* ---------------------------------------------------------------------- */

FixGNNRollout::FixGNNRollout(LAMMPS *lmp, int narg, char **arg, int mode_) :
    Fix(lmp, narg, arg), mode(mode_), init_style(INIT_VELOCITY), nthreads(1), driven(0),
    freeaxis(1), boxflag(1), history(0), nhist(0), layers(0), mdsteps(-1.0), delta_l(0.0),
    every(0), units_any(false), warned(0), md_block(0), learn_block(0), pdamp(1.0), modulus(1.0), state(nullptr), ncols(0),
    accel_out(nullptr), comm_cols{}, ncomm_cols(0), callbacks_added(false), hist_ready(0),
    nsteps_taken(0), nsnap(0), last_snap_step(-1), last_eps(0.0), last_model_ms(0.0),
    last_step_ms(0.0), sum_model_ms(0.0), nmodel_calls(0)
{
  if (narg < 4) utils::missing_cmd_args(FLERR, "fix gnn/rollout", error);
  model_file = arg[3];
  int iarg = 4;
  if (strcmp(arg[3], "python") == 0) {    // python SPEC: a Python callable (docs/python_bridge.md)
    if (narg < 5) utils::missing_cmd_args(FLERR, "fix gnn/rollout python", error);
    python_model = true;
    model_file = arg[4];
    iarg = 5;
  }
  device = "cpu";
  bool dl_given = false;
  int parsed_mode = LEAP;

  while (iarg < narg) {
    if (strcmp(arg[iarg], "mode") == 0) {
      if (iarg + 2 > narg) utils::missing_cmd_args(FLERR, "fix gnn/rollout mode", error);
      if (strcmp(arg[iarg + 1], "leap") == 0)
        parsed_mode = LEAP;
      else if (strcmp(arg[iarg + 1], "shadow") == 0)
        parsed_mode = SHADOW;
      else if (strcmp(arg[iarg + 1], "interleave") == 0)
        parsed_mode = INTERLEAVE;
      else
        error->all(FLERR, iarg + 1,
                   "Fix gnn/rollout mode {} is not supported: expected leap, shadow or interleave",
                   arg[iarg + 1]);
      iarg += 2;
    } else if (strcmp(arg[iarg], "init") == 0) {
      if (iarg + 2 > narg) utils::missing_cmd_args(FLERR, "fix gnn/rollout init", error);
      if (strcmp(arg[iarg + 1], "velocity") == 0) {
        init_style = INIT_VELOCITY;
        iarg += 2;
      } else if (strcmp(arg[iarg + 1], "fix") == 0) {
        if (iarg + 3 > narg) utils::missing_cmd_args(FLERR, "fix gnn/rollout init fix", error);
        init_style = INIT_FIX;
        init_fix = arg[iarg + 2];
        iarg += 3;
      } else if (strcmp(arg[iarg + 1], "file") == 0) {
        if (iarg + 3 > narg) utils::missing_cmd_args(FLERR, "fix gnn/rollout init file", error);
        init_style = INIT_FILE;
        init_file = arg[iarg + 2];
        iarg += 3;
      } else {
        error->all(FLERR, iarg + 1,
                   "Unknown fix gnn/rollout init style {}: expected velocity, file or fix",
                   arg[iarg + 1]);
      }
    } else if (strcmp(arg[iarg], "mdsteps") == 0) {
      if (iarg + 2 > narg) utils::missing_cmd_args(FLERR, "fix gnn/rollout mdsteps", error);
      mdsteps = utils::numeric(FLERR, arg[iarg + 1], false, lmp);
      if (!valid_mdsteps(mdsteps))
        error->all(FLERR, iarg + 1,
                   "Fix gnn/rollout mdsteps: expected the MD steps one learned step stands for, "
                   "between 1 and {}, got {}",
                   MAXSMALLINT, arg[iarg + 1]);
      iarg += 2;
    } else if (strcmp(arg[iarg], "every") == 0) {
      if (iarg + 2 > narg) utils::missing_cmd_args(FLERR, "fix gnn/rollout every", error);
      every = utils::inumeric(FLERR, arg[iarg + 1], false, lmp);
      if (every <= 0)
        error->all(FLERR, iarg + 1, "Fix gnn/rollout every must be > 0, got {}", arg[iarg + 1]);
      iarg += 2;
    } else if (strcmp(arg[iarg], "md") == 0 || strcmp(arg[iarg], "learn") == 0) {
      if (iarg + 2 > narg)
        utils::missing_cmd_args(FLERR, fmt::format("fix gnn/rollout {}", arg[iarg]), error);
      const bigint n = utils::bnumeric(FLERR, arg[iarg + 1], false, lmp);
      if (n < 0)
        error->all(FLERR, iarg + 1, "Fix gnn/rollout {} must be >= 0, got {}", arg[iarg],
                   arg[iarg + 1]);
      (arg[iarg][0] == 'm' ? md_block : learn_block) = n;
      iarg += 2;
    } else if (strcmp(arg[iarg], "pdamp") == 0 || strcmp(arg[iarg], "modulus") == 0) {
      if (iarg + 2 > narg)
        utils::missing_cmd_args(FLERR, fmt::format("fix gnn/rollout {}", arg[iarg]), error);
      const double value = utils::numeric(FLERR, arg[iarg + 1], false, lmp);
      if (!(value > 0.0))
        error->all(FLERR, iarg + 1, "Fix gnn/rollout {} must be > 0, got {}", arg[iarg],
                   arg[iarg + 1]);
      (arg[iarg][0] == 'p' ? pdamp : modulus) = value;
      iarg += 2;
    } else if (strcmp(arg[iarg], "dl") == 0) {
      if (iarg + 2 > narg) utils::missing_cmd_args(FLERR, "fix gnn/rollout dl", error);
      delta_l = utils::numeric(FLERR, arg[iarg + 1], false, lmp);
      if (!valid_delta_l(delta_l))
        error->all(FLERR, iarg + 1,
                   "Fix gnn/rollout dl: expected the box-length decrease per learned step along "
                   "the driven axis, a finite number >= 0, got {}",
                   arg[iarg + 1]);
      dl_given = true;
      iarg += 2;
    } else if (strcmp(arg[iarg], "box") == 0) {
      if (iarg + 2 > narg) utils::missing_cmd_args(FLERR, "fix gnn/rollout box", error);
      boxflag = utils::logical(FLERR, arg[iarg + 1], false, lmp);
      iarg += 2;
    } else if (strcmp(arg[iarg], "axis") == 0) {
      if (iarg + 2 > narg) utils::missing_cmd_args(FLERR, "fix gnn/rollout axis", error);
      if (strcmp(arg[iarg + 1], "x") == 0)
        driven = 0;
      else if (strcmp(arg[iarg + 1], "y") == 0)
        driven = 1;
      else
        error->all(FLERR, iarg + 1, "Fix gnn/rollout axis must be x or y, got {}", arg[iarg + 1]);
      freeaxis = 1 - driven;
      iarg += 2;
    } else if (strcmp(arg[iarg], "threads") == 0) {
      if (iarg + 2 > narg) utils::missing_cmd_args(FLERR, "fix gnn/rollout threads", error);
      nthreads = utils::inumeric(FLERR, arg[iarg + 1], false, lmp);
      if (nthreads < 0)
        error->all(FLERR, iarg + 1, "Fix gnn/rollout threads must be >= 0, got {}", arg[iarg + 1]);
      const int ncores = usable_cores();
      if (nthreads > ncores) {
        if (comm->me == 0)
          error->warning(FLERR,
                         "Fix gnn/rollout threads {} is more than the {} core(s) this process "
                         "can use; using threads {}",
                         nthreads, ncores, ncores);
        nthreads = ncores;
      }
      iarg += 2;
    } else if (strcmp(arg[iarg], "units") == 0) {
      if (iarg + 2 > narg) utils::missing_cmd_args(FLERR, "fix gnn/rollout units", error);
      if (strcmp(arg[iarg + 1], "lj") == 0)
        units_any = false;
      else if (strcmp(arg[iarg + 1], "any") == 0)
        units_any = true;
      else
        error->all(FLERR, iarg + 1, "Fix gnn/rollout units must be lj or any, got {}",
                   arg[iarg + 1]);
      iarg += 2;
    } else if (strcmp(arg[iarg], "device") == 0) {
      if (iarg + 2 > narg) utils::missing_cmd_args(FLERR, "fix gnn/rollout device", error);
      device = arg[iarg + 1];
      iarg += 2;
    } else {
      error->all(FLERR, iarg, "Unknown fix gnn/rollout keyword: {}", arg[iarg]);
    }
  }


  if (parsed_mode != mode)
    error->all(FLERR, "Fix gnn/rollout: created as mode {}, but the command asks for mode {}",
               mode_name(mode), mode_name(parsed_mode));

  if (atom->molecular != Atom::MOLECULAR || !atom->num_bond)
    error->all(FLERR,
               "Fix gnn/rollout requires an atom style with bonds (e.g. atom_style bond), "
               "got atom_style {}",
               atom->atom_style);

  load_model();
  const auto &info = model->info();
  history = info.history;
  nhist = 2 * history;
  layers = info.layers;
  if (mdsteps <= 0.0) {
    mdsteps = info.md_steps_per_step;
    if (!valid_mdsteps(mdsteps))
      error->all(FLERR,
                 "Fix gnn/rollout model {}: expected md_steps_per_step between 1 and {}, got {}; "
                 "give the keyword mdsteps",
                 model_file, MAXSMALLINT, mdsteps);
  }
  if (!dl_given) {
    delta_l = info.delta_l;
    if (!valid_delta_l(delta_l))
      error->all(FLERR,
                 "Fix gnn/rollout model {}: expected delta_l >= 0 (a compression), got {}; give "
                 "the keyword dl",
                 model_file, delta_l);
  }
  graph = std::make_unique<GNNBondGraph>(lmp, this, layers);

  restart_global = 1;
  restart_peratom = 1;
  vector_flag = 1;
  size_vector = 12;
  global_freq = 1;
  extvector = 0;
  peratom_flag = 1;
  size_peratom_cols = 2;
  peratom_freq = 1;
  comm_forward = 2 * nhist + 2;
  // the mode's constructor continues with setup_state()
}

/* ---------------------------------------------------------------------- */

FixGNNRollout::~FixGNNRollout()
{
  if (copymode) return;
  // (a constructor that stopped with an error never registered the callbacks)
  if (callbacks_added) {
    atom->delete_callback(id, Atom::GROW);
    atom->delete_callback(id, Atom::RESTART);
  }
  memory->destroy(state);
  memory->destroy(accel_out);
}

/* ----------------------------------------------------------------------
   load the model through its backend library next to this plugin:
   TorchScript (libgnn_torch.so) or Python (libgnn_python.so)
------------------------------------------------------------------------- */

void FixGNNRollout::load_model()
{
  const char *kind = python_model ? "Python" : "TorchScript";
  const char *symbol = python_model ? "lmpgnn_load_python" : "lmpgnn_load_torchscript";
  const std::string lib = platform::path_join(plugin_directory(),
                                              python_model ? PYTHON_BACKEND_LIBRARY : BACKEND_LIBRARY);
  void *handle = dlopen(lib.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle)
    error->all(FLERR, "Fix gnn/rollout cannot load its {} backend {}: {}", kind, lib, dlerror());
  auto loader = reinterpret_cast<lmpgnn_loader_t>(dlsym(handle, symbol));
  if (!loader) error->all(FLERR, "Fix gnn/rollout: {} lacks {}: {}", lib, symbol, dlerror());
  char err[2048] = "";
  LMPGNN::GNNModel *m = loader(model_file.c_str(), device.c_str(), nthreads, err, sizeof(err));
  if (!m) error->all(FLERR, "Fix gnn/rollout: {}", err);
  model.reset(m);
}

/* ---------------------------------------------------------------------- */

void FixGNNRollout::init()
{
  const auto &info = model->info();
  if (domain->dimension != info.dimension)
    error->all(FLERR,
               "Fix gnn/rollout model {} is for dimension {}, the simulation has dimension {}",
               model_file, info.dimension, domain->dimension);
  if (domain->triclinic) error->all(FLERR, "Fix gnn/rollout requires an orthogonal box");
  if (!domain->xperiodic || !domain->yperiodic)
    error->all(FLERR, "Fix gnn/rollout requires a box periodic in x and y");
  if (!force->bond)
    error->all(FLERR,
               "Fix gnn/rollout requires a bond style: the rest lengths l_r of the edge features "
               "are the bond style's equilibrium distances");
  if (atom->map_style == Atom::MAP_NONE)
    error->all(FLERR, "Fix gnn/rollout requires an atom map (atom_modify map yes)");
  if (update->dt <= 0.0) error->all(FLERR, "Fix gnn/rollout requires a positive timestep");

  // modes leap and interleave: no other integrator on the group, no other box change while
  // this fix drives the box

  int *mask = atom->mask;
  const int nlocal = atom->nlocal;
  for (auto *ifix : modify->get_fix_list()) {
    if (ifix == this || mode == SHADOW) continue;
    if (ifix->time_integrate) {
      bigint mine = 0, all = 0;
      for (int i = 0; i < nlocal; i++)
        if ((mask[i] & groupbit) && (mask[i] & ifix->groupbit)) mine++;
      MPI_Allreduce(&mine, &all, 1, MPI_LMP_BIGINT, MPI_SUM, world);
      if (all)
        error->all(FLERR,
                   "Fix gnn/rollout mode {} integrates group {}, but fix {} ({}) also "
                   "integrates {} of its atoms; unfix it or exclude those atoms from its group",
                   mode_name(mode), group->names[igroup], ifix->id, ifix->style, all);
    }
    if (boxflag && (ifix->box_change & BOX_CHANGE_SIZE))
      error->all(FLERR,
                 "Fix gnn/rollout box yes changes the box, and fix {} ({}) changes it too; "
                 "unfix it or use fix gnn/rollout box no",
                 ifix->id, ifix->style);
  }

  check_deck();

  graph->init();
  comm_forward = std::max(2 * nhist + 2, graph->comm_size());
  comm_reverse = graph->comm_size();
}

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

/* ---------------------------------------------------------------------- */

void FixGNNRollout::setup_post_neighbor()
{
  post_neighbor();
}

void FixGNNRollout::post_neighbor()
{
  graph->build();
}

/* ----------------------------------------------------------------------
   checks of the first graph; the modes add their own setup
------------------------------------------------------------------------- */

void FixGNNRollout::setup(int /*vflag*/)
{
  if (graph->nedges_all() == 0)
    error->all(FLERR, "Fix gnn/rollout group {} has no bonds between its atoms",
               group->names[igroup]);
  graph->check_halo();
  // a bond across the boundary of the driven axis shortens by dl every learned step (the
  // atoms are not remapped with the box): dl must stay below the shortest bond
  const double shortest = graph->min_rest_length();
  if (boxflag && delta_l >= shortest)
    error->all(FLERR,
               "Fix gnn/rollout dl {} is too large for the bonds of group {}: the box change per "
               "learned step must be less than the shortest bond rest length {:.4g}, which a "
               "bond across the boundary of the driven axis shortens by every learned step; "
               "dl exceeds it by {:.4g}",
               delta_l, group->names[igroup], shortest, delta_l - shortest);
}

/* ----------------------------------------------------------------------
   accelerations of all graph nodes into out_accel: node features from the
   history columns hh[i][hcol..], edge features from positions pos[i][pcol..]
   (any image: minimum image in `box`). Collective: every rank calls it, also a
   rank without group atoms (its empty graph is not handed to the model), and every
   rank stops with the same ERROR when the model failed on any rank or returned a
   non-finite or too large acceleration for an owned atom; `kept` names what the
   error leaves unchanged
------------------------------------------------------------------------- */

void FixGNNRollout::model_accel(double **pos, int pcol, double **hh, int hcol, const double box[2],
                                const char *kept)
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

/* ----------------------------------------------------------------------
   f_ID[1..6]: learned steps taken, ms of the last model call, mean ms per model
   call, ms of the last whole learned step, last free-axis strain increment eps,
   directed edges of the group graph (ms on MPI rank 0); f_ID[11] snapshots recorded;
   the modes' own outputs (f_ID[7..10] shadow, f_ID[12] interleave) from mode_vector()
------------------------------------------------------------------------- */

double FixGNNRollout::compute_vector(int n)
{
  switch (n) {
    case 0:
      return (double) nsteps_taken;
    case 1:
      return last_model_ms;
    case 2:
      return nmodel_calls ? sum_model_ms / nmodel_calls : 0.0;
    case 3:
      return last_step_ms;
    case 4:
      return last_eps;
    case 5:
      return (double) graph->nedges_all();
    case 10:
      return (double) nsnap;
    default:
      return mode_vector(n);
  }
}

/* ---------------------------------------------------------------------- */

double FixGNNRollout::memory_usage()
{
  double bytes = (double) atom->nmax * (ncols + 2) * sizeof(double);
  bytes += graph->memory_usage();
  bytes += (double) (node_feat.capacity() + edge_feat.capacity() + out_accel.capacity()) *
      sizeof(double);
  return bytes;
}
