"""Worker pools of the `lmp-gnn` commands whose workers end with the command that started them.

A `multiprocessing` pool worker outlives its parent: killed with SIGKILL (or by the OOM killer),
the parent cannot stop its workers, which finish the network in hand, write it, and wait for tasks
forever. `pool()` starts each worker with `die_with_parent`, which ends it as soon as the parent
is gone: on Linux by prctl(PR_SET_PDEATHSIG) (the kernel signals the worker when its parent
exits), elsewhere by a thread that watches the parent process id.
"""

from __future__ import annotations

import ctypes
import multiprocessing as mp
import multiprocessing.pool
import os
import signal
import sys
import threading
import time

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent(parent: int) -> None:
    """Pool initializer: end this process (SIGKILL) when the process `parent` ends.

    A worker killed mid-network leaves at most a temporary file, which the next run removes
    (outputs are written atomically).
    """
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            ok = libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0
        except (OSError, AttributeError):
            ok = False
        if ok:
            if os.getppid() != parent:  # the parent died before prctl took effect
                os._exit(1)
            return
    threading.Thread(target=_watch, args=(parent,), daemon=True, name="die-with-parent").start()


def _watch(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


def pool(processes: int) -> multiprocessing.pool.Pool:
    """A pool of `processes` spawned workers (each initialises MPI and LAMMPS for itself, so none
    is forked) that end when this process does."""
    return mp.get_context("spawn").Pool(processes, initializer=die_with_parent, initargs=(os.getpid(),))
