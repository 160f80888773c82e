"""Errors meant for a person: one line that names the problem and what to do.

The CLI prints an ``HsError`` without a traceback and exits with its ``exit_status``: 2 for a
usage error (bad input, a setting that does not fit the store), 1 for an environment error
(unreadable, missing or corrupt data, a full or read-only disk).
"""
from __future__ import annotations

import errno
import os


class HsError(Exception):
    """A problem with the user's input; the CLI prints it without a traceback (exit status 2)."""

    exit_status = 2


class StoreError(HsError):
    """Stored or cached data is missing, unreadable or corrupt (exit status 1)."""

    exit_status = 1


class EnvError(HsError):
    """The environment failed: a full or read-only disk, a permission (exit status 1)."""

    exit_status = 1


_OS_HINTS = {
    errno.ENOSPC: "the disk is full: free space, then rerun the same command (a dump resumes where it stopped)",
    errno.EDQUOT: "the disk quota is exceeded: free space, then rerun the same command",
    errno.EROFS: "the file system is read-only: write somewhere else",
    errno.EACCES: "permission denied: write somewhere you may, or fix the permissions",
    errno.EPERM: "permission denied: write somewhere you may, or fix the permissions",
    errno.ENOTDIR: "a part of the path is a file, not a directory: give another path",
    errno.EISDIR: "a directory stands where a file was expected: give another path",
    errno.ENAMETOOLONG: "the file name is too long: give a shorter name",
}


def os_error(exc: OSError) -> EnvError:
    """A one-line error for an OSError from the disk (full, read-only, permissions)."""
    where = f" ({exc.filename})" if exc.filename else ""
    # the errno's own text: some libraries (HDF5) put a many-line report in strerror
    what = os.strerror(exc.errno) if exc.errno else str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return EnvError(f"{what}{where}: {_OS_HINTS.get(exc.errno, 'check the disk and the path, then rerun')}")
