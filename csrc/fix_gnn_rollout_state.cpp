/* ----------------------------------------------------------------------
   lmp-gnn: fix gnn/rollout, the per-atom state and the restart record (see fix_gnn_rollout.h)

   One per-atom array `state`, one row per atom, columns named in fix_gnn_rollout.h (C_ACCEL,
   C_HIST, then the mode's own): grow, copy, exchange, restart and forward comm all move rows
   or column ranges of it (and keep the output copy accel_out of C_ACCEL row for row). The
   bond-partner tables travel by GNNBondGraph's comm instead (rebuilt after every neighbor
   list build, not exchanged). The global restart record is a
   list of named fields (gnn_restart_record.h), bound by bind_restart() in each class.
   Also here: the initial velocity histories (init velocity, file or fix).
------------------------------------------------------------------------- */

#include "fix_gnn_rollout.h"

#include "gnn_bond_graph.h"
#include "gnn_model.h"
#include "gnn_restart_record.h"

#include "atom.h"
#include "comm.h"
#include "error.h"
#include "group.h"
#include "memory.h"
#include "modify.h"
#include "update.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <fstream>
#include <sstream>

using namespace LAMMPS_NS;

/* ----------------------------------------------------------------------
   the per-atom state of a mode with nmode_cols columns of its own (from C_HIST + nhist),
   zeroed; called last by each mode's constructor, which passes the tail of the log line
------------------------------------------------------------------------- */

void FixGNNRollout::setup_state(int nmode_cols, const std::string &log_detail)
{
  ncols = C_HIST + nhist + nmode_cols;
  maxexchange = ncols;
  FixGNNRollout::grow_arrays(atom->nmax);
  for (int i = 0; i < atom->nlocal; i++) {
    for (int k = 0; k < ncols; k++) state[i][k] = 0.0;
    accel_out[i][0] = accel_out[i][1] = 0.0;
  }
  // taken now, so that the shadow fix may be unfixed before the next run
  if (init_style == INIT_FIX) {
    copy_history_from_fix();
    hist_ready = 1;
  }
  atom->add_callback(Atom::GROW);
  atom->add_callback(Atom::RESTART);
  callbacks_added = true;

  if (comm->me == 0)
    utils::logmesg(lmp,
                   "fix gnn/rollout: {}\n  history {}, layers {}, delta_l {}, md steps per "
                   "learned step {}, driven axis {}, box {}{}\n",
                   model->description(), history, layers, delta_l, mdsteps, driven ? "y" : "x",
                   boxflag ? "yes" : "no", log_detail);
}

/* ----------------------------------------------------------------------
   forward comm of column ranges of the state to the ghost atoms
------------------------------------------------------------------------- */

void FixGNNRollout::forward_state(std::initializer_list<Columns> cols)
{
  ncomm_cols = 0;
  for (const Columns &c : cols) comm_cols[ncomm_cols++] = c;
  comm->forward_comm(this);
}

int FixGNNRollout::pack_forward_comm(int n, int *list, double *buf, int /*pbc_flag*/,
                                     int * /*pbc*/)
{
  if (graph->communicating()) return graph->pack_forward_comm(n, list, buf);
  int m = 0;
  for (int ii = 0; ii < n; ii++) {
    const double *row = state[list[ii]];
    for (int c = 0; c < ncomm_cols; c++)
      for (int k = 0; k < comm_cols[c].count; k++) buf[m++] = row[comm_cols[c].first + k];
  }
  return m;
}

void FixGNNRollout::unpack_forward_comm(int n, int first, double *buf)
{
  if (graph->communicating()) {
    graph->unpack_forward_comm(n, first, buf);
    return;
  }
  int m = 0;
  const int last = first + n;
  for (int i = first; i < last; i++) {
    double *row = state[i];
    for (int c = 0; c < ncomm_cols; c++)
      for (int k = 0; k < comm_cols[c].count; k++) row[comm_cols[c].first + k] = buf[m++];
  }
}

// reverse comm only ever carries the bond-partner tables
int FixGNNRollout::pack_reverse_comm(int n, int first, double *buf)
{
  return graph->pack_reverse_comm(n, first, buf);
}

