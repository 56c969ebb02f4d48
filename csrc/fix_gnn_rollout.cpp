/* ----------------------------------------------------------------------
   lmp-gnn: fix gnn/rollout (see docs/fix_gnn_rollout.md)

   Leap mode: one LAMMPS step is one learned step of the graph-network simulator,

       a(t)   = model(node features, edges, edge features)     (docs/formats.md)
       v(t+1) = v(t) + a(t),   x(t+1) = x(t) + v(t+1)

   with the per-atom velocity history kept in a per-atom array that follows LAMMPS's
   per-atom protocol (exchange, restart) and the box following the box rule.

   MPI: a rank owns its atoms; the graph it hands to the model holds its owned group atoms
   plus the ghost atoms up to k bonds away (k = model layers), found through per-atom
   bond-partner tables built from the bond list after every neighbor list build (reverse
   comm to the owners, forward comm to the ghosts). Only the accelerations of owned atoms
   are used, so they are exact whenever the ghost shell is k bonds deep.
------------------------------------------------------------------------- */

#include "fix_gnn_rollout.h"

#include "gnn_features.h"
#include "gnn_rules.h"
#include "gnn_model.h"

#include "atom.h"
#include "bond.h"
#include "comm.h"
#include "compute.h"
#include "domain.h"
#include "error.h"
#include "force.h"
#include "group.h"
#include "memory.h"
#include "modify.h"
#include "neighbor.h"
#include "update.h"

#include <dlfcn.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>

using namespace LAMMPS_NS;
using namespace FixConst;

static const char *BACKEND_LIBRARY = "libgnn_torch.so";
static const char *PYTHON_BACKEND_LIBRARY = "libgnn_python.so";
static constexpr int NRESTART = 23;    // values of the global restart state

// where this plugin was loaded from: the TorchScript backend library sits next to it
static std::string plugin_directory()
{
  Dl_info info;
  if (dladdr(reinterpret_cast<void *>(&plugin_directory), &info) && info.dli_fname)
    return platform::path_dirname(info.dli_fname);
  return ".";
}

/* ---------------------------------------------------------------------- */

FixGNNRollout::FixGNNRollout(LAMMPS *lmp, int narg, char **arg) :
    Fix(lmp, narg, arg), mode(LEAP), init_style(INIT_VELOCITY), nthreads(1), driven(0),
    freeaxis(1), boxflag(1), history(0), nhist(0), layers(0), mdsteps(-1.0), delta_l(0.0),
    hist(nullptr), accel(nullptr), shadow(nullptr), nshadow(0), every(0), maxpartner(0),
    npartner(nullptr), partner_tag(nullptr), partner_rest(nullptr), partner_overflow(0),
    commmode(COMM_HISTORY), nown(0), nedges_all(0), max_bond_length(0.0), hist_ready(0),
    nsteps_taken(0), last_eps(0.0), last_model_ms(0.0), last_step_ms(0.0), sum_model_ms(0.0),
    nmodel_calls(0), md_block(0), learn_block(0), pdamp(1.0), modulus(1.0), temperature(nullptr),
    pressure(nullptr), cycle_pos(0), nmd_taken(0), learned_now(false), nsnap(0), last_snap_step(-1),
    copy_started(0), have_prediction(0),
    lcopy{0.0, 0.0}, ccopy{0.0, 0.0},
    sum0{0.0, 0.0}, mse_one(0.0), mse_roll(0.0), nu_true(0.0), nu_learned(0.0), ngroup(0)
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

  while (iarg < narg) {
    if (strcmp(arg[iarg], "mode") == 0) {
      if (iarg + 2 > narg) utils::missing_cmd_args(FLERR, "fix gnn/rollout mode", error);
      if (strcmp(arg[iarg + 1], "leap") == 0)
        mode = LEAP;
      else if (strcmp(arg[iarg + 1], "shadow") == 0)
        mode = SHADOW;
      else if (strcmp(arg[iarg + 1], "interleave") == 0)
        mode = INTERLEAVE;
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
      if (mdsteps <= 0.0)
        error->all(FLERR, iarg + 1, "Fix gnn/rollout mdsteps must be > 0, got {}", arg[iarg + 1]);
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
      iarg += 2;
    } else if (strcmp(arg[iarg], "device") == 0) {
      if (iarg + 2 > narg) utils::missing_cmd_args(FLERR, "fix gnn/rollout device", error);
      device = arg[iarg + 1];
      iarg += 2;
    } else {
      error->all(FLERR, iarg, "Unknown fix gnn/rollout keyword: {}", arg[iarg]);
    }
  }

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
  if (mdsteps <= 0.0) mdsteps = info.md_steps_per_step;
  if (!dl_given) delta_l = info.delta_l;

  if (mode != LEAP && every <= 0) every = std::max(1L, std::lround(mdsteps));
  if (mode == SHADOW) {
    nevery = every;
    nshadow = SH_HIST + nhist;
  } else {
    time_integrate = 1;
  }
  if (mode == INTERLEAVE) {
    if (md_block <= 0 || md_block % every)
      error->all(FLERR,
                 "Fix gnn/rollout mode interleave needs md N with N > 0 a multiple of every ({}), "
                 "got md {}",
                 every, md_block);
    if (!boxflag)
      error->all(FLERR, "Fix gnn/rollout mode interleave drives the box; box no is not allowed");
    nshadow = SH_PRED;    // the last snapshot R only
    // the free axis' pressure, as fix press/berendsen measures it
    id_temp = std::string(id) + "_temp";
    id_press = std::string(id) + "_press";
    modify->add_compute(fmt::format("{} all temp", id_temp));
    modify->add_compute(fmt::format("{} all pressure {}", id_press, id_temp));
  }
  restart_global = 1;
  restart_peratom = 1;
  vector_flag = 1;
  size_vector = 12;
  global_freq = 1;
  extvector = 0;
  peratom_flag = 1;
  size_peratom_cols = 2;
  peratom_freq = 1;
  maxexchange = nhist + 2 + nshadow;
  comm_forward = 2 * nhist + 2;
  if (boxflag && mode != SHADOW) box_change |= BOX_CHANGE_X | BOX_CHANGE_Y;

  FixGNNRollout::grow_arrays(atom->nmax);
  atom->add_callback(Atom::GROW);
  atom->add_callback(Atom::RESTART);
  for (int i = 0; i < atom->nlocal; i++) {
    for (int k = 0; k < nhist; k++) hist[i][k] = 0.0;
    accel[i][0] = accel[i][1] = 0.0;
    for (int k = 0; k < nshadow; k++) shadow[i][k] = 0.0;
  }
  // taken now, so that the shadow fix may be unfixed before the next run
  if (init_style == INIT_FIX) {
    copy_history_from_fix();
    hist_ready = 1;
  }

  if (comm->me == 0)
    utils::logmesg(lmp,
                   "fix gnn/rollout: {}\n  history {}, layers {}, delta_l {}, md steps per "
                   "learned step {}, driven axis {}, box {}{}\n",
                   model->description(), history, layers, delta_l, mdsteps, driven ? "y" : "x",
                   boxflag ? "yes" : "no",
                   mode == SHADOW ? fmt::format(", shadow of MD every {} steps", every)
                   : mode == INTERLEAVE
                       ? fmt::format(", cycles of {} MD steps (snapshot every {}) and {} learned steps",
                                     md_block, every, learn_block)
                       : "");
}

