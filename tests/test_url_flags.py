"""True and false in a URL's query: `url_flag`, and the words each option that reads it takes
(each keeps its own: `pgbouncer=` no on/off, `ssl=` of a TLS scheme only true ones); a word
an option does not take is refused, never read as false (Redis's `ssl=maybe` turned TLS off)."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import quote

import pytest

from checkpoint_base import ConfigError
from checkpoint_base._flags import ON_OFF, url_flag
from checkpoint_base._schemes import canonical_url
from checkpoint_postgres._urls import libpq_url, parse_url
from checkpoint_redis._urls import _cluster_parts, _sentinel_parts, saver_options
from checkpoint_sqlite._conn import url_options

TRUE = ("1", "true", "TRUE", "yes", "Yes", "on", "ON")
FALSE = ("0", "false", "False", "no", "NO", "off", "Off")
OTHER = ("", "2", "y", "t", "enable", " true", "none")
WORDS = TRUE + FALSE + OTHER

Read = Callable[[str], object]  # None: refused


def _refused(read: Read) -> Read:
    def refusing(value: str) -> object:
        try:
            return read(value)
        except ConfigError:
            return None

    return refusing


def _sqlite_read_only(value: str) -> object:
    return url_options(f"sqlite:///a.db?read_only={quote(value)}")["read_only"]


def _redis_check_hostname(value: str) -> object:
    options = _cluster_parts(f"redis+cluster://h:1?ssl_check_hostname={quote(value)}")[1]
    return options["ssl_check_hostname"]


def _redis_ssl(value: str) -> object:
    return _cluster_parts(f"redis+cluster://h:1?ssl={quote(value)}")[1]["ssl"]


def _redis_tls(value: str) -> object:
    return _cluster_parts(f"redis+cluster://h:1?tls={quote(value)}")[1]["ssl"]


def _redis_sentinel_ssl(value: str) -> object:
    return _sentinel_parts(f"redis+sentinel://h:1/mymaster?ssl={quote(value)}")[2]["ssl"]


def _redis_refresh_on_read(value: str) -> object:
    return saver_options(f"redis://h:1/0?refresh_on_read={quote(value)}")[1]["refresh_on_read"]


def _tls_scheme_ssl(value: str) -> bool:
    url = f"rediss+cluster://h:1?ssl={quote(value)}"
    return canonical_url(url) == f"redis+cluster://h:1?ssl={quote(value)}"


def _pgbouncer(value: str) -> bool:
    url, pooled = parse_url(f"postgresql://db/app?pgbouncer={quote(value)}")
    assert url == "postgresql://db/app"
    return pooled


def _on_off(word: str) -> bool | None:
    return True if word in TRUE else False if word in FALSE else None


def _true_yes_one(word: str) -> bool | None:
    known = word.lower() not in ("on", "off")
    return _on_off(word) if known else None


def _only_true(word: str) -> bool | None:
    return True if word in TRUE else None


CALLERS: dict[str, tuple[Read, Callable[[str], bool | None]]] = {
    "url_flag": (url_flag, _on_off),
    "sqlite-read_only": (_refused(_sqlite_read_only), _on_off),
    "redis-ssl_check_hostname": (_refused(_redis_check_hostname), _on_off),
    "redis-ssl": (_refused(_redis_ssl), _on_off),
    "redis-tls": (_refused(_redis_tls), _on_off),
    "redis-sentinel-ssl": (_refused(_redis_sentinel_ssl), _on_off),
    "redis-refresh_on_read": (_refused(_redis_refresh_on_read), _on_off),
    "tls_scheme-ssl": (_refused(_tls_scheme_ssl), _only_true),
    "postgres-pgbouncer": (_refused(_pgbouncer), _true_yes_one),
}


@pytest.mark.parametrize("word", WORDS, ids=repr)
@pytest.mark.parametrize("caller", CALLERS)
def test_each_option_takes_its_own_words(caller: str, word: str) -> None:
    read, expected = CALLERS[caller]
    assert read(word) is expected(word)


def test_a_table_is_its_words_in_lower_case() -> None:
    assert dict(ON_OFF) == {
        **dict.fromkeys(("1", "true", "yes", "on"), True),
        **dict.fromkeys(("0", "false", "no", "off"), False),
    }
    assert url_flag("YES", accept={"yes": True}) is True
    assert url_flag("on", accept={"yes": True}) is None


def test_refusals_keep_their_messages() -> None:
    with pytest.raises(ConfigError, match=r"read_only in SQLite URL .* must be true or false"):
        url_options("sqlite:///a.db?read_only=maybe")
    with pytest.raises(ConfigError, match="pgbouncer=on in the PostgreSQL URL: give true or false"):
        libpq_url("postgresql://db/app?pgbouncer=on")
    with pytest.raises(ConfigError, match="bad value for 'ssl_check_hostname'"):
        _cluster_parts("redis+cluster://h:1?ssl_check_hostname=maybe")
    with pytest.raises(ConfigError, match=r"'ssl' .* 'maybe' \(ssl takes true or false \(1/0"):
        _cluster_parts("redis+cluster://h:1?ssl=maybe")
    with pytest.raises(ConfigError, match=r"'tls' .* 'maybe' \(tls takes true or false"):
        _cluster_parts("redis+cluster://h:1?tls=maybe")
    with pytest.raises(ConfigError, match=r"'refresh_on_read' in Redis URL: 'y' \(refresh_on"):
        saver_options("redis://h:1/0?refresh_on_read=y")
    with pytest.raises(ConfigError, match="speaks TLS, and the URL says ssl=off: give one"):
        canonical_url("rediss+cluster://h:1?ssl=off")
    with pytest.raises(ConfigError, match="speaks TLS, and the URL says tls=false: give one"):
        canonical_url("rediss+cluster://h:1?tls=false")  # the older spelling, as ssl=false
    assert canonical_url("rediss+cluster://h:1?tls=yes") == "redis+cluster://h:1?tls=yes&ssl=true"
