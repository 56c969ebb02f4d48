/* ----------------------------------------------------------------------
   lmp-gnn: fix gnn/rollout mode interleave (see fix_gnn_rollout_interleave.h)
------------------------------------------------------------------------- */

#include "fix_gnn_rollout_interleave.h"

#include "gnn_features.h"
#include "gnn_restart_record.h"

#include "atom.h"
#include "comm.h"
#include "compute.h"
#include "domain.h"
#include "error.h"
#include "force.h"
#include "modify.h"
#include "update.h"

#include <algorithm>
#include <cmath>

using namespace LAMMPS_NS;
using namespace FixConst;

/* ---------------------------------------------------------------------- */

FixGNNRolloutInterleave::FixGNNRolloutInterleave(LAMMPS *lmp, int narg, char **arg) :
    FixGNNRolloutLeap(lmp, narg, arg, mode_of_args(narg, arg)), c_prev(0), temperature(nullptr),
    pressure(nullptr), cycle_pos(0), nmd_taken(0), learned_now(false), block_len(learn_block),
    block_signal(0.0)
{
  if (every <= 0) every = std::max(1L, std::lround(mdsteps));
  if (md_block <= 0 || md_block % every)
    error->all(FLERR,
               "Fix gnn/rollout mode {} needs md N with N > 0 a multiple of every ({}), got md {}",
               mode_name(mode), every, md_block);
  if (mode == ADAPTIVE && learn_block <= 0)
    error->all(FLERR,
               "Fix gnn/rollout mode adaptive needs learn M with M > 0, the longest learned block");
  if (!boxflag)
    error->all(FLERR, "Fix gnn/rollout mode {} drives the box; box no is not allowed",
               mode_name(mode));
  c_prev = C_HIST + nhist;
  // the free axis' pressure, as fix press/berendsen measures it
  id_temp = std::string(id) + "_temp";
  id_press = std::string(id) + "_press";
  modify->add_compute(fmt::format("{} all temp", id_temp));
  modify->add_compute(fmt::format("{} all pressure {}", id_press, id_temp));
  setup_state(2, mode == ADAPTIVE
                     ? fmt::format(", cycles of {} MD steps (snapshot every {}) and up to {} "
                                   "learned steps, while the signal is at most {}",
                                   md_block, every, learn_block, tol)
                     : fmt::format(", cycles of {} MD steps (snapshot every {}) and {} learned "
                                   "steps",
                                   md_block, every, learn_block));
}

FixGNNRolloutInterleave::~FixGNNRolloutInterleave()
{
  if (copymode) return;
  if (modify->get_compute_by_id(id_press)) modify->delete_compute(id_press);
  if (modify->get_compute_by_id(id_temp)) modify->delete_compute(id_temp);
}

int FixGNNRolloutInterleave::setmask()
{
  return INITIAL_INTEGRATE | FINAL_INTEGRATE | END_OF_STEP | POST_NEIGHBOR;
}

void FixGNNRolloutInterleave::init()
{
  FixGNNRolloutLeap::init();
  temperature = modify->get_compute_by_id(id_temp);
  pressure = modify->get_compute_by_id(id_press);
  if (!temperature || !pressure)
    error->all(FLERR, "Fix gnn/rollout {}: its computes {} and {} were deleted", id, id_temp,
               id_press);
}

void FixGNNRolloutInterleave::setup(int vflag)
{
  FixGNNRolloutLeap::setup(vflag);
  if (nsnap == 0) snapshot();    // the reference of the first true velocity
  pressure->addstep(update->ntimestep + 1);
}

void FixGNNRolloutInterleave::bind_restart(LMPGNN::RestartRecord &record)
{
  FixGNNRolloutLeap::bind_restart(record);
  record.field("snapshots", nsnap);
  record.field("last_snapshot_step", last_snap_step);
  record.field("cycle_position", cycle_pos);
  record.field("md_steps_taken", nmd_taken);
  if (mode == ADAPTIVE) {
    record.field("learned_block", block_len);
    record.field("block_signal", block_signal);
  }
}

// f_ID[12]: MD steps integrated by the fix; f_ID[14]: the fraction of the simulated time MD
// integrated; f_ID[15]: learned steps of the current cycle
double FixGNNRolloutInterleave::mode_vector(int n)
{
  if (n == 11) return (double) nmd_taken;
  if (n == 13) {
    const double md = (double) nmd_taken, learned = (double) nsteps_taken * mdsteps;
    return md + learned > 0.0 ? md / (md + learned) : 0.0;
  }
  if (n == 14) return (double) block_len;
  return 0.0;
}

/* ----------------------------------------------------------------------
   a learned step, or the first half of velocity Verlet
------------------------------------------------------------------------- */

void FixGNNRolloutInterleave::initial_integrate(int /*vflag*/)
{
  learned_now = cycle_pos >= md_block;
  if (learned_now) {
    // ghost positions after the end-of-step box remap of the block's last MD step
    if (cycle_pos == md_block) comm->forward_comm();
    if (leap_step(true, mode == ADAPTIVE ? tol : INFINITY)) {
      block_signal = std::max(block_signal, last_force_rms);
      for (int i = 0; i < atom->nlocal; i++)    // the learned position is the last snapshot
        if (atom->mask[i] & groupbit) unwrapped(i, &state[i][c_prev]);
      return;
    }
    // mode adaptive, the signal above tol: this step starts the next cycle's MD
    end_learned_block(true);
    learned_now = false;
  }
  // MD: first half of velocity Verlet (as fix nve): half kick, then drift
  half_kick();
  double **x = atom->x, **v = atom->v;
  for (int i = 0; i < atom->nlocal; i++)
    if (atom->mask[i] & groupbit)
      for (int d = 0; d < 2; d++) x[i][d] += update->dt * v[i][d];
}