/* ---------------------------------------------------------------------- */

FixGNNRollout::~FixGNNRollout()
{
  if (copymode) return;
  if (!id_press.empty() && modify->get_compute_by_id(id_press)) modify->delete_compute(id_press);
  if (!id_temp.empty() && modify->get_compute_by_id(id_temp)) modify->delete_compute(id_temp);
  atom->delete_callback(id, Atom::GROW);
  atom->delete_callback(id, Atom::RESTART);
  memory->destroy(hist);
  memory->destroy(accel);
  memory->destroy(shadow);
  memory->destroy(npartner);
  memory->destroy(partner_tag);
  memory->destroy(partner_rest);
}

/* ---------------------------------------------------------------------- */

int FixGNNRollout::setmask()
{
  int mask = 0;
  if (mode != SHADOW) mask |= INITIAL_INTEGRATE;
  if (mode == INTERLEAVE) mask |= FINAL_INTEGRATE;
  if (mode != LEAP) mask |= END_OF_STEP;
  mask |= POST_NEIGHBOR;
  return mask;
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

  // no other integrator on the group, no other box change while this fix drives the box

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
                   mode == LEAP ? "leap" : "interleave", group->names[igroup], ifix->id,
                   ifix->style, all);
    }
    if (boxflag && (ifix->box_change & BOX_CHANGE_SIZE))
      error->all(FLERR,
                 "Fix gnn/rollout box yes changes the box, and fix {} ({}) changes it too; "
                 "unfix it or use fix gnn/rollout box no",
                 ifix->id, ifix->style);
  }

  if (mode == INTERLEAVE) {
    temperature = modify->get_compute_by_id(id_temp);
    pressure = modify->get_compute_by_id(id_press);
    if (!temperature || !pressure)
      error->all(FLERR, "Fix gnn/rollout {}: its computes {} and {} were deleted", id, id_temp,
                 id_press);
  }

  // size of the bond-partner tables: the largest number of 1-2 neighbors of any atom

  int mymax = 0, newmax = 0;
  if (atom->nspecial)
    for (int i = 0; i < nlocal; i++) mymax = std::max(mymax, atom->nspecial[i][0]);
  MPI_Allreduce(&mymax, &newmax, 1, MPI_INT, MPI_MAX, world);
  newmax = std::max(newmax, 1);
  if (newmax != maxpartner) {
    maxpartner = newmax;
    memory->destroy(npartner);
    memory->destroy(partner_tag);
    memory->destroy(partner_rest);
    memory->create(npartner, atom->nmax, "gnn/rollout:npartner");
    memory->create(partner_tag, atom->nmax, maxpartner, "gnn/rollout:partner_tag");
    memory->create(partner_rest, atom->nmax, maxpartner, "gnn/rollout:partner_rest");
  }
  comm_forward = std::max(2 * nhist + 2, 1 + 2 * maxpartner);
  comm_reverse = 1 + 2 * maxpartner;
}

/* ---------------------------------------------------------------------- */

void FixGNNRollout::setup_post_neighbor()
{
  post_neighbor();
}

/* ---------------------------------------------------------------------- */

void FixGNNRollout::post_neighbor()
{
  build_partners();
  build_graph();
}

/* ---------------------------------------------------------------------- */

void FixGNNRollout::setup(int /*vflag*/)
{
  if (nedges_all == 0)
    error->all(FLERR, "Fix gnn/rollout group {} has no bonds between its atoms",
               group->names[igroup]);
  check_halo();
  ngroup = group->count(igroup);
  if (mode != SHADOW && !hist_ready) init_history();
  if (mode == SHADOW && nsnap == 0) shadow_snapshot();
  if (mode == INTERLEAVE) {
    if (nsnap == 0) interleave_snapshot();    // the reference of the first true velocity
    pressure->addstep(update->ntimestep + 1);
  }
}

/* ----------------------------------------------------------------------
   bond partners (atom ID, rest length) of every group atom, owned and ghost
------------------------------------------------------------------------- */

void FixGNNRollout::add_partner(int i, tagint t, double rest)
{
  for (int p = 0; p < npartner[i]; p++)
    if (partner_tag[i][p] == t) return;
  if (npartner[i] >= maxpartner) {
    partner_overflow = 1;
    return;
  }
  partner_tag[i][npartner[i]] = t;
  partner_rest[i][npartner[i]] = rest;
  npartner[i]++;
}

