"""Certificates for test servers that speak TLS: a throwaway CA, a server and a client.

Made with the `openssl` command (Debian's openssl package; `scripts/install-system-deps.sh`
installs it when missing), valid for two days, for 127.0.0.1 only.
"""

from __future__ import annotations

import os
import pwd
import shutil
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path

from checkpoint_base.testing._procs import ServerUnavailable, child_env

__all__ = ["TlsFiles", "client_context", "make_certificates"]


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """PEM files: the CA's certificate, the server's and a client's certificate and key."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _openssl(directory: Path, *args: str) -> None:
    binary = shutil.which("openssl") or shutil.which("openssl", path="/usr/bin")
    if binary is None:
        raise ServerUnavailable(
            "openssl not found on PATH: install Debian's openssl package (`bash "
            "scripts/install-system-deps.sh` installs what is missing) to make test certificates"
        )
    done = subprocess.run(
        [binary, *args], cwd=directory, capture_output=True, text=True, env=child_env(),
        timeout=60, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise ServerUnavailable(f"openssl {args[0]} failed: {done.stderr[-800:]}")


def _signed(directory: Path, name: str, extension: str) -> None:
    """A key and a certificate for `name`, signed by the CA in `directory`."""
    _openssl(directory, "req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key",
             "-out", f"{name}.csr", "-subj", f"/CN=checkpointers test {name}")  # fmt: skip
    # Key identifiers: Python 3.13's default context verifies strictly (VERIFY_X509_STRICT),
    # which refuses a certificate without an authority key identifier.
    ids = "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer"
    (directory / f"{name}.ext").write_text(f"{extension}\n{ids}\n")
    _openssl(directory, "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey",
             "ca.key", "-CAcreateserial", "-out", f"{name}.crt", "-days", "2",
             "-extfile", f"{name}.ext")  # fmt: skip


def make_certificates(directory: Path, owner: pwd.struct_passwd | None = None) -> TlsFiles:
    """A CA, and a server (for 127.0.0.1) and a client certificate it signed, in `directory`;
    with `owner`, the files are that account's (a server that runs as it reads its key).

    Raises:
        ServerUnavailable: openssl is missing or failed.
    """
    # A CA's key usage: Python 3.13's strict verification refuses a CA without one.
    _openssl(directory, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key",
             "-out", "ca.crt", "-days", "2", "-subj", "/CN=checkpointers test CA",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign")  # fmt: skip
    # the servers present theirs as clients too (a replica to its master, a Sentinel)
    usage = "extendedKeyUsage=serverAuth,clientAuth"
    _signed(directory, "server", f"subjectAltName=IP:127.0.0.1\n{usage}")
    _signed(directory, "client", "extendedKeyUsage=clientAuth")
    for key in ("ca.key", "server.key", "client.key"):
        (directory / key).chmod(0o600)
    if owner is not None:
        for made in directory.iterdir():
            os.chown(made, owner.pw_uid, owner.pw_gid)
    return TlsFiles(
        ca=directory / "ca.crt",
        server_cert=directory / "server.crt",
        server_key=directory / "server.key",
        client_cert=directory / "client.crt",
        client_key=directory / "client.key",
    )


def client_context(files: TlsFiles) -> ssl.SSLContext:
    """A client context that trusts the test CA and presents the client certificate."""
    context = ssl.create_default_context(cafile=str(files.ca))
    context.load_cert_chain(str(files.client_cert), str(files.client_key))
    return context
