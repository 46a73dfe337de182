"""Atomic writes: a killed job, a concurrent writer or a full disk never leaves a file or folder
that looks finished.

Everything is written to a temporary sibling and renamed into place; rename is atomic on one
filesystem, so readers see either the old complete state or the new complete one. The replaced
version is deleted right after the swap: a reader that was still listing it sees it shrink, and
finds another folder at the path when it looks again (tests/test_atomic.py reads that way). The temporary
name carries the writer's pid and a random suffix, so two jobs writing the same cache at once
never write into each other's temporary. A write that fails for lack of space, a read-only
filesystem or permissions raises a StorageError saying what to do, after removing the temporary.
"""

import contextlib
import csv
import ctypes
import errno
import functools
import json
import os
import secrets
import shutil
from pathlib import Path

from .errors import ShrinkError, StorageError

# Below this much free space a failed write is taken for a full disk even when the library that
# failed (torch.save, safetensors) reports it without an errno.
NEARLY_FULL_BYTES = 1 << 20


def temp_sibling(path, kind="tmp"):
    """A name beside `path` that no other writer, process or thread, will pick."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.{kind}")


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path next to `path`; move it onto `path` only if the block succeeds.

    The caller creates the temporary (a file, or a folder)."""
    with _atomic(path, make_dir=False) as tmp:
        yield tmp


@contextlib.contextmanager
def atomic_dir(path):
    """Yield a temporary folder; it replaces `path` (and anything there) only on success."""
    with _atomic(path, make_dir=True) as tmp:
        yield tmp


@contextlib.contextmanager
def _atomic(path, make_dir):
    path, tmp = Path(path), None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = temp_sibling(path)
        if make_dir:
            tmp.mkdir()
        yield tmp
        _install(tmp, path)
    except Exception as e:
        fault = storage_fault(e, path)
        if fault is None:
            raise
        raise fault from e
    finally:
        if tmp is not None:
            _remove(tmp)


def _install(tmp, path):
    """Move the finished `tmp` onto `path`, replacing what is there, so that `path` never holds a
    partial state, even while other writers install their own copies of the same cache."""
    aside = []
    try:
        while True:
            try:
                os.replace(tmp, path)  # a file over a file, a folder over nothing or an empty folder
                return
            except OSError as e:
                if e.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
                    raise
            if _exchange(tmp, path):  # `tmp` now holds the version we replaced
                return
            # No atomic swap on this filesystem: move the old version aside and try again; a reader
            # may find no folder for that instant, but never a partial one.
            old = temp_sibling(path, "old")
            with contextlib.suppress(FileNotFoundError):  # another writer moved it first
                os.rename(path, old)
                aside.append(old)
    finally:
        for old in aside:
            _remove(old)


@functools.cache
def _renameat2():
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):  # not Linux, or a C library older than glibc 2.28
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    return fn


def _exchange(a, b):
    """Swap two paths in one step (Linux renameat2 with RENAME_EXCHANGE); False where unsupported."""
    fn = _renameat2()
    if fn is None:
        return False
    at_fdcwd, rename_exchange = -100, 2
    if fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOENT):  # ENOENT: `b` just moved
        return False
    raise OSError(err, os.strerror(err), str(b))


def _remove(p):
    if p.is_dir() and not p.is_symlink():
        shutil.rmtree(p, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            p.unlink()


FULL = (errno.ENOSPC, errno.EDQUOT)
READ_ONLY = (errno.EROFS,)
DENIED = (errno.EACCES, errno.EPERM)


def storage_fault(exc, path):
    """A StorageError for `exc` if it came from the storage under `path` (full, read-only, no
    permission), else None. Call it before the temporary is removed: that frees the space."""
    if isinstance(exc, ShrinkError):
        return None  # bad input, or a fault an inner atomic write has already explained
    path, code, seen = Path(path), None, set()
    e = exc
    while e is not None and code is None and id(e) not in seen:  # the library may wrap the OSError
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in FULL + READ_ONLY + DENIED:
            code = e.errno
        e = e.__cause__ or e.__context__
    if code is None and getattr(exc, "errno", None) is None:  # e.g. torch.save: no errno to go by
        code = _filesystem_state(path.parent)
    if code is None:
        return None
    where = path.parent
    if code in FULL:
        advice = (f"the disk holding {where} is full (or over quota): free space there, or point the "
                  "results elsewhere (snakemake --directory on a larger disk), then rerun")
    elif code in READ_ONLY:
        advice = (f"{where} is on a read-only filesystem: point the results elsewhere "
                  "(snakemake --directory DIR) or remount it writable, then rerun")
    else:
        advice = (f"no permission to write in {where}: fix its permissions (chmod/chown) or point the "
                  "results elsewhere (snakemake --directory DIR), then rerun")
    return StorageError(path, code, f"cannot write {path}: {advice}; nothing was written there")


def _filesystem_state(folder):
    """errno.EROFS or errno.ENOSPC when `folder`'s filesystem is read-only or nearly full, else None."""
    try:
        st = os.statvfs(folder)
    except OSError:
        return None
    if st.f_flag & os.ST_RDONLY:
        return errno.EROFS
    if st.f_bavail * st.f_frsize < NEARLY_FULL_BYTES:
        return errno.ENOSPC
    return None


def write_text(path, text):
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path, obj):
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def write_csv(path, rows):
    """Rows (dicts with the same keys) as a CSV file, written atomically; a header alone when empty."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["step"])
        w.writeheader()
        w.writerows(rows)
