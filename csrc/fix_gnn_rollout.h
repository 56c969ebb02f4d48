/* -*- c++ -*- ----------------------------------------------------------
   lmp-gnn: fix gnn/rollout, a learned graph-network simulator integrating a LAMMPS group.

   Documentation: docs/fix_gnn_rollout.md. Feature contract: docs/formats.md and
   gnn_features.h. The model backend (TorchScript) is reached through gnn_model.h only.
------------------------------------------------------------------------- */

#ifndef LMP_FIX_GNN_ROLLOUT_H
#define LMP_FIX_GNN_ROLLOUT_H

#include "fix.h"

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace LMPGNN {
class GNNModel;
}

namespace LAMMPS_NS {

class FixGNNRollout : public Fix {
 public:
  FixGNNRollout(class LAMMPS *, int, char **);
  ~FixGNNRollout() override;
  int setmask() override;
  void init() override;
  void setup_post_neighbor() override;
  void setup(int) override;
  void post_neighbor() override;
  void initial_integrate(int) override;
  void final_integrate() override;
  void end_of_step() override;
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

 private:
  enum { LEAP, SHADOW, INTERLEAVE };
  enum { INIT_VELOCITY, INIT_FILE, INIT_FIX };
  enum { COMM_HISTORY, COMM_PARTNERS, COMM_SHADOW };
  // columns of the per-atom shadow array: last true snapshot, one-step prediction, learned
  // copy, snapshot-0 image that nu_est follows the atom from, learned copy history
  enum { SH_PREV = 0, SH_PRED = 2, SH_COPY = 4, SH_IMG0 = 6, SH_HIST = 8 };

  std::unique_ptr<LMPGNN::GNNModel> model;
  bool python_model = false;    // model_file is a Python model spec (backend libgnn_python.so)
  std::string model_file, init_file, init_fix, device;
  int mode, init_style, nthreads, driven, freeaxis, boxflag;
  int history;               // h, velocities per atom
  int nhist;                 // 2h values per atom
  int layers;                // message-passing layers k of the model (halo of k bonds)
  double mdsteps;            // MD steps one learned step stands for (velocity conversion)
  double delta_l;            // box-length change per learned step along the driven axis

  // per-atom state (follows atoms through exchange and restart)
  double **hist;      // [nmax][2h] v(t), v(t-1), ... newest first, distance per learned step
  double **accel;     // [nmax][2] last acceleration, distance per learned step^2
  // shadow mode, per atom: last true snapshot R (unwrapped), one-step prediction of the next
  // snapshot, learned copy position (unwrapped), learned copy history [2h]
  double **shadow;
  int nshadow;        // columns of shadow: 6 + 2h in shadow mode, 0 in leap mode
  int every;          // MD steps between snapshots (shadow and interleave modes)

  // interleave mode: cycles of md_block MD steps (velocity Verlet, driven axis shrinking by
  // delta_l / every per step, Berendsen zero pressure on the free axis) and learn_block
  // learned steps
  bigint md_block, learn_block;
  double pdamp, modulus;            // Berendsen time constant and modulus (free axis)
  std::string id_temp, id_press;    // computes created by this fix for the free-axis pressure
  class Compute *temperature, *pressure;
  bigint cycle_pos;                 // steps into the current cycle (restart-persistent)
  bigint nmd_taken;                 // MD steps integrated (restart-persistent)
  bool learned_now;                 // this step is a learned step
  // per-atom bond partners of group atoms, rebuilt after every neighbor list build
  int maxpartner;
  int *npartner;
  tagint **partner_tag;
  double **partner_rest;
  int partner_overflow;
  int commmode;

  // graph of the local atoms, rebuilt after every neighbor list build
  int nown;                              // owned group atoms = first nown nodes
  std::vector<int> node_atom;            // node -> local atom index
  std::vector<int> node_of;              // local atom index -> node or -1
  std::vector<int64_t> edge_index;       // [2][E] senders then receivers (node ids)
  std::vector<double> edge_rest;         // [E] l_r
  bigint nedges_all;                     // directed edges in the whole group
  double max_bond_length;                // longest bond of the group at the last build
  // per-step buffers, grown only
  std::vector<double> node_feat, edge_feat, out_accel;

  int hist_ready;               // histories initialised (restart-persistent)
  bigint nsteps_taken;          // learned steps taken (restart-persistent)
  double last_eps, last_model_ms, last_step_ms, sum_model_ms;
  bigint nmodel_calls;

  // shadow mode state (restart-persistent)
  bigint nsnap;                  // snapshots recorded
  bigint last_snap_step;         // time step of the last snapshot
  int copy_started, have_prediction;
  double lcopy[2];               // box lengths of the learned copy
  double ccopy[2];               // box centre of the learned copy
  double sum0[2];                // sum |r_i - centre| of snapshot 0 (nu_est reference)
  double mse_one, mse_roll, nu_true, nu_learned;
  bigint ngroup;

  void load_model();
  void build_partners();
  void build_graph();
  void check_halo();
  void init_history();
  void read_history_file();
  void copy_history_from_fix();
  void leap_step(bool nonaffine);
  void unwrapped(int i, double *r) const;
  void shadow_snapshot();
  void interleave_snapshot();
  void half_kick();
  void md_box_step();
  void remap_axis(int axis, double lnew);
  void model_accel(double **pos, int pcol, double **hh, int hcol, const double box[2]);
  void change_box(const double lnew[2]);
  void add_partner(int, tagint, double);
};

}    // namespace LAMMPS_NS

#endif