void FixGNNRollout::unpack_reverse_comm(int n, int *list, double *buf)
{
  graph->unpack_reverse_comm(n, list, buf);
}

/* ----------------------------------------------------------------------
   per-atom state: whole rows follow the atoms
------------------------------------------------------------------------- */

void FixGNNRollout::grow_arrays(int nmax)
{
  memory->grow(state, nmax, ncols, "gnn/rollout:state");
  memory->grow(accel_out, nmax, 2, "gnn/rollout:accel_out");
  graph->grow(nmax);
  array_atom = accel_out;
}

void FixGNNRollout::copy_arrays(int i, int j, int /*delflag*/)
{
  for (int k = 0; k < ncols; k++) state[j][k] = state[i][k];
  accel_out[j][0] = accel_out[i][0];
  accel_out[j][1] = accel_out[i][1];
}

int FixGNNRollout::pack_exchange(int i, double *buf)
{
  for (int k = 0; k < ncols; k++) buf[k] = state[i][k];
  return ncols;
}

int FixGNNRollout::unpack_exchange(int nlocal, double *buf)
{
  for (int k = 0; k < ncols; k++) state[nlocal][k] = buf[k];
  accel_out[nlocal][0] = state[nlocal][C_ACCEL];
  accel_out[nlocal][1] = state[nlocal][C_ACCEL + 1];
  return ncols;
}

int FixGNNRollout::pack_restart(int i, double *buf)
{
  buf[0] = ncols + 1;
  for (int k = 0; k < ncols; k++) buf[1 + k] = state[i][k];
  return ncols + 1;
}

void FixGNNRollout::unpack_restart(int nlocal, int nth)
{
  double **extra = atom->extra;
  int m = 0;
  for (int i = 0; i < nth; i++) m += static_cast<int>(extra[nlocal][m]);
  const int count = static_cast<int>(extra[nlocal][m]);
  if (count != ncols + 1)
    error->one(FLERR, "Fix gnn/rollout restart data of atom {} holds {} values, expected {}",
               atom->tag[nlocal], count - 1, ncols);
  m++;
  for (int k = 0; k < ncols; k++) state[nlocal][k] = extra[nlocal][m++];
  accel_out[nlocal][0] = state[nlocal][C_ACCEL];
  accel_out[nlocal][1] = state[nlocal][C_ACCEL + 1];
}

int FixGNNRollout::size_restart(int /*nlocal*/)
{
  return ncols + 1;
}

int FixGNNRollout::maxsize_restart()
{
  return ncols + 1;
}

/* ----------------------------------------------------------------------
   global restart record (format LMPGNN::RESTART_FORMAT): the mode and history length it was
   written with, then the fields bind_restart() names
------------------------------------------------------------------------- */

void FixGNNRollout::bind_restart(LMPGNN::RestartRecord &record)
{
  record.field("learned_steps", nsteps_taken);
  record.field("histories_ready", hist_ready);
}

void FixGNNRollout::write_restart(FILE *fp)
{
  if (comm->me != 0) return;
  int written_mode = mode, written_history = history;
  LMPGNN::RestartRecord record;
  record.field("mode", written_mode);
  record.field("history", written_history);
  bind_restart(record);
  double written_delta_l = delta_l;    // optional field: files written before it lack it
  record.field("delta_l", written_delta_l);
  const std::vector<char> bytes = record.write();
  const int size = (int) bytes.size();
  fwrite(&size, sizeof(int), 1, fp);
  fwrite(bytes.data(), 1, bytes.size(), fp);
}