void FixGNNRollout::build_partners()
{
  const int nall = atom->nlocal + atom->nghost;
  const int *mask = atom->mask;
  const tagint *tag = atom->tag;
  for (int i = 0; i < nall; i++) npartner[i] = 0;
  partner_overflow = 0;

  int **bondlist = neighbor->bondlist;
  const int nbondlist = neighbor->nbondlist;
  int badtype = 0;
  for (int n = 0; n < nbondlist; n++) {
    const int i1 = bondlist[n][0], i2 = bondlist[n][1], type = bondlist[n][2];
    if (!(mask[i1] & groupbit) || !(mask[i2] & groupbit)) continue;
    const double rest = force->bond->equilibrium_distance(type);
    if (!(rest > 0.0)) badtype = type;
    add_partner(i1, tag[i2], rest);
    add_partner(i2, tag[i1], rest);
  }
  if (badtype)
    error->one(FLERR, "Fix gnn/rollout: bond type {} has rest length {}; l_r must be positive",
               badtype, force->bond->equilibrium_distance(badtype));

  commmode = COMM_PARTNERS;
  comm->reverse_comm(this);    // partners found through ghost atoms -> their owners
  comm->forward_comm(this);    // complete tables of the owners -> their ghost atoms
  commmode = COMM_HISTORY;
  if (partner_overflow)
    error->one(FLERR, "Fix gnn/rollout: an atom has more than {} bond partners, more than its "
               "special list says", maxpartner);
}

/* ----------------------------------------------------------------------
   graph of this rank: owned group atoms first, then ghost atoms up to k bonds away;
   edges into every node closer than k bonds, messages flow sender -> receiver
------------------------------------------------------------------------- */

void FixGNNRollout::build_graph()
{
  const int nlocal = atom->nlocal;
  const int nall = nlocal + atom->nghost;
  const int *mask = atom->mask;
  const tagint *tag = atom->tag;
  double **x = atom->x;

  node_of.assign(nall, -1);
  node_atom.clear();
  for (int i = 0; i < nlocal; i++)
    if (mask[i] & groupbit) {
      node_of[i] = (int) node_atom.size();
      node_atom.push_back(i);
    }
  nown = (int) node_atom.size();

  std::vector<int64_t> senders, receivers;
  senders.reserve(edge_rest.capacity() / 2 + 16);
  receivers.reserve(edge_rest.capacity() / 2 + 16);
  edge_rest.clear();
  const int depth = std::max(layers, 1);
  const double box[2] = {domain->xprd, domain->yprd};
  std::size_t begin = 0, end = node_atom.size();
  bigint nown_edges = 0, missing = 0;
  tagint missing_from = 0, missing_to = 0;
  double maxlen = 0.0, maxrest = 0.0;
  for (int level = 0; level < depth; level++) {
    for (std::size_t k = begin; k < end; k++) {
      const int i = node_atom[k];
      for (int p = 0; p < npartner[i]; p++) {
        const int s = atom->map(partner_tag[i][p]);
        maxrest = std::max(maxrest, partner_rest[i][p]);
        if (s < 0) {
          if (!missing) missing_from = tag[i], missing_to = partner_tag[i][p];
          missing++;
          continue;
        }
        if (node_of[s] < 0) {
          node_of[s] = (int) node_atom.size();
          node_atom.push_back(s);
        }
        senders.push_back(node_of[s]);
        receivers.push_back((int64_t) k);
        edge_rest.push_back(partner_rest[i][p]);
        if (level == 0) {
          double d[LMPGNN::EDGE_DIM];
          LMPGNN::edge_feature(x[i][0] - x[s][0], x[i][1] - x[s][1], box, 1.0, d);
          maxlen = std::max(maxlen, d[2]);
          nown_edges++;
        }
      }
    }
    begin = end;
    end = node_atom.size();
  }
  const std::size_t nedges = senders.size();
  edge_index.resize(2 * nedges);
  std::copy(senders.begin(), senders.end(), edge_index.begin());
  std::copy(receivers.begin(), receivers.end(), edge_index.begin() + nedges);

  double lens[2] = {maxlen, maxrest}, lens_all[2];
  MPI_Allreduce(lens, lens_all, 2, MPI_DOUBLE, MPI_MAX, world);
  max_bond_length = lens_all[0];
  bigint counts[2] = {nown_edges, missing}, counts_all[2];
  MPI_Allreduce(counts, counts_all, 2, MPI_LMP_BIGINT, MPI_SUM, world);
  nedges_all = counts_all[0];
  if (counts_all[1]) {
    tagint pair[2] = {missing_from, missing_to}, pair_all[2];
    MPI_Allreduce(pair, pair_all, 2, MPI_LMP_TAGINT, MPI_MAX, world);
    const double need = depth * std::max(lens_all[0], lens_all[1]) * 1.1 + neighbor->skin;
    error->all(FLERR,
               "Fix gnn/rollout: atom {} is bonded to atom {}, which is not a ghost atom on its "
               "MPI rank; the model's {} message-passing layer(s) need ghost atoms {} bond(s) "
               "deep: use comm_modify cutoff {:.4g} (or larger)",
               pair_all[0], pair_all[1], layers, depth, need);
  }
}

/* ----------------------------------------------------------------------
   the ghost shell must reach k bonds: compare the communication cutoff with
   k times the longest bond of the group
------------------------------------------------------------------------- */

void FixGNNRollout::check_halo()
{
  const int depth = std::max(layers, 1);
  const double need = depth * max_bond_length;
  const double cut = comm->get_comm_cutoff();
  if (cut < need)
    error->all(FLERR,
               "Fix gnn/rollout: the model's {} message-passing layer(s) need ghost atoms {} "
               "bond(s) deep, {:.4g} with the longest bond {:.4g}, but the communication cutoff "
               "is {:.4g}: use comm_modify cutoff {:.4g} (or larger)",
               layers, depth, need, max_bond_length, cut, need * 1.1 + neighbor->skin);
}

/* ----------------------------------------------------------------------
   initial velocity histories: from the atoms' velocities (all h entries
   v_md dt mdsteps, i.e. uniform motion) or from a file
------------------------------------------------------------------------- */

void FixGNNRollout::init_history()
{
  const int nlocal = atom->nlocal;
  const int *mask = atom->mask;
  if (init_style == INIT_FILE) {
    read_history_file();
  } else if (init_style == INIT_FIX) {
    copy_history_from_fix();    // (normally done at creation)
  } else {
    double **v = atom->v;
    const double scale = update->dt * mdsteps;
    for (int i = 0; i < nlocal; i++)
      if (mask[i] & groupbit)
        for (int k = 0; k < history; k++) {
          hist[i][2 * k] = v[i][0] * scale;
          hist[i][2 * k + 1] = v[i][1] * scale;
        }
  }
  hist_ready = 1;
}

