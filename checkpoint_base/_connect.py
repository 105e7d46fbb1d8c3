"""`connect(url)` and `aconnect(url)`: open the right saver from a URL.

Backends register in the entry-point group `checkpointers.backends`, one entry per URL
scheme, whose object is a `BackendEntry`. A third-party package adds a backend by declaring
an entry point; nothing in this repository changes.
"""

from __future__ import annotations

import asyncio
import datetime
import importlib.metadata
import re
import urllib.parse
from collections.abc import Awaitable, Callable, Generator, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ._errors import (
    ConfigError,
    MissingDriverError,
    UnknownBackendError,
    check_keep_last,
    duration_seconds,
)
from ._schemes import canonical_url, scheme_hint
from ._sweeper import STRATEGIES

if TYPE_CHECKING:
    from ._saver import CheckpointSaver

__all__ = [
    "SWEEP_KEYS",
    "BackendEntry",
    "aconnect",
    "backend_url",
    "connect",
    "installed_schemes",
    "redact",
]

GROUP = "checkpointers.backends"


@dataclass(frozen=True, slots=True)
class BackendEntry:
    """What a backend registers: how to open a sync and an async saver from a URL.

    Attributes:
        connect: `(url, **options) -> saver` with a sync executor.
        aconnect: `async (url, **options) -> saver` with an async executor.
        extra: The extra of `checkpointers` that installs the driver, for error messages.
        expires: The savers take `ttl=` and expire threads themselves (Redis); for the
            others `connect(url, ttl=...)` starts a sweeper (`sweep_idle_threads`).
    """

    connect: Callable[..., CheckpointSaver]
    aconnect: Callable[..., Awaitable[CheckpointSaver]]
    extra: str | None = None
    expires: bool = False


def installed_schemes() -> list[str]:
    """The URL schemes of every registered backend."""
    return sorted({ep.name for ep in importlib.metadata.entry_points(group=GROUP)})


def redact(url: str) -> str:
    """`url` with its passwords hidden, for messages and reports: the one before `@` (every
    host of a multi-host URL shares it), and the value of any query option whose name says
    password (`sentinel_password=`)."""
    try:
        parts = urllib.parse.urlsplit(url)
    except (TypeError, ValueError, AttributeError):  # not a URL (or not text): shown as is
        return url
    userinfo, at, hosts = parts.netloc.rpartition("@")
    netloc = parts.netloc
    if at and ":" in userinfo:
        netloc = f"{userinfo.split(':', 1)[0]}:***@{hosts}"
    query = parts.query
    if "password" in query.lower():
        pairs = urllib.parse.parse_qsl(query, keep_blank_values=True)
        hidden = [(k, "***" if "password" in k.lower() else v) for k, v in pairs]
        query = urllib.parse.urlencode(hidden, safe="/*:")
    if (netloc, query) == (parts.netloc, parts.query):
        return url  # as given: urlunsplit would write `sqlite:///x.db` as `sqlite:/x.db`
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc, query=query))


def _scheme(url: str) -> str:
    if not isinstance(url, str) or "://" not in url:
        raise UnknownBackendError(
            f"not a checkpointer URL: {redact(url)!r}; expected scheme://..., for example "
            "sqlite:///checkpoints.db, postgresql://user@host/db, redis://host:6379/0"
        )
    return url.split("://", 1)[0].lower()


def _entry(url: str) -> BackendEntry:
    return _resolve(url)[1]


def backend_url(url: str) -> str:
    """`url` as `connect` gives it to its backend: as written when a backend registers its
    scheme (a third-party `valkey://` backend keeps its URLs), else with the scheme a backend
    of this package registers for it (`canonical_url`: `postgresql+asyncpg://` opens as
    `postgresql://`, `valkey://` as `redis://`)."""
    return _backend_url(url, importlib.metadata.entry_points(group=GROUP))


def _backend_url(url: str, registered: Iterable[importlib.metadata.EntryPoint]) -> str:
    scheme = _scheme(url)
    if any(ep.name == scheme for ep in registered):
        return url
    return canonical_url(url)


