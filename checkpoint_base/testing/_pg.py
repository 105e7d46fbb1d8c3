"""PostgreSQL and PgBouncer started from local binaries, for tests and benchmarks."""

from __future__ import annotations

import glob
import pwd
import shutil
import signal
import subprocess
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from checkpoint_base.testing._procs import (
    Proc,
    ServerExited,
    ServerUnavailable,
    child_env,
    log_tail,
    make_run_dir,
    port_open,
    remove_dir,
    service_user,
    spawn,
    start_listening,
    wait_until,
)
from checkpoint_base.testing._tls import TlsFiles, make_certificates

__all__ = [
    "CERT_USER",
    "SCRAM_USER",
    "LocalPgBouncer",
    "LocalPostgres",
    "LocalPostgresStandby",
    "find_pg_bindir",
]

# Tests need no crash safety; these make commits ~10x cheaper. Benchmarks pass durable=True.
_TEST_SETTINGS = ("fsync=off", "synchronous_commit=off", "full_page_writes=off")
_SUPERUSER = "postgres"
_DBNAME = "postgres"
CERT_USER = "checkpointers_cert"
"""The role a TLS server (`LocalPostgres(tls=True)`) asks a client certificate of; it
exists once a superuser created it (`CREATE ROLE ... LOGIN`)."""
SCRAM_USER = "checkpointers_scram"
"""The role a TLS server authenticates by password (`scram-sha-256`; every other role is
trusted); it exists once a superuser created it with a password."""
# Over TCP, TLS only; CERT_USER with a client certificate the test CA signed, SCRAM_USER
# with its password.
_TLS_HBA = f"""\
local all all trust
hostssl all {CERT_USER} 127.0.0.1/32 trust clientcert=verify-ca
hostssl all {SCRAM_USER} 127.0.0.1/32 scram-sha-256
hostssl all all 127.0.0.1/32 trust
hostnossl all all 127.0.0.1/32 reject
"""


def find_pg_bindir() -> Path | None:
    """Directory holding initdb/postgres: PATH, then `pg_config --bindir`, then Debian's layout."""
    candidates: list[Path] = []
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)  # may be a symlink
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=False
            )
            candidates.append(Path(out.stdout.strip()))
        except (OSError, subprocess.TimeoutExpired):
            pass

    def version(path: str) -> float:
        try:
            return float(Path(path).parent.name)
        except ValueError:
            return 0.0

    candidates += [
        Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version)[::-1]
    ]
    for cand in candidates:
        if all((cand / tool).is_file() for tool in ("initdb", "postgres", "pg_isready")):
            return cand
    return None


def _run_as(user: pwd.struct_passwd | None, name: str, argv: list[str], timeout: float) -> None:
    """Run a PostgreSQL tool to its end, as `user` (the server's account when we are root).

    Raises:
        ServerUnavailable: it could not run, or it failed (its error output is quoted).
    """
    try:
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=child_env(),
            user=None if user is None else user.pw_uid,
            group=None if user is None else user.pw_gid,
            extra_groups=None if user is None else [],
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ServerUnavailable(f"{name} could not run: {exc}") from exc
    if done.returncode != 0:
        raise ServerUnavailable(f"{name} failed ({done.returncode}):\n{done.stderr[-1500:]}")