/* ----------------------------------------------------------------------
   histories from the true snapshots of a fix gnn/rollout in mode shadow whose
   last snapshot is the current step (MD -> learned switch without a jump)
------------------------------------------------------------------------- */

void FixGNNRollout::copy_history_from_fix()
{
  auto *src = dynamic_cast<FixGNNRollout *>(modify->get_fix_by_id(init_fix));
  if (!src || src->mode != SHADOW)
    error->all(FLERR,
               "Fix gnn/rollout init fix {}: expected the ID of a fix gnn/rollout in mode shadow",
               init_fix);
  if (src->history != history)
    error->all(FLERR, "Fix gnn/rollout init fix {}: it keeps {} velocities, this model takes {}",
               init_fix, src->history, history);
  if (src->nsnap <= history)
    error->all(FLERR, "Fix gnn/rollout init fix {}: it has recorded {} snapshot(s), {} are needed "
               "for {} velocities", init_fix, src->nsnap, history + 1, history);
  if (src->last_snap_step != update->ntimestep)
    error->all(FLERR, "Fix gnn/rollout init fix {}: its last snapshot is from step {}, not the "
               "current step {}; end the MD run on a multiple of its every ({})",
               init_fix, src->last_snap_step, update->ntimestep, src->every);
  bigint missing = 0, all = 0;
  for (int i = 0; i < atom->nlocal; i++)
    if ((atom->mask[i] & groupbit) && !(atom->mask[i] & src->groupbit)) missing++;
  MPI_Allreduce(&missing, &all, 1, MPI_LMP_BIGINT, MPI_SUM, world);
  if (all)
    error->all(FLERR, "Fix gnn/rollout init fix {}: {} atoms of group {} are not in its group",
               init_fix, all, group->names[igroup]);
  for (int i = 0; i < atom->nlocal; i++)
    if (atom->mask[i] & groupbit)
      for (int k = 0; k < nhist; k++) hist[i][k] = src->hist[i][k];
}

void FixGNNRollout::read_history_file()
{
  std::string text;
  long long nbytes = -1;
  if (comm->me == 0) {
    std::ifstream in(init_file);
    if (in.good()) {
      std::stringstream ss;
      ss << in.rdbuf();
      text = ss.str();
      nbytes = (long long) text.size();
    }
  }
  MPI_Bcast(&nbytes, 1, MPI_LONG_LONG, 0, world);
  if (nbytes < 0)
    error->all(FLERR, "Fix gnn/rollout cannot open history file {}: {}", init_file,
               utils::getsyserror());
  text.resize(nbytes);
  MPI_Bcast(text.data(), (int) nbytes, MPI_CHAR, 0, world);

  const int nlocal = atom->nlocal;
  const int *mask = atom->mask;
  std::istringstream lines(text);
  std::string line;
  int lineno = 0;
  bigint nset = 0;
  std::vector<double> values(nhist);
  while (std::getline(lines, line)) {
    lineno++;
    const auto hash = line.find('#');
    if (hash != std::string::npos) line.resize(hash);
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    std::istringstream words(line);
    long long id = 0;
    bool ok = static_cast<bool>(words >> id);
    for (int k = 0; ok && k < nhist; k++) ok = static_cast<bool>(words >> values[k]);
    std::string extra;
    if (ok && (words >> extra)) ok = false;
    if (!ok)
      error->all(FLERR,
                 "Fix gnn/rollout history file {} line {}: expected an atom ID and {} values "
                 "(vx, vy of v(t), ..., v(t-{})), got '{}'",
                 init_file, lineno, nhist, history - 1, utils::trim(line));
    const int i = atom->map((tagint) id);
    if (i >= 0 && i < nlocal && (mask[i] & groupbit)) {
      for (int k = 0; k < nhist; k++) hist[i][k] = values[k];
      nset++;
    }
  }
  bigint nset_all = 0;
  MPI_Allreduce(&nset, &nset_all, 1, MPI_LMP_BIGINT, MPI_SUM, world);
  const bigint ngroup = group->count(igroup);
  if (nset_all != ngroup)
    error->all(FLERR, "Fix gnn/rollout history file {} gives {} of the {} atoms of group {}",
               init_file, nset_all, ngroup, group->names[igroup]);
}

/* ---------------------------------------------------------------------- */

void FixGNNRollout::initial_integrate(int /*vflag*/)
{
  if (mode == LEAP) {
    leap_step(false);
    return;
  }
  learned_now = cycle_pos >= md_block;
  if (learned_now) {
    // ghost positions after the end-of-step box remap of the block's last MD step
    if (cycle_pos == md_block) comm->forward_comm();
    leap_step(true);
    for (int i = 0; i < atom->nlocal; i++)    // the learned position is the last snapshot
      if (atom->mask[i] & groupbit) unwrapped(i, &shadow[i][SH_PREV]);
    return;
  }
  // MD: first half of velocity Verlet (as fix nve): half kick, then drift
  half_kick();
  double **x = atom->x, **v = atom->v;
  for (int i = 0; i < atom->nlocal; i++)
    if (atom->mask[i] & groupbit)
      for (int d = 0; d < 2; d++) x[i][d] += update->dt * v[i][d];
}

/* ----------------------------------------------------------------------
   interleave mode, MD steps: second half of velocity Verlet
------------------------------------------------------------------------- */

void FixGNNRollout::final_integrate()
{
  if (!learned_now) half_kick();
}

// v += (dt / 2) f / m for the group atoms (in-plane components)
void FixGNNRollout::half_kick()
{
  double **v = atom->v, **f = atom->f;
  const double dtf = 0.5 * update->dt * force->ftm2v;
  for (int i = 0; i < atom->nlocal; i++)
    if (atom->mask[i] & groupbit) {
      const double dtfm = dtf / (atom->rmass ? atom->rmass[i] : atom->mass[atom->type[i]]);
      for (int d = 0; d < 2; d++) v[i][d] += dtfm * f[i][d];
    }
}