def _resolve(url: str) -> tuple[str, BackendEntry]:
    """The URL to give the backend of `url` (`backend_url`) and that backend."""
    scheme = _scheme(url)
    registered = importlib.metadata.entry_points(group=GROUP)
    url = _backend_url(url, registered)
    name = _scheme(url)
    found = [ep for ep in registered if ep.name == name]
    if not found:
        hint = scheme_hint(url)
        raise UnknownBackendError(
            f"no backend for URL scheme {scheme!r} in {redact(url)!r}"
            + (f": {hint}" if hint else "")
            + f"; installed schemes: {', '.join(installed_schemes()) or 'none'}"
        )
    return url, _load(found[0], name)


def _load(ep: importlib.metadata.EntryPoint, scheme: str) -> BackendEntry:
    try:
        entry = ep.load()
    except MissingDriverError:
        raise
    except ImportError as exc:
        extra = _extra_of(ep.value)
        raise MissingDriverError(
            f"the {scheme}:// backend needs a driver that is not installed ({exc}); "
            f"install it with: pip install 'checkpointers[{extra}]'"
        ) from exc
    if not isinstance(entry, BackendEntry):
        raise UnknownBackendError(f"entry point {ep.value!r} for {scheme!r} is not a BackendEntry")
    return entry


def _extra_of(target: str) -> str:
    module = target.split(":", 1)[0].split(".", 1)[0]
    return module.removeprefix("checkpoint_") or "all"


def _swept(entry: BackendEntry, ttl: object, ttl_strategy: str) -> bool:
    """Whether a saver opened with these options gets a sweeper (`sweep_idle_threads`):
    `ttl` on a backend that does not expire data itself, or any that `keep_latest` asks of."""
    return ttl is not None and (not entry.expires or ttl_strategy == "keep_latest")


SWEEP_KEYS = ("ttl", "sweep_every", "ttl_strategy")
"""The options of `connect` that a URL of a backend that is swept may carry (`_url_sweep`)."""
Duration = datetime.timedelta | float


def _url_sweep(
    url: str,
    entry: BackendEntry,
    ttl: Duration | None,
    sweep_every: Duration | None,
    ttl_strategy: str,
) -> tuple[str, Duration | None, Duration | None, str]:
    """`url` without the `ttl` and `sweep_every` (seconds) and `ttl_strategy` of its query,
    and those options merged with the arguments, for a backend whose savers do not expire
    data themselves (they are swept, `_swept`): one URL (an environment variable) can then
    say how long idle threads live, as a Redis URL does with its own `ttl`, which stays in it
    for the saver. The other query parameters are left as written.

    Raises:
        ConfigError: The URL gives one of them twice, or one that the arguments give too,
            or a duration that is not a number of seconds.
    """
    base, sep, query = url.partition("?")
    if entry.expires or not sep:
        return url, ttl, sweep_every, ttl_strategy
    kept: list[str] = []
    found: dict[str, str] = {}
    for piece in query.split("&"):
        raw_key, _, value = piece.partition("=")
        key = urllib.parse.unquote_plus(raw_key)
        if key not in SWEEP_KEYS:
            kept.append(piece)
            continue
        if key in found:
            raise ConfigError(f"the URL gives {key}= twice: give it once")
        found[key] = urllib.parse.unquote_plus(value)
    if not found:
        return url, ttl, sweep_every, ttl_strategy
    given: dict[str, object] = {"ttl": ttl, "sweep_every": sweep_every, "ttl_strategy": None}
    if ttl_strategy != "delete":
        given["ttl_strategy"] = ttl_strategy
    for key in found:
        if given[key] is not None:
            raise ConfigError(
                f"{key} is given twice, in the URL ({key}={found[key]}) and as an argument "
                f"({given[key]!r}): give it once"
            )
    durations: dict[str, float] = {}
    for key in ("ttl", "sweep_every"):
        if key in found:
            try:
                durations[key] = float(found[key])
            except ValueError:
                raise ConfigError(
                    f"{key}={found[key]!r} in the URL is not a number of seconds "
                    f"(for example {key}=2592000 for 30 days)"
                ) from None
    rest = base + ("?" + "&".join(kept) if kept else "")
    return (
        rest,
        durations.get("ttl", ttl),
        durations.get("sweep_every", sweep_every),
        found.get("ttl_strategy", ttl_strategy),
    )


def unswept(url: str) -> str:
    """`url` without the sweep options of its query (`_url_sweep`), for a command that opens
    a store for a moment and must not delete threads as it reads them (the command line).

    Raises:
        As `_url_sweep`, and `UnknownBackendError` / `MissingDriverError` as `connect`.
    """
    url, entry = _resolve(url)
    return _url_sweep(url, entry, None, None, "delete")[0]


