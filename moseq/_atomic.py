"""Atomic file writes: a crash leaves the old file or the new one, never half of one, and a
write that fails raises one `WriteError` naming the file and the operating system's reason.

Files are written under a temporary name `.moseq-*.tmp` beside their destination and moved
into place; `remove_temporaries` clears those a killed process left behind. New files get
the permissions of the user's umask (0666 & ~umask), like any file a program creates.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
from collections.abc import Callable, Iterator

TEMPORARY_PREFIX = ".moseq-"
TEMPORARY_SUFFIX = ".tmp"


class WriteError(OSError):
    """A file could not be written: `WriteError(errno, strerror, filename)`, `filename` its
    path and `strerror` the operating system's reason (e.g. no space left on device,
    permission denied). The file, if it existed, is unchanged."""

    def __str__(self) -> str:
        if self.errno in (errno.ENOSPC, errno.EDQUOT):
            remedy = "Free space on that disk"
        elif self.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            remedy = "Make the folder writable (or work in a copy elsewhere)"
        else:
            remedy = "Remove the cause"
        return (f"cannot write {self.filename}: {self.strerror}; the files written before are "
                f"intact. {remedy}, then run again.")


@contextlib.contextmanager
def writing(path: str | os.PathLike) -> Iterator[None]:
    """Turn an `OSError` raised in the block into a `WriteError` naming `path` (and only
    that error: the failed write's follow-on errors are dropped from the report)."""
    try:
        yield
    except WriteError:
        raise
    except OSError as error:
        reason = error.strerror or str(error) or type(error).__name__
        raise WriteError(error.errno, reason, os.fspath(path)) from None


def _fresh(folder: str, suffix: str, make: Callable[[str], None]) -> str:
    """A new temporary name in `folder`, created by `make(path)` (which fails if it exists)."""
    for _ in range(100):
        path = os.path.join(folder, f"{TEMPORARY_PREFIX}{secrets.token_hex(6)}{suffix}")
        try:
            make(path)
            return path
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary name", folder)


def _create_file(path: str) -> None:
    # 0o666: the umask (and a default ACL) decide the permissions, as for any new file;
    # tempfile.mkstemp would make it 0o600, unreadable by the rest of a lab.
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = TEMPORARY_SUFFIX) -> Iterator[str]:
    """A temporary path beside `path` to write the new file to.

    When the block ends, the temporary file is flushed to disk (fsync) and moved onto `path`
    (`os.replace`); when it raises, the temporary file is removed and `path` is untouched.
    The folder of `path` is created if missing. An `OSError` (in the block or in the move)
    is raised as a `WriteError` naming `path`.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    temporary = None
    try:
        with writing(path):
            os.makedirs(folder, exist_ok=True)
            temporary = _fresh(folder, suffix, _create_file)
            yield temporary
            _fsync(temporary)
            os.replace(temporary, path)
    except BaseException:
        if temporary is not None:
            with contextlib.suppress(OSError):
                os.remove(temporary)
        raise


def write_folder(folder: str | os.PathLike, write: Callable[[str], object]) -> list[str]:
    """Run `write(temporary_folder)`, then move every file it wrote into `folder` (created if
    missing), each replacing the file of that name; other files of `folder` are kept.

    Each file moves into place complete (as with `atomic_path`). When `write` raises, nothing
    in `folder` changes. Returns the paths of the files moved, sorted. An `OSError` is raised
    as a `WriteError` naming `folder`.
    """
    folder = os.path.abspath(os.fspath(folder))
    parent = os.path.dirname(folder)
    temporary = None
    try:
        with writing(folder):
            os.makedirs(parent, exist_ok=True)
            temporary = _fresh(parent, TEMPORARY_SUFFIX, lambda path: os.mkdir(path, 0o777))
            write(temporary)
            names = sorted(os.listdir(temporary))
            for name in names:
                _fsync(os.path.join(temporary, name))
            os.makedirs(folder, exist_ok=True)
            for name in names:
                os.replace(os.path.join(temporary, name), os.path.join(folder, name))
            return [os.path.join(folder, name) for name in names]
    finally:
        if temporary is not None:
            shutil.rmtree(temporary, ignore_errors=True)


def _fsync(path: str) -> None:
    with open(path, "rb+") as file:
        os.fsync(file.fileno())


def remove_temporaries(folder: str | os.PathLike) -> list[str]:
    """Remove the temporary files and folders (`.moseq-*.tmp`) that a killed write left in
    `folder`; returns their paths. Call it before a run writes there again (one writer per
    folder at a time)."""
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        return []
    removed = []
    for name in sorted(os.listdir(folder)):
        if not (name.startswith(TEMPORARY_PREFIX) and name.endswith(TEMPORARY_SUFFIX)):
            continue
        path = os.path.join(folder, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.remove(path)
        removed.append(path)
    return removed


def check_writable(folder: str | os.PathLike) -> None:
    """Raise a `WriteError` now, before a long computation, when no file can be created in
    `folder` (created if missing): e.g. a read-only folder."""
    folder = os.fspath(folder)
    with writing(folder):
        os.makedirs(folder, exist_ok=True)
        os.remove(_fresh(folder, TEMPORARY_SUFFIX, _create_file))
