"""Process plumbing for test servers: ports, run directories, spawning, waiting, stopping."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import os
import pwd
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "Proc",
    "ServerExited",
    "ServerUnavailable",
    "child_env",
    "log_tail",
    "make_run_dir",
    "pick_port",
    "port_open",
    "remove_dir",
    "service_user",
    "spawn",
    "start_listening",
    "stop_procs",
    "wait_until",
]

# Below the kernel's ephemeral range (32768-60999 here): a port in it can be taken by an
# outgoing connection between our probe and the server's bind.
_PORT_RANGE = (20000, 32767)
_handed_out: set[int] = set()
_PR_SET_PDEATHSIG = 1
_libc_prctl: Callable[..., int] | None = None
with contextlib.suppress(OSError, AttributeError):
    _libc_prctl = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True).prctl


class ServerUnavailable(RuntimeError):
    """No server of the requested kind could be had; the message says what was tried and the fix."""


@dataclass(frozen=True, slots=True)
class Proc:
    """A server process this Python process started and owns."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    stop_signal: int

    @property
    def pid(self) -> int:
        """The process id."""
        return self.popen.pid

    def alive(self) -> bool:
        """Whether the process has not exited yet."""
        return self.popen.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        """Stop gracefully with the server's own signal, then SIGKILL if it lingers."""
        stop_procs([self], timeout)


def stop_procs(procs: Sequence[Proc], timeout: float = 10.0) -> None:
    """Stop servers together: signal all, then wait for each (SIGKILL after `timeout`)."""
    for proc in procs:
        if proc.popen.poll() is None:
            proc.popen.send_signal(proc.stop_signal)
    deadline = time.monotonic() + timeout
    for proc in procs:
        try:
            proc.popen.wait(max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            proc.popen.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(5)


class ServerExited(Exception):
    """The server exited while we waited for it."""


def service_user(name: str | None) -> pwd.struct_passwd | None:
    """Account to run a server as: `name` when we are root (the server refuses root), else None.

    Raises:
        ServerUnavailable: running as root and the account does not exist.
    """
    if name is None or os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(name)
    except KeyError:
        raise ServerUnavailable(
            f"running as root and there is no {name!r} user to run the server as "
            f"(it refuses root); Debian's postgresql package creates it"
        ) from None


def make_run_dir(prefix: str, owner: pwd.struct_passwd | None) -> Path:
    """A fresh directory under /tmp, owned by `owner` (pytest's tmp dirs are closed to others)."""
    path = Path(tempfile.mkdtemp(prefix=f"checkpointers-{prefix}-", dir="/tmp"))
    if owner is not None:
        os.chown(path, owner.pw_uid, owner.pw_gid)
    return path


def pick_port() -> int:
    """A loopback TCP port that is free now; the caller retries if the server loses the race."""
    for _ in range(200):
        port = random.randint(*_PORT_RANGE)
        if port in _handed_out:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise ServerUnavailable(f"no free port found in {_PORT_RANGE[0]}-{_PORT_RANGE[1]}")


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def child_env() -> dict[str, str]:
    """Environment for server processes."""
    # English messages ("Address already in use") and no PG*/REDIS* settings leaking in.
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "LANG": "C"}


def _preexec(death_signal: int) -> Callable[[], None] | None:
    # Runs after the uid switch (a uid change would clear it). The parent-death signal fires
    # when the forking *thread* ends, so it is only safe from the main thread, which lives
    # until the process exits; it covers a test run killed before atexit could stop servers.
    prctl = _libc_prctl
    if prctl is None or threading.current_thread() is not threading.main_thread():
        return None

    def set_death_signal() -> None:
        prctl(_PR_SET_PDEATHSIG, death_signal, 0, 0, 0)

    return set_death_signal


def spawn(
    name: str,
    argv: Sequence[str],
    *,
    log: Path,
    user: pwd.struct_passwd | None,
    stop_signal: int = signal.SIGTERM,
) -> Proc:
    """Start `argv` in the foreground as our child, output appended to `log`."""
    with open(log, "ab") as out:
        popen = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=child_env(),
            close_fds=True,
            preexec_fn=_preexec(stop_signal),
            user=None if user is None else user.pw_uid,
            group=None if user is None else user.pw_gid,
            extra_groups=None if user is None else [],
        )
    return Proc(name, popen, log, stop_signal)


def log_tail(log: Path, start: int = 0, limit: int = 1500) -> str:
    """The end of a log file from byte `start`, for error messages."""
    try:
        with open(log, "rb") as fh:
            fh.seek(start)
            data = fh.read()
    except OSError:
        return ""
    return data[-limit:].decode("utf-8", "replace").strip()


def wait_until(ready: Callable[[], bool], proc: Proc | None, timeout: float, what: str) -> None:
    """Poll `ready` until true; raise ServerExited if `proc` dies, ServerUnavailable on timeout."""
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        if proc is not None and not proc.alive():
            raise ServerExited(proc.popen.returncode)
        if ready():
            return
        if time.monotonic() > deadline:
            raise ServerUnavailable(f"{what} not ready after {timeout:.0f} s")
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def start_listening(
    name: str,
    build: Callable[[list[int]], list[str]],
    *,
    log: Path,
    user: pwd.struct_passwd | None,
    ready: Callable[[list[int]], bool],
    stop_signal: int = signal.SIGTERM,
    nports: int = 1,
    timeout: float = 30.0,
) -> tuple[Proc, list[int]]:
    """Start a server on fresh ports, retrying with new ones if a port was taken meanwhile.

    Raises:
        ServerUnavailable: the server exited for another reason or never became ready.
    """
    for _ in range(5):
        ports = [pick_port() for _ in range(nports)]
        offset = log.stat().st_size if log.exists() else 0
        try:
            proc = spawn(name, build(ports), log=log, user=user, stop_signal=stop_signal)
        except OSError as exc:
            raise ServerUnavailable(f"cannot run {name}: {exc}") from exc
        try:
            wait_until(functools.partial(ready, ports), proc, timeout, name)
        except ServerExited:
            tail = log_tail(log, offset)
            if "address already in use" in tail.lower():
                continue
            raise ServerUnavailable(
                f"{name} exited with status {proc.popen.returncode} while starting; log {log}:\n"
                f"{tail}"
            ) from None
        except ServerUnavailable as exc:
            proc.stop(timeout=2)
            raise ServerUnavailable(f"{exc}; log {log}:\n{log_tail(log, offset)}") from None
        return proc, ports
    raise ServerUnavailable(f"{name}: every port tried was taken (5 attempts)")


def remove_dir(path: Path) -> None:
    """Delete a run directory we created."""
    shutil.rmtree(path, ignore_errors=True)