def _ttl_options(
    url: str,
    entry: BackendEntry,
    ttl: datetime.timedelta | float | None,
    sweep_every: datetime.timedelta | float | None,
    ttl_strategy: str,
) -> dict[str, Any]:
    """What of `ttl` and `sweep_every` goes to the backend's saver (checked here, before
    anything is opened)."""
    if ttl_strategy not in STRATEGIES:
        raise ConfigError(
            f"unknown ttl_strategy {ttl_strategy!r}: use 'delete' (idle threads go whole) or "
            "'keep_latest' (they keep their latest state, their history goes)"
        )
    if entry.expires and ttl_strategy == "delete":
        if sweep_every is not None:
            raise ConfigError(
                f"{_scheme(url)}:// savers expire a thread's data by themselves (ttl=): "
                "there is nothing to sweep; drop sweep_every="
            )
        return {} if ttl is None else {"ttl": ttl}
    if ttl is None:
        if sweep_every is not None:
            raise ConfigError("sweep_every= goes with ttl=, the time to live it keeps")
        if ttl_strategy != "delete":
            raise ConfigError("ttl_strategy= goes with ttl=, the time to live it keeps")
        return {}
    _check_durations(ttl, sweep_every)
    return {}


def _check_durations(
    ttl: datetime.timedelta | float | None, sweep_every: datetime.timedelta | float | None
) -> None:
    """Refuse a `ttl` or `sweep_every` given that is not a positive duration."""
    if ttl is not None:
        duration_seconds(ttl, "ttl", "timedelta(days=30)")
    if sweep_every is not None:
        duration_seconds(sweep_every, "sweep_every", "timedelta(hours=1)")


def connect(
    url: str,
    *,
    setup: bool = True,
    keep_last: int | None = None,
    ttl: datetime.timedelta | float | None = None,
    sweep_every: datetime.timedelta | float | None = None,
    ttl_strategy: str = "delete",
    **options: Any,
) -> CheckpointSaver:
    """Open a sync saver for `url`, with its storage schema set up.

    Use it as a context manager to close its connections, or keep it for the process:

        with connect("sqlite:///checkpoints.db") as saver:
            graph = builder.compile(checkpointer=saver)

    Args:
        url: `memory://`, `sqlite:///path.db`, `postgresql://...`, `redis://...`,
            `rediss://...`, `redis+cluster://host:port,...`,
            `redis+sentinel://host:port,.../service`, `unix:///path/redis.sock` (Redis on
            a Unix socket), or a third-party scheme; SQLAlchemy's
            driver-qualified spellings (`postgresql+asyncpg://`, `sqlite+aiosqlite://`),
            Valkey's (`valkey://`) and `rediss+cluster://` / `rediss+sentinel://` (TLS) too
            (`backend_url`). The URL of a
            backend that is swept may give `ttl` and `sweep_every` (seconds) and
            `ttl_strategy` in its query (`sqlite:///checkpoints.db?ttl=2592000`), as the
            arguments of the same names do; a Redis URL's `ttl` is the saver's own.
        setup: Run the schema migrations first (default True).
        keep_last: Keep only the newest N checkpoints of each namespace of a thread, trimmed
            as puts go (see `CheckpointSaver.keep_last`). None (default) keeps all.
        ttl: Delete a thread once no one wrote to it for this long (a `timedelta` or
            seconds). Redis savers expire its keys themselves; for the other backends the
            saver sweeps in the background while it is open (`sweep_idle_threads`).
        sweep_every: With `ttl` on a backend that is swept: the time between sweeps (by
            default a tenth of `ttl`, between 1 second and 1 hour).
        ttl_strategy: `"delete"` (default): an idle thread goes whole. `"keep_latest"`: it
            keeps its latest state and loses its history (`prune_idle_threads`), on every
            backend by a sweeper (Redis's key expiry can only delete).
        **options: Passed to the backend (for example `serde=`, `key_prefix=`).

    Raises:
        UnknownBackendError: no installed backend handles the scheme.
        MissingDriverError: the backend's driver is missing; the message names the extra.
        ConfigError: `keep_last` is not None or an int >= 1, `ttl` or `sweep_every` is not a
            positive duration, `ttl_strategy` is neither of the two, or the backend takes no
            option of a name in `options` (the message says which backends do).
    """
    check_keep_last(keep_last)
    url, entry = _resolve(url)
    url, ttl, sweep_every, ttl_strategy = _url_sweep(url, entry, ttl, sweep_every, ttl_strategy)
    native = _ttl_options(url, entry, ttl, sweep_every, ttl_strategy)
    try:
        saver = entry.connect(url, **options, **native)
    except TypeError as exc:
        error = _unknown_option(url, options, exc)
        if error is None:
            raise
        raise error from exc
    saver.keep_last = keep_last
    try:
        if setup:
            saver.setup()
        if _swept(entry, ttl, ttl_strategy):
            assert ttl is not None
            saver.sweep_idle_threads(ttl, every=sweep_every, strategy=ttl_strategy)
    except BaseException:
        saver.close()
        raise
    return saver


