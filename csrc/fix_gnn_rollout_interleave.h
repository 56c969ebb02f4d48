/* -*- c++ -*- ----------------------------------------------------------
   lmp-gnn: fix gnn/rollout mode interleave (docs/fix_gnn_rollout.md): one run of cycles of
   md_block MD steps (velocity Verlet, the driven axis shrinking by delta_l / every per step,
   Berendsen zero pressure on the free axis) and learn_block learned steps (leap_step of mode
   leap, handing MD only the non-affine velocity). Every `every` MD steps a true snapshot
   R = x + n L pushes R(s) - R(s-1) onto the history a learned block starts from.

   Mode adaptive is mode interleave with learned blocks of a varying length (block_len): a
   learned step whose state's live error signal (f_ID[13]) is above tol is not taken, MD takes
   over at once and the next block is as long as the steps this one took (each of them passed
   the signal); a block that ends without that doubles the next one, up to learn_block; a block
   of 0 steps (pure MD) is followed by one of 1. Every block's end is logged.
------------------------------------------------------------------------- */

#ifndef LMP_FIX_GNN_ROLLOUT_INTERLEAVE_H
#define LMP_FIX_GNN_ROLLOUT_INTERLEAVE_H

#include "fix_gnn_rollout_leap.h"

namespace LAMMPS_NS {

class FixGNNRolloutInterleave : public FixGNNRolloutLeap {
 public:
  FixGNNRolloutInterleave(class LAMMPS *, int, char **);
  ~FixGNNRolloutInterleave() override;
  int setmask() override;
  void init() override;
  void setup(int) override;
  void initial_integrate(int) override;
  void final_integrate() override;
  void end_of_step() override;

 protected:
  void bind_restart(LMPGNN::RestartRecord &) override;
  double mode_vector(int n) override;

 private:
  int c_prev;                       // state column: the last snapshot R (unwrapped), 2 values
  std::string id_temp, id_press;    // computes created by this fix for the free-axis pressure
  class Compute *temperature, *pressure;
  bigint cycle_pos;                 // steps into the current cycle (restart-persistent)
  bigint nmd_taken;                 // MD steps integrated (restart-persistent)
  bool learned_now;                 // this step is a learned step
  bigint block_len;                 // learned steps of the current cycle (restart-persistent)
  double block_signal;              // largest signal of the current learned block (restart-persistent)

  void end_learned_block(bool stopped);
  void snapshot();
  void half_kick();
  void md_box_step();
  void remap_axis(int axis, double lnew);
};

}    // namespace LAMMPS_NS

#endif