/* ----------------------------------------------------------------------
   MD steps: second half of velocity Verlet
------------------------------------------------------------------------- */

void FixGNNRolloutInterleave::final_integrate()
{
  if (!learned_now) half_kick();
}

// v += (dt / 2) f / m for the group atoms (in-plane components)
void FixGNNRolloutInterleave::half_kick()
{
  double **v = atom->v, **f = atom->f;
  const double dtf = 0.5 * update->dt * force->ftm2v;
  for (int i = 0; i < atom->nlocal; i++)
    if (atom->mask[i] & groupbit) {
      const double dtfm = dtf / (atom->rmass ? atom->rmass[i] : atom->mass[atom->type[i]]);
      for (int d = 0; d < 2; d++) v[i][d] += dtfm * f[i][d];
    }
}

/* ---------------------------------------------------------------------- */

void FixGNNRolloutInterleave::end_of_step()
{
  const bigint pos = cycle_pos + 1;    // steps into the cycle after this one
  if (!learned_now) {
    md_box_step();
    nmd_taken++;
    if (pos % every == 0) snapshot();
  }
  if (pos < md_block + block_len) {
    cycle_pos = pos;
  } else {
    if (mode == ADAPTIVE) end_learned_block(false);
    cycle_pos = 0;
  }
  pressure->addstep(update->ntimestep + 1);
}

/* ----------------------------------------------------------------------
   mode adaptive: the end of a cycle's learned block, stopped by the signal (the
   current step is the first MD step of the next cycle) or run to its length; the
   next block's length, logged. A stopped block's steps all passed the signal, which
   grows about linearly over a block, so the next block repeats that length (halving
   it cost ~20 % more MD cycles at the same accuracy, benchmarks/accuracy_cost.py)
------------------------------------------------------------------------- */

void FixGNNRolloutInterleave::end_learned_block(bool stopped)
{
  const bigint taken = stopped ? cycle_pos - md_block : block_len;
  const bigint next = stopped ? taken : std::min(std::max<bigint>(1, 2 * block_len), learn_block);
  if (comm->me == 0) {
    if (stopped)
      utils::logmesg(lmp,
                     "fix gnn/rollout {}: step {}: signal {:.4g} > tol {:.4g} after {} of {} "
                     "learned steps; MD takes over, next learned block {}\n",
                     id, update->ntimestep, last_force_rms, tol, taken, block_len, next);
    else if (block_len > 0)
      utils::logmesg(lmp,
                     "fix gnn/rollout {}: step {}: {} learned steps with signal <= {:.4g} "
                     "(largest {:.4g}); next learned block {}\n",
                     id, update->ntimestep, taken, tol, block_signal, next);
    else
      utils::logmesg(lmp, "fix gnn/rollout {}: step {}: an MD-only cycle; next learned block {}\n",
                     id, update->ntimestep, next);
  }
  block_len = next;
  block_signal = 0.0;
  if (stopped) cycle_pos = 0;
}

/* ----------------------------------------------------------------------
   after an MD step: the compression protocol's box (docs/physics.md section 6), in the
   order of lmp_gnn.physics.md: the free axis by Berendsen to zero pressure (as fix
   press/berendsen ... dilate all), then the driven axis shrinking by delta_l / every
   (as fix deform ... erate ... remap x); all atoms remapped
------------------------------------------------------------------------- */

void FixGNNRolloutInterleave::md_box_step()
{
  temperature->compute_vector();
  pressure->compute_vector();
  const double p = pressure->vector[freeaxis];
  const double base = 1.0 - update->dt / pdamp * (0.0 - p) / modulus;
  if (!(base > 0.0) || !std::isfinite(base))
    error->all(FLERR,
               "Fix gnn/rollout at step {}: the Berendsen step of the free axis (pressure {:.4g}, "
               "dt / pdamp {:.4g}, modulus {:.4g}) gives the volume factor {:.4g}; expected a "
               "positive factor: use a larger pdamp or modulus",
               update->ntimestep, p, update->dt / pdamp, modulus, base);
  const double dilation = std::cbrt(base);
  remap_axis(freeaxis, domain->prd[freeaxis] * dilation);
  remap_axis(driven, domain->prd[driven] - delta_l / every);
}

void FixGNNRolloutInterleave::remap_axis(int axis, double lnew)
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
   a true snapshot R = x + n L every `every` MD steps; the velocity R(s) - R(s-1)
   (R(s-1) possibly the end of a learned block) is pushed onto the history, which a
   learned block starts from
------------------------------------------------------------------------- */

void FixGNNRolloutInterleave::snapshot()
{
  for (int i = 0; i < atom->nlocal; i++) {
    if (!(atom->mask[i] & groupbit)) continue;
    double r[2];
    unwrapped(i, r);
    double *prev = &state[i][c_prev];
    if (nsnap > 0)
      LMPGNN::push_velocity(history, &state[i][C_HIST], r[0] - prev[0], r[1] - prev[1]);
    prev[0] = r[0];
    prev[1] = r[1];
  }
  nsnap++;
  last_snap_step = update->ntimestep;
}