def _unknown_option(url: str, options: dict[str, Any], exc: TypeError) -> ConfigError | None:
    """The error for an option the backend does not take (its saver's `TypeError` named it),
    or None when the `TypeError` is about something else."""
    found = re.search(r"unexpected keyword argument '([^']+)'", str(exc))
    if found is None or found.group(1) not in options:
        return None
    name = found.group(1)
    hint = _OPTION_HINTS.get(name, "see the saver class's documentation for the options it takes")
    return ConfigError(f"{_scheme(url)}:// savers take no option {name!r} ({exc}); {hint}")


_OPTION_HINTS = {
    "refresh_on_read": "it is an option of Redis savers; elsewhere ttl= counts from a "
    "thread's last write (connect(url, ttl=...) sweeps the threads idle for longer)",
    "key_prefix": "it is an option of Redis savers; PostgreSQL savers take schema=",
    "schema": "it is an option of PostgreSQL savers; Redis savers take key_prefix=",
    "read_only": "it is an option of SQLite savers; PostgreSQL savers read as they are through "
    "a role or session that may only read (default_transaction_read_only)",
}


class aconnect:
    """Open an async saver for `url`: `async with aconnect(url) as saver:` or `await aconnect(url)`.

    Args:
        url: As for `connect`.
        setup: Run the schema migrations first (default True).
        keep_last: As for `connect`.
        ttl: As for `connect`; a backend that is swept is swept by a task on the event
            loop that opens the saver.
        sweep_every: As for `connect`.
        ttl_strategy: As for `connect`.
        **options: Passed to the backend.
    """

    def __init__(
        self,
        url: str,
        *,
        setup: bool = True,
        keep_last: int | None = None,
        ttl: datetime.timedelta | float | None = None,
        sweep_every: datetime.timedelta | float | None = None,
        ttl_strategy: str = "delete",
        **options: Any,
    ) -> None:
        check_keep_last(keep_last)
        _scheme(url)  # a malformed URL fails here; an unknown scheme when opened
        _check_durations(ttl, sweep_every)  # here too, so that a bad value fails where written
        self._ttl = ttl
        self._sweep_every = sweep_every
        self._ttl_strategy = ttl_strategy
        self._keep_last = keep_last
        self._url = url
        self._setup = setup
        self._options = options
        self._saver: CheckpointSaver | None = None

    async def _open(self) -> CheckpointSaver:
        # Finding the backend reads the installed packages' metadata (file system calls): on
        # a thread, so that an event loop that forbids blocking calls (`langgraph dev`) opens
        # savers too.
        url, entry = await asyncio.to_thread(_resolve, self._url)
        url, ttl, sweep_every, strategy = _url_sweep(
            url, entry, self._ttl, self._sweep_every, self._ttl_strategy
        )
        native = _ttl_options(url, entry, ttl, sweep_every, strategy)
        try:
            saver = await entry.aconnect(url, **self._options, **native)
        except TypeError as exc:
            error = _unknown_option(url, self._options, exc)
            if error is None:
                raise
            raise error from exc
        saver.keep_last = self._keep_last
        try:
            if self._setup:
                await saver.asetup()
            if _swept(entry, ttl, strategy):
                assert ttl is not None
                saver.sweep_idle_threads(ttl, every=sweep_every, strategy=strategy)
        except BaseException:
            await saver.aclose()
            raise
        self._saver = saver
        return saver

    def __await__(self) -> Generator[Any, None, CheckpointSaver]:
        return self._open().__await__()

    async def __aenter__(self) -> CheckpointSaver:
        return await self._open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._saver is not None:
            await self._saver.aclose()