void FixGNNRollout::restart(char *buf)
{
  const double format = LMPGNN::RestartRecord::format_of(buf);
  if (format != LMPGNN::RESTART_FORMAT)
    error->all(FLERR,
               "Fix gnn/rollout restart file holds its state in restart format {}, this build "
               "reads format {}: write the restart file again with this build",
               format, LMPGNN::RESTART_FORMAT);
  double written_mode = -1.0, written_history = -1.0;
  if (!LMPGNN::RestartRecord::lookup(buf, "mode", written_mode) ||
      !LMPGNN::RestartRecord::lookup(buf, "history", written_history))
    error->all(FLERR, "Fix gnn/rollout restart record lacks its mode or history field");
  if ((int) written_history != history)
    error->all(FLERR,
               "Fix gnn/rollout restart file holds histories of {} velocities, the model {} "
               "takes {}",
               (int) written_history, model_file, history);
  if ((int) written_mode != mode)
    error->all(FLERR, "Fix gnn/rollout restart file was written in mode {}, this fix runs mode {}",
               mode_name((int) written_mode), mode_name(mode));
  LMPGNN::RestartRecord record;
  bind_restart(record);
  const std::string missing = record.read(buf);
  if (!missing.empty())
    error->all(FLERR, "Fix gnn/rollout restart record (format {}) lacks field {}",
               LMPGNN::RESTART_FORMAT, missing);
  // the run goes on with the step it was written with (the model's strain step was fixed by the
  // box it started in), unless the deck gives dl; a file without the field keeps this fix's
  double written_delta_l = 0.0;
  if (!dl_keyword && LMPGNN::RestartRecord::lookup(buf, "delta_l", written_delta_l)) delta_l = written_delta_l;
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
          state[i][C_HIST + 2 * k] = v[i][0] * scale;
          state[i][C_HIST + 2 * k + 1] = v[i][1] * scale;
        }
  }
  // (mode interleave replaces the histories by MD snapshots before its first learned step,
  // whose displacements model_accel checks)
  if (init_style == INIT_FILE || (init_style == INIT_VELOCITY && mode == LEAP)) check_history();
  hist_ready = 1;
}

/* ----------------------------------------------------------------------
   the initial histories (init velocity or file) hold finite displacements per learned
   step no larger than a learned step can carry (step_limit)
------------------------------------------------------------------------- */

void FixGNNRollout::check_history()
{
  std::string limit_what;
  const double limit = step_limit(limit_what);
  double count = 0.0, largest = 0.0;
  for (int i = 0; i < atom->nlocal; i++)
    if (atom->mask[i] & groupbit) {
      bool bad = false;
      for (int k = 0; k < history; k++) {
        const double norm = std::hypot(state[i][C_HIST + 2 * k], state[i][C_HIST + 2 * k + 1]);
        if (!(norm <= limit)) bad = true;
        largest = std::isfinite(norm) ? std::max(largest, norm) : HUGE_VAL;
      }
      if (bad) count += 1.0;
    }
  MPI_Allreduce(MPI_IN_PLACE, &count, 1, MPI_DOUBLE, MPI_SUM, world);
  if (count == 0.0) return;
  MPI_Allreduce(MPI_IN_PLACE, &largest, 1, MPI_DOUBLE, MPI_MAX, world);
  const std::string source = init_style == INIT_FILE
      ? "history file " + init_file
      : fmt::format("init velocity (v dt mdsteps, mdsteps {})", mdsteps);
  error->all(FLERR,
             "Fix gnn/rollout {}: the velocity histories of {} atom(s) hold displacements of up to "
             "{:.4g} per learned step: expected at most {} ({:.4g})",
             source, (bigint) count, largest, limit_what, limit);
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
      for (int k = 0; k < nhist; k++) state[i][C_HIST + k] = src->state[i][C_HIST + k];
}