/* ----------------------------------------------------------------------
   accelerations of all graph nodes into out_accel: node features from the
   history columns hh[i][hcol..], edge features from positions pos[i][pcol..]
   (any image: minimum image in `box`)
------------------------------------------------------------------------- */

void FixGNNRollout::model_accel(double **pos, int pcol, double **hh, int hcol, const double box[2])
{
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
  try {
    model->compute(nnodes, node_feat.data(), nedges, edge_index.data(), edge_feat.data(),
                   out_accel.data());
  } catch (std::exception &e) {
    error->one(FLERR, "Fix gnn/rollout at step {}: {}", update->ntimestep, e.what());
  }
  last_model_ms = 1000.0 * (platform::walltime() - tm);
  sum_model_ms += last_model_ms;
  nmodel_calls++;
}

/* ----------------------------------------------------------------------
   one learned step: features -> model -> positions, histories, velocities, box
------------------------------------------------------------------------- */

void FixGNNRollout::leap_step(bool nonaffine)
{
  const double t0 = platform::walltime();
  commmode = COMM_HISTORY;
  comm->forward_comm(this);    // velocity histories of the ghost atoms

  double **x = atom->x;
  double **v = atom->v;

  const double box[2] = {domain->xprd, domain->yprd};
  model_accel(x, 0, hist, 0, box);

  // displacements u = v(t) + a(t); nothing is written before every rank has finite ones

  const double centre = 0.5 * (domain->boxlo[freeaxis] + domain->boxhi[freeaxis]);
  const double lfree = domain->prd[freeaxis];
  double sums[3] = {0.0, 0.0, 0.0};    // sum u y, sum y^2, non-finite count
  for (int k = 0; k < nown; k++) {
    const int i = node_atom[k];
    const double *a = &out_accel[2 * k];
    if (!std::isfinite(a[0]) || !std::isfinite(a[1])) sums[2] += 1.0;
    double u[2];
    LMPGNN::learned_displacement(hist[i], a, u);
    LMPGNN::free_axis_sums(x[i][freeaxis], centre, lfree, u[freeaxis], sums[0], sums[1]);
  }
  MPI_Allreduce(MPI_IN_PLACE, sums, 3, MPI_DOUBLE, MPI_SUM, world);
  if (sums[2] > 0.0)
    error->all(FLERR,
               "Fix gnn/rollout: the model returned non-finite accelerations for {} atom(s) at "
               "step {}; positions were not updated",
               (bigint) sums[2], update->ntimestep);

  // MD velocities: the learned displacement per MD time, less (nonaffine) the affine part
  // strain (x - c) that the box change of this step carries (interleave: the MD that follows
  // deforms the box and remaps the atoms itself)
  last_eps = LMPGNN::free_axis_strain_from_sums(sums[0], sums[1]);
  const double prd[2] = {domain->prd[0], domain->prd[1]};
  double newbox[2], strain[2] = {0.0, 0.0}, ctr[2];
  LMPGNN::box_rule(prd, driven, delta_l, last_eps, newbox);
  for (int d = 0; d < 2; d++) {
    ctr[d] = 0.5 * (domain->boxlo[d] + domain->boxhi[d]);
    if (nonaffine) strain[d] = LMPGNN::box_strain(prd[d], newbox[d]);
  }
  const double md_time = mdsteps * update->dt;
  for (int k = 0; k < nown; k++) {
    const int i = node_atom[k];
    const double *a = &out_accel[2 * k];
    double u[2], xold[2] = {x[i][0], x[i][1]};
    LMPGNN::advance(history, hist[i], x[i], a, u);
    accel[i][0] = a[0];
    accel[i][1] = a[1];
    for (int d = 0; d < 2; d++)
      v[i][d] = LMPGNN::hand_over_velocity(u[d], xold[d], ctr[d], prd[d], strain[d], md_time);
    v[i][2] = 0.0;
  }

  if (boxflag) change_box(newbox);
  nsteps_taken++;
  update->atime += (mdsteps - 1.0) * update->dt;    // a learned step stands for mdsteps MD steps
  last_step_ms = 1000.0 * (platform::walltime() - t0);
}

/* ----------------------------------------------------------------------
   shadow mode: a snapshot of the true MD every `every` steps
------------------------------------------------------------------------- */

void FixGNNRollout::end_of_step()
{
  if (mode == SHADOW) {
    shadow_snapshot();
    return;
  }
  // interleave
  const bigint pos = cycle_pos + 1;    // steps into the cycle after this one
  if (!learned_now) {
    md_box_step();
    nmd_taken++;
    if (pos % every == 0) interleave_snapshot();
  }
  cycle_pos = pos % (md_block + learn_block);
  pressure->addstep(update->ntimestep + 1);
}

/* ----------------------------------------------------------------------
   interleave mode, after an MD step: the compression protocol's box (DESIGN.md
   section 3), in the order of lmp_gnn.md: the free axis by Berendsen to zero pressure
   (as fix press/berendsen ... dilate all), then the driven axis shrinking by
   delta_l / every (as fix deform ... erate ... remap x); all atoms remapped
------------------------------------------------------------------------- */

void FixGNNRollout::md_box_step()
{
  temperature->compute_vector();
  pressure->compute_vector();
  const double p = pressure->vector[freeaxis];
  const double dilation = std::pow(1.0 - update->dt / pdamp * (0.0 - p) / modulus, 1.0 / 3.0);
  remap_axis(freeaxis, domain->prd[freeaxis] * dilation);
  remap_axis(driven, domain->prd[driven] - delta_l / every);
}

void FixGNNRollout::remap_axis(int axis, double lnew)
{
  if (!(lnew > 0.0))
    error->all(FLERR, "Fix gnn/rollout: box length {} along {} at step {}", lnew,
               axis ? "y" : "x", update->ntimestep);
  const double c = 0.5 * (domain->boxlo[axis] + domain->boxhi[axis]);
  const double scale = lnew / domain->prd[axis];
  double **x = atom->x;
  for (int i = 0; i < atom->nlocal; i++) x[i][axis] = c + (x[i][axis] - c) * scale;
  domain->boxlo[axis] = c - 0.5 * lnew;
  domain->boxhi[axis] = c + 0.5 * lnew;
  domain->set_global_box();
  domain->set_local_box();
}

