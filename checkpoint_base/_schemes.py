"""URL schemes as applications already write them: SQLAlchemy's driver-qualified spellings
(`postgresql+asyncpg://`, `sqlite+aiosqlite://`), Valkey's own names (`valkey://`), and the
TLS spellings of the cluster and Sentinel schemes (`rediss+cluster://`).

An application's database URL usually comes from its settings, written once for SQLAlchemy
or for a Valkey client. `canonical_url` gives the scheme a backend of this package
registers, so that the same variable opens a saver; everything after `://` is kept as
written. Each backend's URL parser calls it too, so a saver class given such a URL directly
(`SqliteSaver.open`, `PostgresSaver(url)`, `RedisSaver.from_url`) takes it as well.
"""

from __future__ import annotations

import urllib.parse
from typing import Final

from ._errors import ConfigError
from ._flags import url_flag

__all__ = ["DRIVERS", "RENAMED", "TLS_RENAMED", "canonical_url", "scheme_hint"]

_POSTGRES_DRIVERS = frozenset(
    {"psycopg", "psycopg_async", "psycopg2", "psycopg2cffi", "asyncpg", "pg8000"}
)
DRIVERS: Final[dict[str, frozenset[str]]] = {
    "postgresql": _POSTGRES_DRIVERS,
    "postgres": _POSTGRES_DRIVERS,
    "sqlite": frozenset({"pysqlite", "aiosqlite"}),
}
"""Base scheme -> the SQLAlchemy drivers whose `base+driver://` URLs name a database this
package opens the same way (it connects with its own driver: psycopg, sqlite3, aiosqlite)."""

RENAMED: Final[dict[str, str]] = {
    "valkey": "redis",
    "valkeys": "rediss",
    "valkey+cluster": "redis+cluster",
    "valkey+sentinel": "redis+sentinel",
}
"""Valkey's schemes (valkey-py takes `valkey://` and `valkeys://`) -> the Redis scheme that
opens the same server: the Redis backend speaks to Valkey as it is."""

TLS_RENAMED: Final[dict[str, str]] = {
    "rediss+cluster": "redis+cluster",
    "rediss+sentinel": "redis+sentinel",
    "valkeys+cluster": "redis+cluster",
    "valkeys+sentinel": "redis+sentinel",
}
"""TLS spellings of the cluster and Sentinel schemes, as `rediss://` is of `redis://` -> the
scheme that opens them with `ssl=true` in the query (how those URLs turn TLS on)."""

# Drivers that take a database of the same name this package cannot open as it is.
_FOREIGN = {
    "pysqlcipher": "an encrypted SQLCipher database, which sqlite3 cannot read; to store "
    "values encrypted, give a saver LangGraph's EncryptedSerializer (serde=)",
}


def _split(url: object) -> tuple[str, str] | None:
    if not isinstance(url, str) or "://" not in url:
        return None
    scheme, rest = url.split("://", 1)
    return scheme.lower(), rest


def canonical_url(url: str) -> str:
    """`url` with a scheme of `RENAMED` or `TLS_RENAMED`, or a `base+driver` scheme of
    `DRIVERS`, written as the backend registers it (`postgresql+asyncpg://u@h/db` ->
    `postgresql://u@h/db`, `valkeys://h:6380` -> `rediss://h:6380`, `rediss+cluster://a:1`
    -> `redis+cluster://a:1?ssl=true`); any other URL as given.

    Query options that only another driver knows are left for the backend to refuse by name
    (PostgreSQL takes asyncpg's `ssl=` as `sslmode=`; see `checkpoint_postgres`).

    Raises:
        ConfigError: A TLS scheme whose URL says `ssl=false`.
    """
    parts = _split(url)
    if parts is None:
        return url
    scheme, rest = parts
    if scheme in RENAMED:
        return f"{RENAMED[scheme]}://{rest}"
    if scheme in TLS_RENAMED:
        return f"{TLS_RENAMED[scheme]}://{_with_tls(scheme, rest)}"
    base, plus, driver = scheme.partition("+")
    if plus and driver in DRIVERS.get(base, ()):
        return f"{base}://{rest}"
    return url


def _with_tls(scheme: str, rest: str) -> str:
    """`rest` (a URL after `://`) with `ssl=true` in its query, unless it gives `ssl=` itself.

    Raises:
        ConfigError: It gives `ssl=` (or the older `tls=`) as anything but true.
    """
    query = rest.partition("?")[2]
    pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
    for name, value in pairs:
        if name in ("ssl", "tls") and url_flag(value) is not True:
            raise ConfigError(f"{scheme}:// speaks TLS, and the URL says {name}={value}: give one")
    if not any(name == "ssl" for name, _ in pairs):
        if "?" not in rest:
            return f"{rest}?ssl=true"
        return f"{rest}{'&' if query else ''}ssl=true"
    return rest


def scheme_hint(url: str) -> str | None:
    """What to write instead of `url`'s scheme when it is a driver-qualified spelling this
    package does not take (`postgresql+mysterydriver://`), else None."""
    parts = _split(url)
    if parts is None:
        return None
    base, plus, driver = parts[0].partition("+")
    if not plus or base not in DRIVERS:
        return None
    if driver in _FOREIGN:
        return f"{base}+{driver}:// names {_FOREIGN[driver]}"
    known = ", ".join(f"{base}+{d}" for d in sorted(DRIVERS[base]))
    return (
        f"write {base}://...: this package connects with its own driver, and takes the "
        f"driver-qualified spellings {known}"
    )
