"""A PostgreSQL URL written for another driver, as libpq takes it.

Applications often keep one database URL for SQLAlchemy, whose asyncpg driver spells the TLS
mode `ssl=` and takes statement cache options that libpq does not know (libpq refuses the
whole URL: 'invalid URI query parameter'). `libpq_url` gives the scheme libpq reads, takes
`ssl=` as libpq's `sslmode=`, and refuses asyncpg's own options by name with what to do.
"""

from __future__ import annotations

import urllib.parse

from checkpoint_base import ConfigError
from checkpoint_base._schemes import canonical_url

__all__ = ["libpq_url"]

SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
"""libpq's `sslmode` values, which asyncpg's `ssl=` takes as well."""

_NOT_PREPARED = (
    "drop it: this saver decides itself, preparing statements on a direct server and never "
    "behind a pooler such as PgBouncer (prepare_threshold='auto'; None never prepares)"
)
_ASYNCPG_OPTIONS = {
    "prepared_statement_cache_size": _NOT_PREPARED,
    "statement_cache_size": _NOT_PREPARED,
    "max_cached_statement_lifetime": _NOT_PREPARED,
    "max_cacheable_statement_size": _NOT_PREPARED,
    "command_timeout": (
        "drop it, or give the server's statement timeout in libpq's options= "
        "(options=-c%20statement_timeout%3D30000 for 30 seconds)"
    ),
}
"""Query options of asyncpg (and SQLAlchemy's asyncpg driver) -> what to do instead."""


def libpq_url(conninfo: str) -> str:
    """`conninfo` as libpq takes it: a driver-qualified URL (`postgresql+asyncpg://`) with
    libpq's scheme, and asyncpg's `ssl=MODE` written `sslmode=MODE`. A `key=value` conninfo,
    and a URL with neither, are returned as given.

    Raises:
        ConfigError: `ssl=` gives no mode of libpq's, or a different one than `sslmode=`; or
            the URL carries an option of asyncpg's that libpq does not take (named, with
            what to do instead).
    """
    if "://" not in conninfo:
        return conninfo
    url = canonical_url(conninfo)
    base, sep, query = url.partition("?")
    if not sep:
        return url
    pieces = query.split("&")
    keys = [urllib.parse.unquote_plus(piece.partition("=")[0]) for piece in pieces]
    for key in keys:
        if key in _ASYNCPG_OPTIONS:
            raise ConfigError(
                f"{key}= in the PostgreSQL URL is an option of asyncpg, which libpq (the "
                f"driver of this package, through psycopg) does not take: {_ASYNCPG_OPTIONS[key]}"
            )
    if "ssl" not in keys:
        return url
    modes = {
        key: urllib.parse.unquote_plus(piece.partition("=")[2]).lower()
        for key, piece in zip(keys, pieces)  # noqa: B905 (one key per piece)
        if key in ("ssl", "sslmode")
    }
    mode = modes["ssl"]
    if keys.count("ssl") > 1 or mode not in SSL_MODES:
        raise ConfigError(
            f"ssl={mode} in the PostgreSQL URL: libpq takes the TLS mode as sslmode=, one of "
            f"{', '.join(SSL_MODES)} (asyncpg's ssl= is taken as sslmode= when it names one)"
        )
    if modes.get("sslmode", mode) != mode:
        raise ConfigError(
            f"the PostgreSQL URL gives ssl={mode} and sslmode={modes['sslmode']}: give one"
        )
    kept = [
        f"sslmode={mode}" if key == "ssl" else piece
        for key, piece in zip(keys, pieces)  # noqa: B905 (one key per piece)
        if not (key == "ssl" and "sslmode" in modes)
    ]
    return f"{base}?{'&'.join(kept)}"
