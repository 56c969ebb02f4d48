/* -*- c++ -*- ----------------------------------------------------------
   lmp-gnn: fix gnn/rollout mode shadow (docs/fix_gnn_rollout.md): true MD integrates, the fix
   follows it. Every `every` steps a snapshot of the truth (unwrapped R = x + n L); from
   snapshot h on, the one-step prediction of the next snapshot from the true history, and one
   learned step of a free-running learned copy (own positions, history and box); their MSEs
   and the nu_est of truth and copy are outputs.
------------------------------------------------------------------------- */

#ifndef LMP_FIX_GNN_ROLLOUT_SHADOW_H
#define LMP_FIX_GNN_ROLLOUT_SHADOW_H

#include "fix_gnn_rollout.h"

namespace LAMMPS_NS {

class FixGNNRolloutShadow : public FixGNNRollout {
 public:
  FixGNNRolloutShadow(class LAMMPS *, int, char **);
  int setmask() override;
  void setup(int) override;
  void end_of_step() override;

 protected:
  void bind_restart(LMPGNN::RestartRecord &) override;
  double mode_vector(int n) override;

 private:
  // columns of the per-atom state after the history: last true snapshot R (unwrapped), the
  // one-step prediction of the next snapshot, the learned copy's position (unwrapped), the
  // snapshot-0 image that nu_est follows the atom from (2 each), the learned copy's history (2h)
  int c_prev, c_pred, c_copy, c_img0, c_copy_hist;

  // restart-persistent
  int copy_started, have_prediction;
  double lcopy[2];               // box lengths of the learned copy
  double ccopy[2];               // box centre of the learned copy
  double sum0[2];                // sum |r_i - centre| of snapshot 0 (nu_est reference)
  double mse_one, mse_roll, nu_true, nu_learned;
  bigint ngroup;

  void snapshot();
};

}    // namespace LAMMPS_NS

#endif
