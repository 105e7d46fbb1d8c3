"""The `postgresql://` and `postgres://` entries of `checkpoint_base.connect()`."""

from __future__ import annotations

import urllib.parse
from typing import Any

from checkpoint_base import BackendEntry, ConfigError

from ._saver import AsyncPostgresSaver, PostgresSaver

__all__ = ["BACKEND", "url_schema"]

_POOL_KEYS = ("min_size", "max_size", "timeout", "max_idle", "max_lifetime")


def url_schema(url: str) -> tuple[str, str | None]:
    """A `postgresql://` URL without its `schema=` query parameter, and that schema (None
    when it has none). libpq knows no such parameter; the saver takes it as `schema=`, so
    that a URL alone (as the command line takes) can name the saver's schema."""
    parts = urllib.parse.urlsplit(url)
    pairs = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    schemas = [value for key, value in pairs if key == "schema"]
    if not schemas:
        return url, None
    if len(set(schemas)) > 1 or not schemas[0]:
        raise ConfigError(f"the URL names the schema {schemas!r}: give one, not empty")
    rest = urllib.parse.urlencode(
        [(key, value) for key, value in pairs if key != "schema"], quote_via=urllib.parse.quote
    )
    return urllib.parse.urlunsplit(parts._replace(query=rest)), schemas[0]


def _split(options: dict[str, Any]) -> dict[str, Any]:
    """Lift pool sizes given as plain options (`connect(url, max_size=20)`) into pool_options."""
    pool: dict[str, Any] = dict(options.pop("pool_options", None) or {})
    for key in _POOL_KEYS:
        if key in options:
            pool[key] = options.pop(key)
    options["pool_options"] = pool
    return options


def _with_schema(url: str, options: dict[str, Any]) -> str:
    """The URL for libpq; its `schema=` moved into `options` (a different one given twice is
    an error)."""
    url, schema = url_schema(url)
    if schema is not None:
        if options.get("schema", schema) != schema:
            raise ConfigError(
                f"the URL names schema {schema!r} and the options {options['schema']!r}: "
                "give one of them"
            )
        options["schema"] = schema
    return url


def _connect(url: str, **options: Any) -> PostgresSaver:
    url = _with_schema(url, options)
    return PostgresSaver(url, **_split(options))


async def _aconnect(url: str, **options: Any) -> AsyncPostgresSaver:
    url = _with_schema(url, options)
    return AsyncPostgresSaver(url, **_split(options))


BACKEND = BackendEntry(connect=_connect, aconnect=_aconnect, extra="postgres")