class LocalPostgres:
    """A throwaway PostgreSQL cluster: initdb in a /tmp dir, `postgres` as our foreground child.

    With `tls`, it takes TLS connections only over TCP (`hostssl`; `hostnossl` is rejected),
    with certificates of a throwaway CA (`_tls.py`); the role `CERT_USER` must also present
    a client certificate that CA signed (`clientcert=verify-ca`), and `SCRAM_USER` its
    password."""

    def __init__(self, *, durable: bool, tls: bool = False) -> None:
        self.durable = durable
        self.tls = tls
        self.certificates: TlsFiles | None = None
        self.port = 0
        self.proc: Proc | None = None
        self.run_dir: Path | None = None
        self._bindir: Path | None = None

    @property
    def url(self) -> str:
        """Connection URL of the superuser (trust authentication on loopback); with `tls`,
        `?sslmode=verify-full&sslrootcert=` the test CA."""
        url = f"postgresql://{_SUPERUSER}@127.0.0.1:{self.port}/{_DBNAME}"
        if self.certificates is None:
            return url
        ca = quote(str(self.certificates.ca), safe="/")
        return f"{url}?sslmode=verify-full&sslrootcert={ca}"

    def start(self) -> None:
        """Create the cluster and start the server.

        Raises:
            ServerUnavailable: binaries missing, initdb failed, or the server did not come up.
        """
        bindir = find_pg_bindir()
        if bindir is None:
            raise ServerUnavailable(
                "initdb not found on PATH, via `pg_config --bindir` or in /usr/lib/postgresql/*/bin"
            )
        self._bindir = bindir
        user = service_user("postgres")
        self.run_dir = make_run_dir("pg", user)
        data = self.run_dir / "data"
        initdb = [
            str(bindir / "initdb"), "-D", str(data), "-U", _SUPERUSER, "-A", "trust",
            "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions",
        ]  # fmt: skip
        _run_as(user, "initdb", initdb, timeout=180)
        if self.tls:
            tls_dir = self.run_dir / "tls"
            tls_dir.mkdir()
            self.certificates = make_certificates(tls_dir, user)
            (data / "pg_hba.conf").write_text(_TLS_HBA)
        self.proc, (self.port,) = start_listening(
            "postgres",
            lambda ports: self._argv(ports[0]),
            log=self.run_dir / "postgres.log",
            user=user,
            ready=lambda ports: self._ready(ports[0]),
            stop_signal=signal.SIGINT,  # fast shutdown: abort transactions, checkpoint, exit
        )

    def restart(self) -> None:
        """Fast shutdown, then start again on the same port and data directory.

        Raises:
            ServerUnavailable: the server did not come back.
        """
        assert self.proc is not None
        assert self.run_dir is not None
        self.proc.stop()
        log = self.run_dir / "postgres.log"
        offset = log.stat().st_size
        self.proc = spawn(
            "postgres",
            self._argv(self.port),
            log=log,
            user=service_user("postgres"),
            stop_signal=signal.SIGINT,
        )
        try:
            wait_until(lambda: self._ready(self.port), self.proc, 30, "postgres after restart")
        except (ServerExited, ServerUnavailable):
            self.proc.stop(timeout=2)
            raise ServerUnavailable(
                f"postgres did not come back on port {self.port}; log {log}:\n"
                f"{log_tail(log, offset)}"
            ) from None

    def stop(self) -> None:
        """Stop the server and delete its data."""
        if self.proc is not None:
            self.proc.stop()
        if self.run_dir is not None:
            remove_dir(self.run_dir)

    def _argv(self, port: int) -> list[str]:
        assert self._bindir is not None
        assert self.run_dir is not None
        argv = [
            str(self._bindir / "postgres"), "-D", str(self.run_dir / "data"), "-p", str(port),
            "-c", "listen_addresses=127.0.0.1",
            "-c", f"unix_socket_directories={self.run_dir}",
            "-c", "max_connections=200",
        ]  # fmt: skip
        files = self.certificates
        if files is not None:
            argv += [
                "-c", "ssl=on",
                "-c", f"ssl_cert_file={files.server_cert}",
                "-c", f"ssl_key_file={files.server_key}",
                "-c", f"ssl_ca_file={files.ca}",
            ]  # fmt: skip
        if not self.durable:
            for setting in _TEST_SETTINGS:
                argv += ["-c", setting]
        return argv

    def _ready(self, port: int) -> bool:
        assert self._bindir is not None
        probe = [
            str(self._bindir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(port),
            "-U", _SUPERUSER, "-d", _DBNAME, "-t", "1",
        ]  # fmt: skip
        return subprocess.run(probe, env=child_env(), check=False, timeout=10).returncode == 0


class LocalPostgresStandby(LocalPostgres):
    """A hot standby of a `LocalPostgres` on loopback: a base backup of the primary
    (`pg_basebackup -R`), streaming its WAL until it is promoted (`SELECT pg_promote()`)."""

    def __init__(self, primary: LocalPostgres) -> None:
        super().__init__(durable=primary.durable)
        self.primary = primary

    def start(self) -> None:
        """Copy the primary and start streaming from it.

        Raises:
            ServerUnavailable: the primary is not running, pg_basebackup failed, or the
                standby did not come up.
        """
        bindir = find_pg_bindir()
        if bindir is None or not self.primary.port:
            raise ServerUnavailable("a standby needs PostgreSQL's binaries and a running primary")
        self._bindir = bindir
        user = service_user("postgres")
        self.run_dir = make_run_dir("pg-standby", user)
        backup = [
            str(bindir / "pg_basebackup"), "-h", "127.0.0.1", "-p", str(self.primary.port),
            "-U", _SUPERUSER, "-D", str(self.run_dir / "data"), "-R", "-X", "stream",
            "--no-sync", "-c", "fast",
        ]  # fmt: skip
        _run_as(user, "pg_basebackup", backup, timeout=120)
        self.proc, (self.port,) = start_listening(
            "postgres standby",
            lambda ports: self._argv(ports[0]),
            log=self.run_dir / "postgres.log",
            user=user,
            ready=lambda ports: self._ready(ports[0]),
            stop_signal=signal.SIGINT,
        )


def _connstring_value(value: str) -> str:
    # Values come from our own servers or the developer's env URL; refuse what would need escaping.
    if not value or any(ch.isspace() or ch in "'\\\"" for ch in value):
        raise ServerUnavailable(
            "the PostgreSQL URL has a user/password pgbouncer's config cannot carry as is; "
            "set CHECKPOINTERS_TEST_PGBOUNCER_URL instead"
        )
    return value


class LocalPgBouncer:
    """PgBouncer (transaction pooling) in front of the PostgreSQL at `upstream_url`."""

    def __init__(self, upstream_url: str) -> None:
        self.upstream_url = upstream_url
        self.port = 0
        self.proc: Proc | None = None
        self.run_dir: Path | None = None
        parts = urlsplit(upstream_url)
        self._user = unquote(parts.username or _SUPERUSER)
        self._password = unquote(parts.password or "")
        self._dbname = unquote(parts.path.lstrip("/") or self._user)
        self._host = parts.hostname or "127.0.0.1"
        self._upstream_port = parts.port or 5432

    @property
    def url(self) -> str:
        """URL of the pooler; same user and database as upstream, no password needed."""
        user, dbname = quote(self._user, safe=""), quote(self._dbname, safe="")
        return f"postgresql://{user}@127.0.0.1:{self.port}/{dbname}"

    def start(self) -> None:
        """Write the config and start pgbouncer as the `postgres` user (it refuses root).

        Raises:
            ServerUnavailable: binary missing or pgbouncer did not come up.
        """
        binary = shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin")
        if binary is None:
            raise ServerUnavailable("pgbouncer not found on PATH or in /usr/sbin")
        user = service_user("postgres")
        self.run_dir = make_run_dir("pgbouncer", user)
        target = f"host={_connstring_value(self._host)} port={self._upstream_port}"
        target += f" user={_connstring_value(self._user)}"
        if self._password:
            target += f" password={_connstring_value(self._password)}"
        (self.run_dir / "userlist.txt").write_text(f'"{self._user}" ""\n')
        run_dir = self.run_dir

        def build(ports: list[int]) -> list[str]:
            ini = run_dir / "pgbouncer.ini"
            ini.write_text(_PGBOUNCER_INI.format(target=target, port=ports[0], run_dir=run_dir))
            return [binary, str(ini)]

        self.proc, (self.port,) = start_listening(
            "pgbouncer",
            build,
            log=run_dir / "pgbouncer.log",
            user=user,
            ready=lambda ports: port_open(ports[0]),
            stop_signal=signal.SIGTERM,  # 1.18: immediate shutdown; it holds no state
            timeout=15,
        )

    def stop(self) -> None:
        """Stop pgbouncer and delete its config."""
        if self.proc is not None:
            self.proc.stop(timeout=3)
        if self.run_dir is not None:
            remove_dir(self.run_dir)


# Trust on loopback: the client's user must still be listed in auth_file. Unix sockets are off
# so concurrent test runs cannot collide on /tmp/.s.PGSQL.<port>.
# All server connections belong to one user: max_user_connections keeps PgBouncer under the
# server's max_connections (200) whatever the number of databases behind it, and
# server_login_retry=1 reconnects within a second after a server restart (default 15 s).
_PGBOUNCER_INI = """\
[databases]
* = {target}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {run_dir}/userlist.txt
pool_mode = transaction
max_client_conn = 1000
default_pool_size = 40
max_user_connections = 150
server_login_retry = 1
ignore_startup_parameters = extra_float_digits
log_connections = 0
log_disconnections = 0
"""
