/* -*- c++ -*- ----------------------------------------------------------
   lmp-gnn: fix gnn/rollout, a learned graph-network simulator integrating a LAMMPS group.

   Documentation: docs/fix_gnn_rollout.md. Feature contract: docs/formats.md and
   gnn_features.h; the rules of a learned step: gnn_rules.h. The model backend (TorchScript or
   Python) is reached through gnn_model.h only.

   One style, gnn/rollout, three classes, as LAMMPS splits the variants of a style: the plugin's
   creator (gnn_plugin.cpp) reads the `mode` keyword (mode_of_args) and constructs

     FixGNNRolloutLeap        fix_gnn_rollout_leap.h        mode leap: one step = one learned step
     FixGNNRolloutShadow      fix_gnn_rollout_shadow.h      mode shadow: follows true MD
     FixGNNRolloutInterleave  fix_gnn_rollout_interleave.h  modes interleave and adaptive: MD and
                                                            learned blocks (adaptive: of a length
                                                            set by the live error signal)

   This base class holds what the modes share: keyword parsing, model loading, the graph of the
   rank (GNNBondGraph, gnn_bond_graph.h), the model call (model_accel), the global outputs, the
   per-atom state array with its exchange/restart/comm plumbing, the initial histories and the
   global restart record (gnn_restart_record.h). Files: fix_gnn_rollout.cpp (keywords, model,
   init/setup, model call, outputs) and fix_gnn_rollout_state.cpp (per-atom state, restart,
   initial histories).
------------------------------------------------------------------------- */

#ifndef LMP_FIX_GNN_ROLLOUT_H
#define LMP_FIX_GNN_ROLLOUT_H

#include "fix.h"

#include <cmath>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

namespace LMPGNN {
class GNNModel;
class RestartRecord;
}    // namespace LMPGNN

namespace LAMMPS_NS {

class GNNBondGraph;

class FixGNNRollout : public Fix {
 public:
  enum { LEAP, SHADOW, INTERLEAVE, ADAPTIVE };
  // the mode a `fix ID group gnn/rollout ...` command asks for, to pick the class; LEAP when
  // the arguments do not say (the constructor then reports whatever is wrong with them)
  static int mode_of_args(int narg, char **arg);

  ~FixGNNRollout() override;
  void init() override;
  void setup_post_neighbor() override;
  void setup(int) override;
  void post_neighbor() override;
  void reset_dt() override {}
  double compute_vector(int) override;
  double memory_usage() override;

  void write_restart(FILE *) override;
  void restart(char *) override;
  void grow_arrays(int) override;
  void copy_arrays(int, int, int) override;
  int pack_exchange(int, double *) override;
  int unpack_exchange(int, double *) override;
  int pack_restart(int, double *) override;
  void unpack_restart(int, int) override;
  int size_restart(int) override;
  int maxsize_restart() override;
  int pack_forward_comm(int, int *, double *, int, int *) override;
  void unpack_forward_comm(int, int, double *) override;
  int pack_reverse_comm(int, int, double *) override;
  void unpack_reverse_comm(int, int *, double *) override;

 protected:
  FixGNNRollout(class LAMMPS *, int, char **, int mode);

  enum { INIT_VELOCITY, INIT_FILE, INIT_FIX };
  // columns of the per-atom state array: the last acceleration, the velocity history, then
  // the mode's own columns from C_HIST + nhist on (setup_state)
  enum { C_ACCEL = 0, C_HIST = 2 };
  struct Columns {
    int first, count;
  };

  const int mode;
  std::unique_ptr<LMPGNN::GNNModel> model;
  std::unique_ptr<GNNBondGraph> graph;
  bool python_model = false;    // model_file is a Python model spec (backend libgnn_python.so)
  std::string model_file, init_file, init_fix, device;
  int init_style, nthreads, driven, freeaxis, boxflag;
  int history;               // h, velocities per atom
  int nhist;                 // 2h values per atom
  int layers;                // message-passing layers k of the model (halo of k bonds)
  double mdsteps;            // MD steps one learned step stands for (velocity conversion)
  double delta_l;            // box-length change per learned step along the driven axis
  int dl_keyword;            // 1: delta_l given by the keyword dl (else the model's strain step)
  int every;                 // MD steps between snapshots (modes shadow and interleave)
  bool units_any;            // keyword units any: no ERROR for units other than lj
  int warned;                // start checks that have warned (bits of CHECK_*), each warns once
  bigint md_block, learn_block;    // keywords md and learn (mode interleave)
  double pdamp, modulus;           // keywords pdamp and modulus (mode interleave)
  double tol;                      // keyword tol (mode adaptive): the largest signal a learned
                                   // step may start from (f_ID[13], force units)

  // per-atom state, one row per atom, follows the atoms through exchange and restart:
  // [C_ACCEL] ax ay (distance per learned step^2), [C_HIST] v(t), v(t-1), ... newest first
  // (distance per learned step), then the mode's columns
  double **state;
  int ncols;
  // the per-atom output f_ID[1..2] (array_atom): a copy of the C_ACCEL columns, since LAMMPS's
  // Python interface reads array_atom as one contiguous [nlocal][2] block; written only by
  // set_accel() and by the functions that move whole rows of the state
  double **accel_out;
  Columns comm_cols[3];    // the columns the current forward comm of the state carries
  int ncomm_cols;
  bool callbacks_added;

  int hist_ready;               // histories initialised (restart-persistent)
  bigint nsteps_taken;          // learned steps taken (restart-persistent)
  bigint nsnap;                 // snapshots recorded (modes shadow and interleave)
  bigint last_snap_step;        // time step of the last snapshot
  double last_eps, last_model_ms, last_step_ms, sum_model_ms;
  bigint nmodel_calls;
  double last_force_rms;        // RMS net bond force of the state of the last model call
  // per-step buffers of the model call, grown only
  std::vector<double> node_feat, edge_feat, out_accel, bond_force;

  static const char *mode_name(int mode);
  void setup_state(int nmode_cols, const std::string &log_detail);
  void forward_state(std::initializer_list<Columns> cols);
  void set_accel(int i, const double a[2])
  {
    state[i][C_ACCEL] = accel_out[i][0] = a[0];
    state[i][C_ACCEL + 1] = accel_out[i][1] = a[1];
  }
  // false, with no model call, when the state's signal (last_force_rms) is above max_signal
  bool model_accel(double **pos, int pcol, double **hh, int hcol, const double box[2],
                   const char *kept, double max_signal = INFINITY);
  double step_limit(std::string &what) const;
  void unwrapped(int i, double *r) const;
  void init_history();
  void check_history();
  // the restart-persistent members of this class, bound by name (gnn_restart_record.h)
  virtual void bind_restart(LMPGNN::RestartRecord &);
  // f_ID[n + 1] for the outputs of one mode (7-10: shadow, 12, 14, 15: interleave and adaptive);
  // 0 by default
  virtual double mode_vector(int /*n*/) { return 0.0; }

 private:
  void load_model();
  void check_deck();
  void read_history_file();
  void copy_history_from_fix();
};

}    // namespace LAMMPS_NS

#endif
