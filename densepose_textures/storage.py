"""The storage promise, kept in one place: every derived file is written whole or not at all,
unfinished work resumes only when it was made for the same thing, and files say what they hold.

- :class:`AtomicWrite`: a file is written to ``<name>.tmp`` in its folder and renamed into
  place when complete, so a kill never leaves half a file (docs/design.md); :func:`write_text` for
  small text files, :func:`replace_dir` for whole directories (or files).
- :class:`WorkDir`: ``<out>.partial/``, the work in progress of ``out`` (outside DVC's outputs),
  stamped with a fingerprint of what it is made for; a run asking for anything else starts afresh.
- Digests: :func:`file_digest`, :func:`array_digest`, and :func:`image_list_digest`, the one
  digest of an image list.
- :func:`plain_attrs`: HDF5 attributes as plain Python values.
- :class:`H5Reader`: read-only HDF5 files opened lazily, once per process, so a reader can be
  pickled into DataLoader workers or forked pool processes (h5py handles cannot be).
"""

import contextlib
import hashlib
import json
import logging
import os
import shutil
from pathlib import Path

import h5py
import numpy as np

from .errors import InputError

log = logging.getLogger(__name__)

TMP_SUFFIX = ".tmp"
PARTIAL_SUFFIX = ".partial"


# -- writing ------------------------------------------------------------------------------------

class AtomicWrite:
    """``path`` written whole or not at all: write to :attr:`tmp` (``<name>.tmp`` beside it), then
    :meth:`commit` renames it into place; :meth:`discard` drops it. As a context manager it gives
    the temporary path, commits when the block ends and discards on an exception.
    """

    def __init__(self, path):
        self.path = Path(path)
        self.tmp = self.path.with_name(self.path.name + TMP_SUFFIX)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def commit(self):
        os.replace(self.tmp, self.path)
        return self.path

    def discard(self):
        self.tmp.unlink(missing_ok=True)

    def __enter__(self):
        return self.tmp

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.commit()
        else:
            self.discard()


