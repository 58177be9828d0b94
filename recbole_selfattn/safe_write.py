"""Files written whole or not at all.

Every file this package writes (checkpoints, converted datasets, benchmark
records, tables, saved datasets and dataloaders) goes through
:func:`atomic_open`: the data goes to a temporary file beside the target,
is synced to disk, and only then renamed over the target. A reader, a crash
or a full disk leaves the previous file or the complete new one, never a
truncated one, and no temporary file is left behind.
"""

import contextlib
import os
import tempfile


@contextlib.contextmanager
def atomic_open(path, mode="w", **kwargs):
    """Open a temporary file for writing that replaces ``path`` when the
    ``with`` block ends without an error (and is removed when it fails).

    Args:
        path (str or Path): the file to write; its folder is created.
        mode (str): ``"w"`` (text) or ``"wb"`` (bytes).
        **kwargs: passed to :func:`open` (e.g. ``encoding``, ``newline``).
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes whole files: mode must be 'w' or 'wb', not {mode!r}")
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, **kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    _sync_folder(folder)


def write_text(path, text, **kwargs):
    """Write ``text`` to ``path`` atomically (see :func:`atomic_open`)."""
    with atomic_open(path, "w", **kwargs) as f:
        f.write(text)


def _sync_folder(folder):
    """Make the rename durable (POSIX); a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