/* ----------------------------------------------------------------------
   interleave mode: a true snapshot R = x + n L every `every` MD steps; the
   velocity R(s) - R(s-1) (R(s-1) possibly the end of a learned block) is pushed
   onto the history, which a learned block starts from
------------------------------------------------------------------------- */

void FixGNNRollout::interleave_snapshot()
{
  for (int i = 0; i < atom->nlocal; i++) {
    if (!(atom->mask[i] & groupbit)) continue;
    double r[2];
    unwrapped(i, r);
    double *prev = &shadow[i][SH_PREV];
    if (nsnap > 0) LMPGNN::push_velocity(history, hist[i], r[0] - prev[0], r[1] - prev[1]);
    prev[0] = r[0];
    prev[1] = r[1];
  }
  nsnap++;
  last_snap_step = update->ntimestep;
}

void FixGNNRollout::unwrapped(int i, double *r) const
{
  const imageint image = atom->image[i];
  const int n[2] = {(int) (image & IMGMASK) - IMGMAX, (int) (image >> IMGBITS & IMGMASK) - IMGMAX};
  for (int d = 0; d < 2; d++) r[d] = LMPGNN::unwrap(atom->x[i][d], n[d], domain->prd[d]);
}

/* ----------------------------------------------------------------------
   record snapshot s of the true MD (unwrapped R = x + n L); score the one-step
   prediction and the learned copy against it; from s = h on, predict snapshot
   s+1 from the true history and advance the free-running learned copy by one
   learned step (box rule on its own box)
------------------------------------------------------------------------- */

