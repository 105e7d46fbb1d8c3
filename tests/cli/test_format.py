"""Durations, times, sizes and URLs as the command line reads and prints them."""

from __future__ import annotations

import datetime

import pytest

from checkpoint_base._cli_format import (
    Style,
    format_age,
    format_bytes,
    format_seconds,
    parse_duration,
    parse_when,
    redact,
    table,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("15m", 900),
        ("12h", 43200),
        ("7d", 604800),
        ("2w", 1209600),
        ("1d12h", 129600),
        ("1.5h", 5400),
    ],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "7", "d", "7x", "1d 2", "a while", "-3d"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


def test_when() -> None:
    assert parse_when("7d", now=1_000_000.0) == 1_000_000.0 - 604800
    aware = parse_when("2024-05-04T06:30:00+00:00")
    assert aware == datetime.datetime(2024, 5, 4, 6, 30, tzinfo=datetime.timezone.utc).timestamp()
    with pytest.raises(ValueError, match="not a time"):
        parse_when("yesterday")


def test_sizes_ages_durations() -> None:
    assert [format_bytes(n) for n in (None, 0, 999, 1000, 1_234_567, 5 * 10**12)] == [
        "-",
        "0 B",
        "999 B",
        "1.0 kB",
        "1.2 MB",
        "5000.0 GB",
    ]
    assert format_age(100.0, now=112.0) == "12s ago"
    assert format_age(0.0, now=3 * 86400 + 5) == "3d ago"
    assert (
        format_seconds(None) == "-:--"
        and format_seconds(62) == "1:02"
        and format_seconds(3725) == "1:02:05"
    )


def test_redact_hides_passwords_only() -> None:
    assert redact("postgresql://me:s3cret@db:5432/app") == "postgresql://me:***@db:5432/app"
    assert redact("postgresql://me@db/app") == "postgresql://me@db/app"
    assert redact("sqlite:///x.db") == "sqlite:///x.db"
    # several hosts share the user part; a password may also ride in the query
    assert (
        redact("redis+sentinel://app:p%40ss@h1:26379,h2:26379/svc?sentinel_password=w&ttl=60")
        == "redis+sentinel://app:***@h1:26379,h2:26379/svc?sentinel_password=***&ttl=60"
    )
    assert redact("redis://:only-a-password@h:6379/0") == "redis://:***@h:6379/0"
    assert (
        redact("rediss://h/0?ssl_ca_certs=/etc/ca.pem") == "rediss://h/0?ssl_ca_certs=/etc/ca.pem"
    )


class _Tty:
    def isatty(self) -> bool:
        return True

    def write(self, text: str) -> int:
        return len(text)


def test_colour_only_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    assert Style(_Tty())("x", "bold") == "\x1b[1mx\x1b[0m"  # type: ignore[arg-type]
    monkeypatch.setenv("NO_COLOR", "1")
    assert Style(_Tty())("x", "bold") == "x"  # type: ignore[arg-type]


def test_table_aligns_and_cuts_on_a_narrow_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm")
    monkeypatch.setenv("COLUMNS", "30")
    style = Style(_Tty())  # type: ignore[arg-type]
    style.color = False  # measure plain text; the width stays the terminal's
    out = table(
        ["NAME", "N"],
        [["a-very-long-thread-identifier-indeed", "3"], ["b", "12"]],
        style,
        right=(1,),
        shrink=0,
    )
    lines = out.splitlines()
    assert all(len(line) <= 30 for line in lines), lines
    assert lines[1].endswith(" 3") and lines[2].endswith("12")
    assert "…" in lines[1]
