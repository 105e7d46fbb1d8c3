"""Types a user's graph might keep in its state, defined at module level like real code."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import sys
from typing import Any, NamedTuple, TypedDict

import pydantic
import pydantic.v1

if sys.version_info >= (3, 11):
    from enum import StrEnum
else:  # pragma: no cover - Python 3.10

    class StrEnum(str, enum.Enum):
        pass


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Priority(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Mood(StrEnum):
    HAPPY = "happy"
    GRUMPY = "grumpy"


class Perm(enum.Flag):
    READ = 1
    WRITE = 2


class Point(NamedTuple):
    x: int
    y: int = 0


class Movie(TypedDict):
    title: str
    year: int


@dataclasses.dataclass
class Plan:
    steps: list[str]
    done: bool = False
    attempts: int = dataclasses.field(init=False, default=0)


@dataclasses.dataclass(frozen=True)
class Frozen:
    name: str
    at: dt.datetime


@dataclasses.dataclass(slots=True)
class Slotted:
    a: int
    b: Any = None


@dataclasses.dataclass(frozen=True, slots=True)
class FrozenSlotted:
    key: tuple[int, ...]
    color: Color


@dataclasses.dataclass
class Derived:
    """Its constructor derives `double`; rebuilding must run it again."""

    value: int

    def __post_init__(self) -> None:
        self.double = self.value * 2


class Address(pydantic.BaseModel):
    city: str
    zip_code: str | None = None


class Profile(pydantic.BaseModel):
    name: str
    mood: Mood = Mood.HAPPY
    address: Address | None = None
    tags: set[str] = pydantic.Field(default_factory=set)
    history: list[Plan] = []
    _cache: dict[str, int] = pydantic.PrivateAttr(default_factory=dict)


class Open(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="allow")

    a: int


class Frozen2(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(frozen=True)

    when: dt.date
    where: Point


class Root(pydantic.RootModel[list[int]]):
    pass


class LegacyModel(pydantic.v1.BaseModel):
    a: int
    b: str = "b"
    when: dt.datetime | None = None


class Outer:
    """Holds a nested class, as some code bases do."""

    @dataclasses.dataclass
    class Inner:
        x: int


ALL_USER_TYPES: list[type] = [
    Color,
    Priority,
    Mood,
    Perm,
    Point,
    Plan,
    Frozen,
    Slotted,
    FrozenSlotted,
    Derived,
    Address,
    Profile,
    Open,
    Frozen2,
    Root,
    LegacyModel,
    Outer.Inner,
]
