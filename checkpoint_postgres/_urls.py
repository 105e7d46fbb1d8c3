"""A PostgreSQL URL written for another driver, as libpq takes it.

Applications often keep one database URL for SQLAlchemy, whose asyncpg driver spells the TLS
mode `ssl=` and takes statement cache options that libpq does not know (libpq refuses the
whole URL: 'invalid URI query parameter'). `parse_url` gives the scheme libpq reads, takes
`ssl=` as libpq's `sslmode=`, takes out Prisma's `pgbouncer=` and asyncpg's statement cache
sizes of 0 (which say whether the saver may prepare statements), and refuses asyncpg's other
options by name with what to do.
"""

from __future__ import annotations

import urllib.parse

from checkpoint_base import ConfigError
from checkpoint_base._flags import flag_words, url_flag
from checkpoint_base._schemes import canonical_url

__all__ = ["NO_CACHE_OPTIONS", "POOLER_FLAG", "libpq_url", "parse_url"]

SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
"""libpq's `sslmode` values, which asyncpg's `ssl=` takes as well."""

POOLER_FLAG = "pgbouncer"
"""Prisma's query option for a URL that reaches the server through PgBouncer (the pooled URLs
of Supabase and Neon carry `pgbouncer=true`): the saver then never prepares statements."""

NO_CACHE_OPTIONS = ("prepared_statement_cache_size", "statement_cache_size")
"""asyncpg's statement caches (SQLAlchemy's asyncpg driver and asyncpg itself): set to 0, as
their documentation has it for PgBouncer, they say what `pgbouncer=true` says."""

_NOT_PREPARED = (
    "drop it: this saver decides itself, preparing statements on a direct server and never "
    "behind a pooler such as PgBouncer (prepare_threshold='auto'; None, pgbouncer=true or a "
    "statement cache size of 0 in the URL never prepares)"
)
_ASYNCPG_OPTIONS = {
    "max_cached_statement_lifetime": _NOT_PREPARED,
    "max_cacheable_statement_size": _NOT_PREPARED,
    "command_timeout": (
        "drop it, or give the server's statement timeout in libpq's options= "
        "(options=-c%20statement_timeout%3D30000 for 30 seconds)"
    ),
}
"""Query options of asyncpg (and SQLAlchemy's asyncpg driver) -> what to do instead."""


def parse_url(conninfo: str) -> tuple[str, bool]:
    """`conninfo` as libpq takes it, and whether it says the server is reached through a
    pooler, where statements are never prepared: `pgbouncer=true` (Prisma's option) or an
    asyncpg statement cache size of 0 (`prepared_statement_cache_size=0`, SQLAlchemy's way
    through PgBouncer).

    As libpq takes it: a driver-qualified URL (`postgresql+asyncpg://`) with libpq's scheme,
    asyncpg's `ssl=MODE` written `sslmode=MODE`, and those pooler options left out. A
    `key=value` conninfo, and a URL with none of these, are returned as given.

    Raises:
        ConfigError: `ssl=` gives no mode of libpq's, or a different one than `sslmode=`;
            `pgbouncer=` is neither true nor false, or a statement cache size not 0; or the
            URL carries another option of asyncpg's that libpq does not take (named, with
            what to do instead).
    """
    if "://" not in conninfo:
        return conninfo, False
    url = canonical_url(conninfo)
    base, sep, query = url.partition("?")
    if not sep:
        return url, False
    pieces = query.split("&")
    keys = [urllib.parse.unquote_plus(piece.partition("=")[0]) for piece in pieces]
    for key in keys:
        if key in _ASYNCPG_OPTIONS:
            raise ConfigError(
                f"{key}= in the PostgreSQL URL is an option of asyncpg, which libpq (the "
                f"driver of this package, through psycopg) does not take: {_ASYNCPG_OPTIONS[key]}"
            )
    values = [urllib.parse.unquote_plus(piece.partition("=")[2]) for piece in pieces]
    pairs = list(zip(keys, values))  # noqa: B905 (one key and value per piece)
    # A list, not a generator: every option is checked, not only those up to a true one.
    pooled = any([_never_prepare(key, value) for key, value in pairs if key in _SAVERS])
    if "ssl" not in keys and not _SAVERS.intersection(keys):
        return url, pooled
    modes = {key: value.lower() for key, value in pairs if key in ("ssl", "sslmode")}
    if "ssl" in keys:
        mode = modes["ssl"]
        if keys.count("ssl") > 1 or mode not in SSL_MODES:
            raise ConfigError(
                f"ssl={mode} in the PostgreSQL URL: libpq takes the TLS mode as sslmode=, one "
                f"of {', '.join(SSL_MODES)} (asyncpg's ssl= is taken as sslmode= when it "
                "names one)"
            )
        if modes.get("sslmode", mode) != mode:
            raise ConfigError(
                f"the PostgreSQL URL gives ssl={mode} and sslmode={modes['sslmode']}: give one"
            )
    kept = [
        f"sslmode={modes['ssl']}" if key == "ssl" else piece
        for key, piece in zip(keys, pieces)  # noqa: B905 (one key per piece)
        if key not in _SAVERS and not (key == "ssl" and "sslmode" in modes)
    ]
    if not kept:
        return base, pooled
    return f"{base}?{'&'.join(kept)}", pooled


def libpq_url(conninfo: str) -> str:
    """`conninfo` as libpq takes it (`parse_url`), for a connection that is not the saver's.

    Raises:
        ConfigError: As `parse_url`.
    """
    return parse_url(conninfo)[0]


_SAVERS = frozenset({POOLER_FLAG, *NO_CACHE_OPTIONS})
"""Query options the saver reads (`parse_url`) and libpq is not given."""


def _never_prepare(key: str, value: str) -> bool:
    """Whether `key=value` (one of `_SAVERS`) says never to prepare statements.

    Raises:
        ConfigError: `pgbouncer=` is neither true nor false; a statement cache size is not 0.
    """
    if key == POOLER_FLAG:
        flag = url_flag(value, accept=_PGBOUNCER)
        if flag is None:
            raise ConfigError(f"{POOLER_FLAG}={value} in the PostgreSQL URL: give true or false")
        return flag
    if value.strip() != "0":
        raise ConfigError(
            f"{key}={value} in the PostgreSQL URL asks asyncpg to keep prepared statements, "
            f"which this saver does by itself on a direct server: drop it (0, as for "
            "PgBouncer, makes the saver never prepare)"
        )
    return True


_PGBOUNCER = flag_words("true 1 yes", "false 0 no")
"""What `pgbouncer=` takes. Prisma itself takes only true and false (Rust's `bool` parse, in
quaint's URL reader): no on/off here either."""