void FixGNNRollout::shadow_snapshot()
{
  const double t0 = platform::walltime();
  double **x = atom->x;
  const double prd[2] = {domain->prd[0], domain->prd[1]};
  const double centre[2] = {0.5 * (domain->boxlo[0] + domain->boxhi[0]),
                            0.5 * (domain->boxlo[1] + domain->boxhi[1])};
  const int s = (int) nsnap;    // index of this snapshot

  // sums: 0 one-step squared error, 1 copy squared error, 2-3 sum |r - c| true,
  //       4-5 sum |r - c| learned copy (nu_est: each atom followed from its snapshot-0 image)
  double sums[6] = {0.0, 0.0, 0.0, 0.0, 0.0, 0.0};
  for (int k = 0; k < nown; k++) {
    const int i = node_atom[k];
    double *sh = shadow[i];
    double r[2];
    unwrapped(i, r);
    if (s > 0)
      LMPGNN::push_velocity(history, hist[i], r[0] - sh[SH_PREV], r[1] - sh[SH_PREV + 1]);
    for (int d = 0; d < 2; d++) {
      sh[SH_PREV + d] = r[d];
      if (s == 0) sh[SH_IMG0 + d] = LMPGNN::estimator_image(r[d] - centre[d], prd[d]);
      if (have_prediction) sums[0] += (r[d] - sh[SH_PRED + d]) * (r[d] - sh[SH_PRED + d]);
      if (copy_started) {
        sums[1] += (r[d] - sh[SH_COPY + d]) * (r[d] - sh[SH_COPY + d]);
        sums[4 + d] += LMPGNN::estimator_distance(sh[SH_COPY + d] - ccopy[d], sh[SH_IMG0 + d], lcopy[d]);
      }
      sums[2 + d] += LMPGNN::estimator_distance(r[d] - centre[d], sh[SH_IMG0 + d], prd[d]);
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
      double *sh = shadow[node_atom[k]];
      sh[SH_COPY] = sh[SH_PREV];
      sh[SH_COPY + 1] = sh[SH_PREV + 1];
      for (int c = 0; c < nhist; c++) sh[SH_HIST + c] = hist[node_atom[k]][c];
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

  commmode = COMM_SHADOW;
  comm->forward_comm(this);    // true and learned histories, learned positions of ghosts
  commmode = COMM_HISTORY;

  // one-step prediction of snapshot s+1 from the true state

  const double box[2] = {prd[0], prd[1]};
  model_accel(x, 0, hist, 0, box);
  double flags[3] = {0.0, 0.0, 0.0};    // non-finite count, eps numerator, eps denominator
  for (int k = 0; k < nown; k++) {
    const int i = node_atom[k];
    const double *a = &out_accel[2 * k];
    if (!std::isfinite(a[0]) || !std::isfinite(a[1])) flags[0] += 1.0;
    double u[2];
    LMPGNN::learned_displacement(hist[i], a, u);
    shadow[i][SH_PRED] = shadow[i][SH_PREV] + u[0];
    shadow[i][SH_PRED + 1] = shadow[i][SH_PREV + 1] + u[1];
  }
  have_prediction = 1;

  // one learned step of the free-running copy (same inputs as above when it just started)

  if (!same_state) model_accel(shadow, SH_COPY, shadow, SH_HIST, lcopy);
  for (int k = 0; k < nown; k++) {
    const int i = node_atom[k];
    double *sh = shadow[i];
    const double *a = &out_accel[2 * k];
    if (!std::isfinite(a[0]) || !std::isfinite(a[1])) flags[0] += 1.0;
    double u[2];
    LMPGNN::learned_displacement(&sh[SH_HIST], a, u);
    LMPGNN::free_axis_sums(sh[SH_COPY + freeaxis], ccopy[freeaxis], lcopy[freeaxis],
                           u[freeaxis], flags[1], flags[2]);
    accel[i][0] = a[0];
    accel[i][1] = a[1];
  }
  MPI_Allreduce(MPI_IN_PLACE, flags, 3, MPI_DOUBLE, MPI_SUM, world);
  if (flags[0] > 0.0)
    error->all(FLERR,
               "Fix gnn/rollout: the model returned non-finite accelerations for {} atom(s) at "
               "step {}; the shadow copy was not updated",
               (bigint) flags[0], update->ntimestep);
  for (int k = 0; k < nown; k++) {
    const int i = node_atom[k];
    double u[2];
    LMPGNN::advance(history, &shadow[i][SH_HIST], &shadow[i][SH_COPY], accel[i], u);
  }
  last_eps = LMPGNN::free_axis_strain_from_sums(flags[1], flags[2]);
  if (boxflag) {
    const double lold[2] = {lcopy[0], lcopy[1]};
    LMPGNN::box_rule(lold, driven, delta_l, last_eps, lcopy);
  }
  nsteps_taken++;
  last_step_ms = 1000.0 * (platform::walltime() - t0);
}

/* ----------------------------------------------------------------------
   the box rule's new lengths (LMPGNN::box_rule) applied, centre kept.
   Node positions are not rescaled; an atom with image flag n is shifted by
   -n dL so that its unwrapped position x + n L stays the learned position.
------------------------------------------------------------------------- */

void FixGNNRollout::change_box(const double lnew[2])
{
  const double lold[2] = {domain->prd[0], domain->prd[1]};
  if (!(lnew[0] > 0.0) || !(lnew[1] > 0.0))
    error->all(FLERR, "Fix gnn/rollout: the box rule gives box lengths {} {} at step {}",
               lnew[0], lnew[1], update->ntimestep);
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
  for (int k = 0; k < nown; k++) {
    const int i = node_atom[k];
    const int nx = (image[i] & IMGMASK) - IMGMAX;
    const int ny = (image[i] >> IMGBITS & IMGMASK) - IMGMAX;
    x[i][0] -= nx * dl[0];
    x[i][1] -= ny * dl[1];
  }
}

/* ----------------------------------------------------------------------
   f_ID[1..6]: learned steps taken, ms of the last model call, mean ms per model
   call, ms of the last whole learned step, last free-axis strain increment eps,
   directed edges of the group graph (ms on MPI rank 0); shadow mode adds
   f_ID[7..11]: one-step MSE, rollout MSE of the learned copy, nu_est of the
   truth, nu_est of the learned copy, snapshots recorded
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
      return (double) nedges_all;
    case 6:
      return mse_one;
    case 7:
      return mse_roll;
    case 8:
      return nu_true;
    case 9:
      return nu_learned;
    case 10:
      return (double) nsnap;
    case 11:
      return (double) nmd_taken;
    default:
      return 0.0;
  }
}

/* ---------------------------------------------------------------------- */

double FixGNNRollout::memory_usage()
{
  double bytes = (double) atom->nmax * (nhist + 2 + nshadow) * sizeof(double);
  bytes += (double) atom->nmax * (sizeof(int) + maxpartner * (sizeof(tagint) + sizeof(double)));
  bytes += (double) (node_atom.capacity() + node_of.capacity()) * sizeof(int);
  bytes += (double) edge_index.capacity() * sizeof(int64_t);
  bytes += (double) (edge_rest.capacity() + node_feat.capacity() + edge_feat.capacity() +
                     out_accel.capacity()) *
      sizeof(double);
  return bytes;
}

/* ----------------------------------------------------------------------
   global restart state: format, history length, learned steps, histories ready
------------------------------------------------------------------------- */

void FixGNNRollout::write_restart(FILE *fp)
{
  if (comm->me == 0) {
    double list[NRESTART] = {3.0,          (double) history,         (double) nsteps_taken,
                             (double) hist_ready, (double) mode, (double) nsnap,
                             (double) copy_started, (double) have_prediction,
                             lcopy[0], lcopy[1], ccopy[0], ccopy[1], 0.0, 0.0,    // 12-13 unused
                             sum0[0], sum0[1], mse_one, mse_roll, nu_true, nu_learned,
                             (double) last_snap_step, (double) cycle_pos, (double) nmd_taken};
    int size = NRESTART * sizeof(double);
    fwrite(&size, sizeof(int), 1, fp);
    fwrite(list, sizeof(double), NRESTART, fp);
  }
}

void FixGNNRollout::restart(char *buf)
{
  auto *list = reinterpret_cast<double *>(buf);
  if ((int) list[1] != history)
    error->all(FLERR,
               "Fix gnn/rollout restart file holds histories of {} velocities, the model {} "
               "takes {}",
               (int) list[1], model_file, history);
  static const char *names[] = {"leap", "shadow", "interleave"};
  const int written = (int) list[4];
  if (written == SHADOW && list[0] < 3.0)
    error->all(FLERR, "Fix gnn/rollout restart file is in format {}: mode shadow restarts need "
               "format 3 (nu_est follows each atom from its snapshot-0 image); "
               "rerun the shadowed MD from its start", (int) list[0]);
  if (written != mode)
    error->all(FLERR, "Fix gnn/rollout restart file was written in mode {}, this fix runs mode {}",
               names[std::clamp(written, 0, 2)], names[mode]);
  nsteps_taken = (bigint) list[2];
  hist_ready = (int) list[3];
  nsnap = (bigint) list[5];
  copy_started = (int) list[6];
  have_prediction = (int) list[7];
  for (int d = 0; d < 2; d++) {
    lcopy[d] = list[8 + d];
    ccopy[d] = list[10 + d];
    sum0[d] = list[14 + d];
  }
  mse_one = list[16];
  mse_roll = list[17];
  nu_true = list[18];
  nu_learned = list[19];
  last_snap_step = (bigint) list[20];
  if (list[0] >= 2.0) {    // format 1 (lmp-gnn 0.1 before mode interleave) stops here
    cycle_pos = (bigint) list[21];
    nmd_taken = (bigint) list[22];
  }
}

/* ----------------------------------------------------------------------
   per-atom arrays: history and last acceleration travel with the atoms
------------------------------------------------------------------------- */

void FixGNNRollout::grow_arrays(int nmax)
{
  memory->grow(hist, nmax, std::max(nhist, 2), "gnn/rollout:hist");
  memory->grow(accel, nmax, 2, "gnn/rollout:accel");
  if (nshadow) memory->grow(shadow, nmax, nshadow, "gnn/rollout:shadow");
  if (maxpartner > 0) {
    memory->grow(npartner, nmax, "gnn/rollout:npartner");
    memory->grow(partner_tag, nmax, maxpartner, "gnn/rollout:partner_tag");
    memory->grow(partner_rest, nmax, maxpartner, "gnn/rollout:partner_rest");
  }
  array_atom = accel;
}

void FixGNNRollout::copy_arrays(int i, int j, int /*delflag*/)
{
  for (int k = 0; k < nhist; k++) hist[j][k] = hist[i][k];
  accel[j][0] = accel[i][0];
  accel[j][1] = accel[i][1];
  for (int k = 0; k < nshadow; k++) shadow[j][k] = shadow[i][k];
}

int FixGNNRollout::pack_exchange(int i, double *buf)
{
  int m = 0;
  for (int k = 0; k < nhist; k++) buf[m++] = hist[i][k];
  buf[m++] = accel[i][0];
  buf[m++] = accel[i][1];
  for (int k = 0; k < nshadow; k++) buf[m++] = shadow[i][k];
  return m;
}

int FixGNNRollout::unpack_exchange(int nlocal, double *buf)
{
  int m = 0;
  for (int k = 0; k < nhist; k++) hist[nlocal][k] = buf[m++];
  accel[nlocal][0] = buf[m++];
  accel[nlocal][1] = buf[m++];
  for (int k = 0; k < nshadow; k++) shadow[nlocal][k] = buf[m++];
  return m;
}

int FixGNNRollout::pack_restart(int i, double *buf)
{
  int m = 0;
  buf[m++] = nhist + 3 + nshadow;
  for (int k = 0; k < nhist; k++) buf[m++] = hist[i][k];
  buf[m++] = accel[i][0];
  buf[m++] = accel[i][1];
  for (int k = 0; k < nshadow; k++) buf[m++] = shadow[i][k];
  return m;
}

void FixGNNRollout::unpack_restart(int nlocal, int nth)
{
  double **extra = atom->extra;
  int m = 0;
  for (int i = 0; i < nth; i++) m += static_cast<int>(extra[nlocal][m]);
  const int count = static_cast<int>(extra[nlocal][m]);
  if (count != nhist + 3 + nshadow)
    error->one(FLERR, "Fix gnn/rollout restart data of atom {} holds {} values, expected {}",
               atom->tag[nlocal], count - 1, nhist + 2 + nshadow);
  m++;
  for (int k = 0; k < nhist; k++) hist[nlocal][k] = extra[nlocal][m++];
  accel[nlocal][0] = extra[nlocal][m++];
  accel[nlocal][1] = extra[nlocal][m++];
  for (int k = 0; k < nshadow; k++) shadow[nlocal][k] = extra[nlocal][m++];
}

int FixGNNRollout::size_restart(int /*nlocal*/)
{
  return nhist + 3 + nshadow;
}

int FixGNNRollout::maxsize_restart()
{
  return nhist + 3 + nshadow;
}

/* ----------------------------------------------------------------------
   forward comm: histories (every step) or bond-partner tables (after neighboring)
------------------------------------------------------------------------- */

int FixGNNRollout::pack_forward_comm(int n, int *list, double *buf, int /*pbc_flag*/,
                                     int * /*pbc*/)
{
  int m = 0;
  if (commmode == COMM_HISTORY) {
    for (int ii = 0; ii < n; ii++) {
      const int j = list[ii];
      for (int k = 0; k < nhist; k++) buf[m++] = hist[j][k];
    }
  } else if (commmode == COMM_SHADOW) {
    for (int ii = 0; ii < n; ii++) {
      const int j = list[ii];
      for (int k = 0; k < nhist; k++) buf[m++] = hist[j][k];
      buf[m++] = shadow[j][SH_COPY];
      buf[m++] = shadow[j][SH_COPY + 1];
      for (int k = 0; k < nhist; k++) buf[m++] = shadow[j][SH_HIST + k];
    }
  } else {
    for (int ii = 0; ii < n; ii++) {
      const int j = list[ii];
      buf[m++] = npartner[j];
      for (int p = 0; p < npartner[j]; p++) {
        buf[m++] = ubuf(partner_tag[j][p]).d;
        buf[m++] = partner_rest[j][p];
      }
    }
  }
  return m;
}

void FixGNNRollout::unpack_forward_comm(int n, int first, double *buf)
{
  int m = 0;
  const int last = first + n;
  if (commmode == COMM_HISTORY) {
    for (int i = first; i < last; i++)
      for (int k = 0; k < nhist; k++) hist[i][k] = buf[m++];
  } else if (commmode == COMM_SHADOW) {
    for (int i = first; i < last; i++) {
      for (int k = 0; k < nhist; k++) hist[i][k] = buf[m++];
      shadow[i][SH_COPY] = buf[m++];
      shadow[i][SH_COPY + 1] = buf[m++];
      for (int k = 0; k < nhist; k++) shadow[i][SH_HIST + k] = buf[m++];
    }
  } else {
    for (int i = first; i < last; i++) {
      npartner[i] = static_cast<int>(buf[m++]);
      for (int p = 0; p < npartner[i]; p++) {
        partner_tag[i][p] = (tagint) ubuf(buf[m++]).i;
        partner_rest[i][p] = buf[m++];
      }
    }
  }
}

/* ----------------------------------------------------------------------
   reverse comm: partners found through a ghost atom are merged into its owner
------------------------------------------------------------------------- */

int FixGNNRollout::pack_reverse_comm(int n, int first, double *buf)
{
  int m = 0;
  const int last = first + n;
  for (int i = first; i < last; i++) {
    buf[m++] = npartner[i];
    for (int p = 0; p < npartner[i]; p++) {
      buf[m++] = ubuf(partner_tag[i][p]).d;
      buf[m++] = partner_rest[i][p];
    }
  }
  return m;
}

void FixGNNRollout::unpack_reverse_comm(int n, int *list, double *buf)
{
  int m = 0;
  for (int ii = 0; ii < n; ii++) {
    const int j = list[ii];
    const int count = static_cast<int>(buf[m++]);
    for (int p = 0; p < count; p++) {
      const auto t = (tagint) ubuf(buf[m++]).i;
      const double rest = buf[m++];
      add_partner(j, t, rest);
    }
  }
}
