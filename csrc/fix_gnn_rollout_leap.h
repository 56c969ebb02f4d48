/* -*- c++ -*- ----------------------------------------------------------
   lmp-gnn: fix gnn/rollout mode leap (docs/fix_gnn_rollout.md): one LAMMPS step is one
   learned step of the graph-network simulator,

       a(t)   = model(node features, edges, edge features)     (docs/formats.md)
       v(t+1) = v(t) + a(t),   x(t+1) = x(t) + v(t+1)

   with the velocity history in the per-atom state (columns C_HIST) and the box following the
   box rule (gnn_rules.h). Mode interleave (fix_gnn_rollout_interleave.h) takes its learned
   steps with leap_step() too.
------------------------------------------------------------------------- */

#ifndef LMP_FIX_GNN_ROLLOUT_LEAP_H
#define LMP_FIX_GNN_ROLLOUT_LEAP_H

#include "fix_gnn_rollout.h"

namespace LAMMPS_NS {

class FixGNNRolloutLeap : public FixGNNRollout {
 public:
  FixGNNRolloutLeap(class LAMMPS *, int, char **);
  int setmask() override;
  void setup(int) override;
  void initial_integrate(int) override;

 protected:
  FixGNNRolloutLeap(class LAMMPS *, int, char **, int mode);
  // one learned step; nonaffine: hand MD only the velocity less the box's affine strain.
  // Not taken (false) when the state's live error signal is above max_signal
  bool leap_step(bool nonaffine, double max_signal = INFINITY);
  void change_box(const double lnew[2]);
};

}    // namespace LAMMPS_NS

#endif
