"""A database file on a network filesystem: the saver opens it, with a warning naming the fix."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest

from checkpoint_sqlite import AsyncSqliteSaver, NetworkFilesystemWarning, SqliteSaver, _fs


def _table(tmp_path: Path, *mounts: tuple[str, str]) -> str:
    """A mount table in /proc/self/mounts' format."""
    path = tmp_path / "mounts"
    lines = [f"dev{i} {point} {fstype} rw 0 0" for i, (point, fstype) in enumerate(mounts)]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_the_deepest_mount_holding_the_file_decides(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    (shared / "local").mkdir(parents=True)
    table = _table(tmp_path, ("/", "ext4"), (str(shared), "nfs4"), (str(shared / "local"), "tmpfs"))
    assert _fs.filesystem_type(str(shared / "app.db"), table) == "nfs4"
    assert _fs.filesystem_type(str(shared / "local" / "app.db"), table) == "tmpfs"
    assert _fs.filesystem_type(str(tmp_path / "shared-not" / "app.db"), table) == "ext4"
    assert _fs.filesystem_type(str(shared / "app.db"), str(tmp_path / "no-such-table")) is None


def test_mount_points_with_spaces(tmp_path: Path) -> None:
    share = tmp_path / "my share"
    share.mkdir()
    escaped = str(share).replace(" ", "\\040")
    table = _table(tmp_path, ("/", "ext4"), (escaped, "cifs"))
    assert _fs.filesystem_type(str(share / "app.db"), table) == "cifs"


@pytest.mark.parametrize(
    ("fstype", "network"),
    [
        ("nfs", True), ("nfs4", True), ("cifs", True), ("smb3", True), ("9p", True),
        ("fuse.sshfs", True), ("fuse.gcsfuse", True), ("fuse.s3fs", True),
        ("ext4", False), ("xfs", False), ("btrfs", False), ("tmpfs", False),
        ("overlay", False), ("fuse.lxcfs", False), ("zfs", False),
    ],
)  # fmt: skip
def test_which_filesystems_are_network_ones(fstype: str, network: bool) -> None:
    assert _fs.is_network(fstype) is network


def test_a_file_on_nfs_warns_once_and_still_opens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = _table(tmp_path, ("/", "ext4"), (str(tmp_path), "nfs4"))
    monkeypatch.setattr(_fs, "_MOUNTS", table)
    monkeypatch.setattr(_fs, "_warned", set())
    path = tmp_path / "app.db"
    with pytest.warns(NetworkFilesystemWarning, match="nfs4") as caught:
        saver = SqliteSaver.open(str(path))
    assert caught[0].filename == __file__  # points at the caller's line
    assert "PostgreSQL" in str(caught[0].message)
    try:
        saver.setup()
        assert saver.get_tuple({"configurable": {"thread_id": "t"}}) is None
    finally:
        saver.close()
    with warnings.catch_warnings():  # the same file again: said once per process
        warnings.simplefilter("error", NetworkFilesystemWarning)
        SqliteSaver.open(str(path)).close()


async def test_the_async_saver_warns_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    table = _table(tmp_path, ("/", "ext4"), (str(tmp_path), "cifs"))
    monkeypatch.setattr(_fs, "_MOUNTS", table)
    monkeypatch.setattr(_fs, "_warned", set())
    with pytest.warns(NetworkFilesystemWarning, match="cifs") as caught:
        saver = await AsyncSqliteSaver.open(str(tmp_path / "app.db"))
    assert caught[0].filename == __file__  # the caller's line (the mounts are read on a thread)
    await saver.aclose()


def test_a_local_file_and_memory_say_nothing(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", NetworkFilesystemWarning)
        for path in (str(tmp_path / "local.db"), ":memory:"):
            SqliteSaver.open(path).close()
    if os.path.exists(_fs._MOUNTS):  # Linux: the real table names this directory's filesystem
        fstype = _fs.filesystem_type(str(tmp_path))
        assert fstype is not None and not _fs.is_network(fstype)
