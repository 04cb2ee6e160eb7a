"""Instants as the service takes and writes them.

The service answers in UTC with ``Z``. It accepts one kind of instant wherever a time comes in
(an API body, a queue message, its ``data``, an import line): RFC 3339 with a year from 2000 to
2099 and an offset within ±14:00. That rule fits a JSON Schema ``pattern``, which the published
schemas carry, and it keeps every sum the service makes on an instant (a buffer, a TTL, thirty
days of retention) far from the ends of Python's calendar, where ``datetime`` overflows.
"""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BeforeValidator, GetJsonSchemaHandler, WithJsonSchema
from pydantic_core import CoreSchema

FIRST_YEAR, LAST_YEAR = 2000, 2099
MAX_OFFSET = timedelta(hours=14)

# Every valid calendar date of 2000-2099 (leap days in the years divisible by 4, 2000 included),
# so that a date the pattern allows always parses.
_DATE = (
    r"20[0-9]{2}-(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)"
    r"|02-(?:0[1-9]|1[0-9]|2[0-8]))|20(?:[02468][048]|[13579][26])-02-29"
)
# No leap second: Python's datetime has no 60th second to hold it.
_TIME = r"(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,9})?"
_OFFSET = r"(?:[Zz]|[+-](?:(?:0[0-9]|1[0-3]):[0-5][0-9]|14:00))"
#: The written form of every instant the service accepts, as a JSON Schema ``pattern``: ECMA-262,
#: whose ``$`` is the very end (Python's ``re.search`` also lets it match before a final newline;
#: the check below uses ``fullmatch``, which reads it as JavaScript does).
INSTANT_PATTERN = rf"^(?:{_DATE})[Tt]{_TIME}{_OFFSET}$"
_INSTANT = re.compile(INSTANT_PATTERN)
INSTANT_RULE = "must be an RFC 3339 date-time with a year from 2000 to 2099 and an offset within ±14:00"


def _as_written(text: str) -> datetime | None:
    """The instant ``text`` writes in the accepted form, its offset kept; else None."""
    if _INSTANT.fullmatch(text) is None:
        return None
    # RFC 3339 allows a lower-case "t" and "z"; Python reads them in upper case.
    return datetime.fromisoformat(text.upper())


def parse_instant(text: str) -> datetime | None:
    """The instant ``text`` writes in the accepted form, in UTC; None for anything else. For
    values read outside a model (message attributes, a dead letter's), by the same rule."""
    moment = _as_written(text)
    return None if moment is None else moment.astimezone(UTC)


def _written_as_an_instant(value: Any) -> Any:
    """The instant ``value`` names, when it is text in the accepted form or a ``datetime`` within
    the same bounds: never a number (pydantic would read it as Unix seconds) nor any other ISO
    8601 form. Text is parsed here, so that strict validation (an import line's) takes it too."""
    if isinstance(value, str):
        moment = _as_written(value)
        if moment is None:
            raise ValueError(INSTANT_RULE)
        return moment
    if isinstance(value, datetime):
        offset = value.utcoffset()
        if offset is None or abs(offset) > MAX_OFFSET or not FIRST_YEAR <= value.year <= LAST_YEAR:
            raise ValueError(INSTANT_RULE)
        return value
    raise ValueError(INSTANT_RULE)


_INSTANT_SCHEMA = WithJsonSchema({"type": "string", "format": "date-time", "pattern": INSTANT_PATTERN})

#: An instant as a client writes it, offset kept (a guest's local time reads as it was given).
Instant = Annotated[AwareDatetime, BeforeValidator(_written_as_an_instant), _INSTANT_SCHEMA]


def _to_utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


#: An instant kept in UTC, so that every answer carries ``Z`` times.
UtcInstant = Annotated[
    AwareDatetime, BeforeValidator(_written_as_an_instant), AfterValidator(_to_utc), _INSTANT_SCHEMA
]


@functools.cache
def iana_zones() -> tuple[str, ...]:
    """The IANA zone names of the pinned ``tzdata`` package, sorted.

    Not ``zoneinfo.available_timezones()``, which adds whatever the machine's own zone files
    hold: the set a request may name is the same on every machine, and the same as the schema's.
    """
    return tuple(sorted(resources.files("tzdata").joinpath("zones").read_text(encoding="utf-8").split()))


def _known_zone(value: str) -> str:
    if value not in _zone_set():
        raise ValueError("unknown IANA time zone")
    return value


@functools.cache
def _zone_set() -> frozenset[str]:
    return frozenset(iana_zones())


class _ZoneEnum:
    """States the zones as the schema's ``enum``, read when a schema is generated."""

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> dict[str, Any]:
        return {"type": "string", "enum": list(iana_zones())}


#: An IANA time zone name, one of ``iana_zones()``.
TimeZoneName = Annotated[str, AfterValidator(_known_zone), _ZoneEnum]


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def utc_now() -> datetime:
    return datetime.now(UTC)
