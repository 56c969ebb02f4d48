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
      else if (strcmp(value, "adaptive") == 0)
        found = ADAPTIVE;
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
  static const char *names[] = {"leap", "shadow", "interleave", "adaptive"};
  return names[std::clamp(m, 0, 3)];
}

/* ---------------------------------------------------------------------- */

FixGNNRollout::FixGNNRollout(LAMMPS *lmp, int narg, char **arg, int mode_) :
    Fix(lmp, narg, arg), mode(mode_), init_style(INIT_VELOCITY), nthreads(1), driven(0),
    freeaxis(1), boxflag(1), history(0), nhist(0), layers(0), mdsteps(-1.0), delta_l(0.0), dl_keyword(0),
    every(0), units_any(false), warned(0), md_block(0), learn_block(0), pdamp(1.0), modulus(1.0), tol(-1.0), state(nullptr), ncols(0),
    accel_out(nullptr), comm_cols{}, ncomm_cols(0), callbacks_added(false), hist_ready(0),
    nsteps_taken(0), nsnap(0), last_snap_step(-1), last_eps(0.0), last_model_ms(0.0),
    last_step_ms(0.0), sum_model_ms(0.0), nmodel_calls(0), last_force_rms(0.0)
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
      else if (strcmp(arg[iarg + 1], "adaptive") == 0)
        parsed_mode = ADAPTIVE;
      else
        error->all(FLERR, iarg + 1,
                   "Fix gnn/rollout mode {} is not supported: expected leap, shadow, interleave "
                   "or adaptive",
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
    } else if (strcmp(arg[iarg], "tol") == 0) {
      if (iarg + 2 > narg) utils::missing_cmd_args(FLERR, "fix gnn/rollout tol", error);
      tol = utils::numeric(FLERR, arg[iarg + 1], false, lmp);
      if (!(tol > 0.0) || !std::isfinite(tol))
        error->all(FLERR, iarg + 1,
                   "Fix gnn/rollout tol: expected the largest RMS net bond force a learned step "
                   "may start from, a finite number > 0, got {}",
                   arg[iarg + 1]);
      iarg += 2;
    } else if (strcmp(arg[iarg], "dl") == 0) {
      if (iarg + 2 > narg) utils::missing_cmd_args(FLERR, "fix gnn/rollout dl", error);
      delta_l = utils::numeric(FLERR, arg[iarg + 1], false, lmp);
      if (!valid_delta_l(delta_l))
        error->all(FLERR, iarg + 1,
                   "Fix gnn/rollout dl: expected the box-length decrease per learned step along "
                   "the driven axis, a finite number >= 0, got {}",
                   arg[iarg + 1]);
      dl_keyword = 1;
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
  if (mode == ADAPTIVE && !(tol > 0.0))
    error->all(FLERR, "Fix gnn/rollout mode adaptive needs the keyword tol");
  if (mode != ADAPTIVE && tol > 0.0)
    error->all(FLERR, "Fix gnn/rollout tol is a keyword of mode adaptive, not of mode {}",
               mode_name(mode));

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
  if (!dl_keyword) {
    if (!valid_delta_l(info.delta_l))
      error->all(FLERR,
                 "Fix gnn/rollout model {}: expected delta_l >= 0 (a compression), got {}; give "
                 "the keyword dl",
                 model_file, info.delta_l);
    // a step of the model's strain for this box (the driven length when the fix is defined; a
    // restart keeps the value it was written with)
    delta_l = LMPGNN::step_delta_l(info.delta_l, info.box_length, domain->prd[driven]);
  }
  graph = std::make_unique<GNNBondGraph>(lmp, this, layers);

  restart_global = 1;
  restart_peratom = 1;
  vector_flag = 1;
  size_vector = 15;
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
   f_ID[1..6]: learned steps taken, ms of the last model call, mean ms per model
   call, ms of the last whole learned step, last free-axis strain increment eps,
   directed edges of the group graph (ms on MPI rank 0); f_ID[11] snapshots recorded;
   f_ID[13] RMS net bond force of the state the last model call saw;
   the modes' own outputs (f_ID[7..10] shadow, f_ID[12, 14, 15] interleave and adaptive) from
   mode_vector()
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
    case 12:
      return last_force_rms;
    default:
      return mode_vector(n);
  }
}

/* ---------------------------------------------------------------------- */

double FixGNNRollout::memory_usage()
{
  double bytes = (double) atom->nmax * (ncols + 2) * sizeof(double);
  bytes += graph->memory_usage();
  bytes += (double) (node_feat.capacity() + edge_feat.capacity() + out_accel.capacity() + bond_force.capacity()) *
      sizeof(double);
  return bytes;
}