void FixGNNRollout::read_history_file()
{
  std::string text;
  long long nbytes = -1;
  if (comm->me == 0) {
    std::ifstream in(init_file);
    if (platform::path_is_directory(init_file))
      nbytes = -2;
    else if (in.good()) {
      std::stringstream ss;
      ss << in.rdbuf();
      text = ss.str();
      nbytes = (long long) text.size();
    }
  }
  MPI_Bcast(&nbytes, 1, MPI_LONG_LONG, 0, world);
  if (nbytes == -2)
    error->all(FLERR, "Fix gnn/rollout cannot open history file {}: it is a directory", init_file);
  if (nbytes < 0)
    error->all(FLERR, "Fix gnn/rollout cannot open history file {}: {}", init_file,
               utils::getsyserror());
  text.resize(nbytes);
  MPI_Bcast(text.data(), (int) nbytes, MPI_CHAR, 0, world);

  // each rank reads every line and takes the atoms it owns; what is wrong with a line is
  // found on every rank (format, ID range) or on the owner of its atom (listed twice, not in
  // the group), or by no rank owning it (no such atom); the first wrong line is reported
  const int nlocal = atom->nlocal;
  const int *mask = atom->mask;
  const tagint maxtag = atom->map_tag_max;
  std::istringstream lines(text);
  std::string line;
  int lineno = 0;
  bigint nset = 0, nowned = 0;
  std::vector<double> values(nhist);
  std::vector<int> line_of(nlocal, 0);       // the line that gave an owned atom its history
  std::vector<long long> id_of_line(1, 0);    // atom ID of each line (0: no data)
  enum { TWICE, NOT_IN_GROUP, NO_ATOM, NKINDS };
  int first_bad[NKINDS] = {INT_MAX, INT_MAX, INT_MAX};    // first line of each kind
  while (std::getline(lines, line)) {
    lineno++;
    id_of_line.push_back(0);
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
    if (id < 1 || id > (long long) maxtag)
      error->all(FLERR,
                 "Fix gnn/rollout history file {} line {}: expected an atom ID between 1 and {}, "
                 "got {}",
                 init_file, lineno, maxtag, id);
    id_of_line.back() = id;
    const int i = atom->map((tagint) id);
    if (i < 0 || i >= nlocal) continue;    // owned by another rank, or by none
    nowned++;
    int kind = -1;
    if (!(mask[i] & groupbit))
      kind = NOT_IN_GROUP;
    else if (line_of[i])
      kind = TWICE;
    if (kind >= 0) {
      first_bad[kind] = std::min(first_bad[kind], lineno);
      continue;
    }
    for (int k = 0; k < nhist; k++) state[i][C_HIST + k] = values[k];
    line_of[i] = lineno;
    nset++;
  }

  // lines whose atom no rank owns: found line by line only when their count says so
  const int ndata = (int) std::count_if(id_of_line.begin(), id_of_line.end(),
                                        [](long long id) { return id != 0; });
  bigint nowned_all = 0;
  MPI_Allreduce(&nowned, &nowned_all, 1, MPI_LMP_BIGINT, MPI_SUM, world);
  if (nowned_all < ndata) {
    std::vector<int> owned(lineno + 1, 0);
    for (int l = 1; l <= lineno; l++)
      if (id_of_line[l]) {
        const int i = atom->map((tagint) id_of_line[l]);
        owned[l] = (i >= 0 && i < nlocal) ? 1 : 0;
      }
    MPI_Allreduce(MPI_IN_PLACE, owned.data(), lineno + 1, MPI_INT, MPI_MAX, world);
    for (int l = 1; l <= lineno; l++)
      if (id_of_line[l] && !owned[l]) {
        first_bad[NO_ATOM] = l;
        break;
      }
  }
  MPI_Allreduce(MPI_IN_PLACE, first_bad, NKINDS, MPI_INT, MPI_MIN, world);
  const int bad = (int) (std::min_element(first_bad, first_bad + NKINDS) - first_bad);
  const int badline = first_bad[bad];
  if (badline != INT_MAX) {
    const long long id = id_of_line[badline];
    if (bad == TWICE) {
      const int earlier = (int) (std::find(id_of_line.begin(), id_of_line.end(), id) -
                                 id_of_line.begin());
      error->all(FLERR,
                 "Fix gnn/rollout history file {} line {}: atom {} is listed twice (first on "
                 "line {}); expected each atom of group {} once",
                 init_file, badline, id, earlier, group->names[igroup]);
    }
    if (bad == NOT_IN_GROUP)
      error->all(FLERR,
                 "Fix gnn/rollout history file {} line {}: atom {} is not in group {}; expected "
                 "the atoms of the group only",
                 init_file, badline, id, group->names[igroup]);
    error->all(FLERR,
               "Fix gnn/rollout history file {} line {}: there is no atom {}; expected the "
               "atoms of group {}",
               init_file, badline, id, group->names[igroup]);
  }

  bigint nset_all = 0;
  MPI_Allreduce(&nset, &nset_all, 1, MPI_LMP_BIGINT, MPI_SUM, world);
  const bigint ngroup = group->count(igroup);
  if (nset_all != ngroup)
    error->all(FLERR, "Fix gnn/rollout history file {} gives {} of the {} atoms of group {}",
               init_file, nset_all, ngroup, group->names[igroup]);
}