def write_text(path, text):
    """Write a small text file atomically; returns its path."""
    with AtomicWrite(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def _remove(path):
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def replace_dir(source, target):
    """Move the finished directory (or file) ``source`` to ``target``, replacing an old ``target``
    (which is moved aside first and removed only once ``source`` is in place)."""
    source, target = Path(source), Path(target)
    old = None
    if target.exists():
        old = target.with_name(target.name + ".old")
        if old.exists():
            _remove(old)
        os.replace(target, old)
    os.replace(source, target)
    if old is not None:
        _remove(old)
    return target


def partial_dir(path):
    """Work-in-progress directory of ``path``: the sibling ``<name>.partial`` (outside the DVC output)."""
    path = Path(path)
    return path.with_name(path.name + PARTIAL_SUFFIX)


class WorkDir:
    """``<out>.partial/``, the unfinished work of ``out``, stamped (``settings.json``) with ``fingerprint``.

    A directory left by an interrupted run with an equal fingerprint is kept (:attr:`resumed`);
    one made for anything else, or unstamped, is emptied. Stale temporary files go either way.
    """

    STAMP = "settings.json"

    def __init__(self, out, fingerprint):
        self.path = partial_dir(out)
        fingerprint = json.loads(json.dumps(fingerprint))  # as it reads back: tuples become lists
        stamp = self.path / self.STAMP
        self.resumed = False
        if self.path.is_dir():
            try:
                self.resumed = json.loads(stamp.read_text()) == fingerprint
            except (OSError, ValueError):
                pass
            if not self.resumed:
                log.warning("discarding unfinished work in %s: it was started with other settings", self.path)
                shutil.rmtree(self.path)
        if not self.resumed:
            self.path.mkdir(parents=True)
            write_text(stamp, json.dumps(fingerprint, indent=1, sort_keys=True))
        for stale in self.path.glob("*" + TMP_SUFFIX):
            stale.unlink()

    def __truediv__(self, name):
        return self.path / name

    def move_to(self, out, replace=False):
        """The finished work becomes ``out`` (without its stamp); an existing ``out`` only if ``replace``."""
        out = Path(out)
        if out.exists() and not replace:
            raise InputError(f"{out} already exists: remove it or rebuild with --force")
        (self.path / self.STAMP).unlink()
        return replace_dir(self.path, out)

    def move_into(self, out):
        """Each finished file or folder becomes ``out/<name>``, replacing one of that name; ``out``'s
        other files stay. The work directory is removed."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        (self.path / self.STAMP).unlink()
        for entry in sorted(self.path.iterdir()):
            replace_dir(entry, out / entry.name)
        self.path.rmdir()
        return out

    def remove(self):
        shutil.rmtree(self.path)


# -- describing ---------------------------------------------------------------------------------

def file_digest(path, block=1 << 20):
    """sha256 (hex) of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(block):
            h.update(chunk)
    return h.hexdigest()


def array_digest(*arrays):
    """sha256 of the arrays' bytes in order, 16 hex digits."""
    h = hashlib.sha256()
    for array in arrays:
        h.update(np.ascontiguousarray(array).tobytes())
    return h.hexdigest()[:16]


def image_list_digest(keys, pids=None, camids=None):
    """The digest of an ordered image list, independent of where the images live.

    With labels (texture sets): sha256 of one ``key<TAB>pid<TAB>camid`` line per image, 16 hex
    digits. Keys alone (IUV stores, made before labels are known): sha256 of the keys joined by
    newlines, 64 hex digits. Both are recorded in files already shared (format version 1).
    """
    if pids is None and camids is None:
        return hashlib.sha256("\n".join(keys).encode("utf-8")).hexdigest()
    h = hashlib.sha256()
    for key, pid, camid in zip(keys, pids, camids, strict=True):
        h.update(f"{key}\t{int(pid)}\t{int(camid)}\n".encode())
    return h.hexdigest()[:16]


def plain_attrs(attrs):
    """HDF5 attributes as plain Python values (str, int, float, bool, lists), sorted by name."""
    out = {}
    for name in sorted(attrs):
        value = attrs[name]
        if isinstance(value, bytes):
            value = value.decode("utf-8")
        elif isinstance(value, np.generic):
            value = value.item()
        elif isinstance(value, np.ndarray):
            value = value.tolist()
        out[name] = value
    return out


# -- reading ------------------------------------------------------------------------------------

@contextlib.contextmanager
def open_h5(path, what, fix):
    """``path`` opened read-only for the block. A file that cannot be opened, or a damaged or
    incomplete one (OSError, KeyError in the block), is an :class:`InputError` naming ``what``,
    the path and the ``fix``."""
    try:
        with h5py.File(path, "r") as f:
            yield f
    except InputError:
        raise
    except (OSError, KeyError) as err:
        raise InputError(f"{what} {path} cannot be read ({err}): {fix}") from err


class H5Reader:
    """Base of read-only HDF5 readers: :meth:`h5` opens a file once per process, on first use.

    Handles are never pickled and are reopened in a new process (a DataLoader worker, a forked
    pool process), so a reader can be handed to workers before or after its first read.
    Subclasses say what their files are (``what``), how to make one (``make``), how to fix an
    unreadable one (``fix``) and the datasets a file must hold (``required``); the constructor
    reads ``.attrs`` and hands the open file to :meth:`read_header` for what to keep in memory.
    """

    what = "HDF5 file"
    make = "write it first"
    fix = "copy or rebuild it"
    required = ()
    _handles = None
    _pid = None

    def __init__(self, path):
        self.path = Path(path)
        with self.header(self.path, self.required) as f:
            self.attrs = plain_attrs(f.attrs)
            self.read_header(f)

    def read_header(self, f):
        """Read what the reader keeps in memory from the open file ``f``."""

    @contextlib.contextmanager
    def header(self, path, required=()):
        """``path`` opened for the block, to read what the reader keeps in memory; InputError naming
        the file when it is absent, unreadable, or lacks one of the ``required`` datasets."""
        path = Path(path)
        if not path.is_file():
            raise InputError(f"{self.what} {path} not found: {self.make}")
        with open_h5(path, self.what, self.fix) as f:
            missing = [name for name in required if name not in f]
            if missing:
                raise InputError(f"{path} is not a valid {self.what} (it lacks {', '.join(missing)}): {self.make}")
            yield f

    def h5(self, path):
        """The open h5py file of ``path`` in this process."""
        if self._pid != os.getpid():  # first use in this process, or after a fork: own handles
            self._handles, self._pid = {}, os.getpid()
        f = self._handles.get(path)
        if f is None:
            try:
                f = self._handles[path] = h5py.File(path, "r")
            except OSError as err:
                raise InputError(f"{self.what} {path} cannot be read ({err}): {self.fix}") from err
        return f

    def close(self):
        if self._pid == os.getpid():
            for f in self._handles.values():
                f.close()
        self._handles, self._pid = None, None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __getstate__(self):
        return {k: v for k, v in self.__dict__.items() if k not in ("_handles", "_pid")}
