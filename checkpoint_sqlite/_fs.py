"""Whether a database file lives on a network filesystem: checked when a saver opens it.

SQLite's locks and its write-ahead log need a local disk. Over NFS, SMB (Azure Files, most
NAS shares), 9p or a FUSE bucket mount, locks are often advisory or broken, and the WAL's
shared-memory index is not shared between machines: two hosts (two pods on one volume) that
write the same file can corrupt it, and one that reads may miss commits. SQLite's own
documentation says so ("WAL does not work over a network filesystem"). The saver still
opens such a file (one process on one host usually works), with a warning that names the
filesystem and the fix.

Linux only (`/proc/self/mounts`); elsewhere nothing is checked.
"""

from __future__ import annotations

import os
import re
import warnings

__all__ = [
    "NetworkFilesystemWarning",
    "check_filesystem",
    "filesystem_type",
    "is_network",
    "network_filesystem",
    "warn_network",
]

_MOUNTS = "/proc/self/mounts"
_NETWORK = frozenset({"cifs", "smb3", "smbfs", "9p", "afs", "ncpfs", "glusterfs", "ceph", "lustre"})
"""Besides every type whose name starts with "nfs" (nfs, nfs4)."""
_NETWORK_FUSE = frozenset({"sshfs", "s3fs", "gcsfuse", "rclone", "goofys", "glusterfs", "blobfuse"})
_ESCAPE = re.compile(r"\\([0-7]{3})")
_warned: set[str] = set()


class NetworkFilesystemWarning(UserWarning):
    """A SQLite database file is on a network filesystem, where its locks and WAL fail."""


def _unescape(field: str) -> str:
    """A mount point as the kernel writes it (space as \\040, tab \\011, ...)."""
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), field)


def filesystem_type(path: str, mounts: str | None = None) -> str | None:
    """The type of the filesystem holding `path` ("ext4", "nfs4", "fuse.sshfs", ...), from
    the mount table at `mounts` (default `/proc/self/mounts`); None when it cannot be read
    (not Linux)."""
    real = os.path.realpath(os.path.abspath(path))
    try:
        with open(mounts or _MOUNTS, encoding="utf-8", errors="surrogateescape") as table:
            lines = table.read().splitlines()
    except OSError:
        return None
    best, found = -1, None
    for line in lines:
        parts = line.split()
        if len(parts) < 3:
            continue
        point, fstype = _unescape(parts[1]), parts[2]
        inside = real == point or real.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= best:  # the deepest mount wins; a later one shadows
            best, found = len(point), fstype
    return found


def is_network(fstype: str) -> bool:
    """True for a filesystem type whose files other machines reach too."""
    kind = fstype.lower()
    if kind.startswith("fuse."):
        return kind[5:] in _NETWORK_FUSE
    return kind in _NETWORK or kind.startswith("nfs")


def check_filesystem(path: str) -> None:
    """Warn (`NetworkFilesystemWarning`, once per file and process) when the database file
    `path` (or the directory it will be created in) is on a network filesystem."""
    found = network_filesystem(path)
    if found is not None:
        warn_network(path, *found, stacklevel=4)


def network_filesystem(path: str) -> tuple[str, str] | None:
    """`(real path, filesystem type)` when the database file `path` (or the directory it will
    be created in) is on a network filesystem not yet warned of; else None. File system
    calls only (the async saver makes them on a thread), no warning."""
    real = os.path.realpath(os.path.abspath(path))
    if real in _warned:
        return None
    fstype = filesystem_type(real if os.path.exists(real) else os.path.dirname(real))
    if fstype is None or not is_network(fstype):
        return None
    return real, fstype


def warn_network(path: str, real: str, fstype: str, *, stacklevel: int) -> None:
    """The `NetworkFilesystemWarning` for `path` (once per file and process)."""
    if real in _warned:
        return
    _warned.add(real)
    warnings.warn(
        f"the SQLite database {path!r} is on a network filesystem ({fstype}). SQLite's locks "
        "and its write-ahead log need a local disk: two machines (or pods) writing this file "
        "can corrupt it, and one reading it may miss commits. Put it on a local disk, or use "
        "PostgreSQL (checkpoint_postgres) for storage that several machines share.",
        NetworkFilesystemWarning,
        stacklevel=stacklevel,
    )
