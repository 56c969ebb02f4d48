"""Writing result files so that a killed or failed run never leaves a half-written one."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

_UMASK = os.umask(0)  # read once at import (os.umask can only be read by setting it)
os.umask(_UMASK)


def atomic_write(path: str | os.PathLike, write: Callable[[str], object], suffix: str = ".tmp") -> Path:
    """Write `path` through `write(tmp)` on a temporary file beside it, then rename it into place.

    The file gets the permissions a plain `open(path, "w")` would give (mkstemp makes 0600); on any
    error, or Ctrl-C, the temporary file is removed and `path` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=suffix)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """`atomic_write` of a text file."""
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text))


@contextlib.contextmanager
def removed_on_failure(folder: str | os.PathLike, keep: Callable[[set[Path]], bool] | None = None) -> Iterator[Path]:
    """Remove what the block created under `folder` when it raises (the folder too if it did not
    exist before): a failed command leaves no half set of results. Files and folders that existed
    before are never touched; a file the block replaced stays replaced. `keep(created)`, if given
    and true for the set of paths the block created, keeps them all (e.g. checkpoints of a training
    that diverged later)."""
    folder = Path(folder)
    existed = folder.exists()
    before = set(folder.rglob("*")) if existed else set()
    try:
        yield folder
    except BaseException:
        created = set(folder.rglob("*")) - before if folder.is_dir() else set()
        if keep is not None and keep(created):
            raise
        if not existed:
            shutil.rmtree(folder, ignore_errors=True)
        elif folder.is_dir():
            for path in sorted(created, reverse=True):  # files before their folders
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    path.unlink(missing_ok=True)
        raise
