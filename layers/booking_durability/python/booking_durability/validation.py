"""What every entry point accepts, and how it reports what it refused, never echoing a value.

The types here carry the input rules every model shares: integers that are JSON integers (never
a boolean or a string), booleans that are JSON booleans, and free text that is printable. Each
states its rule in the JSON Schema it generates, so the published schemas refuse what the models
refuse.

A submitted value may be a guest's address or name, and an unexpected key may be one too
(``{"guest@example.com": ...}``), so only field names, positions and our own messages leave.
"""

from __future__ import annotations

import functools
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    Strict,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
)
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode, JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

from booking_durability.errors import DomainError

# A location part spelled like a name of ours (a field, a query parameter, a header), shown as
# it is: the caller needs it to find what to fix. Anything else came from the input and may be
# personal (an address, a name with a space or an accent never matches), so it is not shown.
_FIELD_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")
UNKNOWN_NAME = "(unknown)"
# Messages pydantic writes that quote or describe the input; replaced by ours.
_REWORDED = {
    "union_tag_invalid": "email_type is not one of the known email types",
}

# -- strict JSON types ----------------------------------------------------------------------------


@dataclass(frozen=True)
class JsonSchemaPattern:
    """Annotation that adds ``pattern`` to a type's JSON Schema, for a rule a validator of ours
    enforces (pydantic would otherwise compile the pattern with its own regex engine)."""

    pattern: str

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> dict[str, Any]:
        generated = handler(schema)
        generated["pattern"] = self.pattern
        return generated


def _json_integer(value: Any) -> Any:
    """A JSON integer, as JSON Schema reads one: ``2`` and ``2.0``, never ``true`` or ``"2"``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be an integer")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError("must be an integer")
        return int(value)
    return value


_DECIMAL = re.compile(r"0|[1-9][0-9]{0,17}")


def _decimal_digits(value: Any) -> Any:
    """A whole number in a path or a query string: decimal digits only, not what Python would
    also read as one (``+5``, ``05``, ``5_000``, `` 5``, ``5.0``)."""
    if isinstance(value, str) and _DECIMAL.fullmatch(value):
        return int(value)
    raise ValueError("must be a whole number written in decimal digits")


@dataclass(frozen=True)
class JsonInteger:
    """Annotation for an integer of a JSON body within ``[ge, le]``: ``Annotated[int, JsonInteger(ge=1)]``.

    One annotation for the type and its bounds: pydantic states bounds given apart from a
    validator that runs first as ``ge``/``le``, which no JSON Schema reader knows.
    """

    ge: int | None = None
    le: int | None = None

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.no_info_before_validator_function(
            self.parse, core_schema.int_schema(ge=self.ge, le=self.le)
        )

    @staticmethod
    def parse(value: Any) -> Any:
        return _json_integer(value)


@dataclass(frozen=True)
class DecimalInteger(JsonInteger):
    """Annotation for an integer path or query parameter within ``[ge, le]``, in decimal digits."""

    @staticmethod
    def parse(value: Any) -> Any:
        return _decimal_digits(value)


#: A boolean of a JSON body: ``true`` or ``false``, never ``1`` or ``"yes"``.
Boolean = Annotated[bool, Strict()]

# -- Ids ------------------------------------------------------------------------------------------

#: The characters of every id the service makes and accepts: a booking's, a hold's, a venue's,
#: a table's.
ID_CHARACTERS = "[A-Za-z0-9_-]"
ID_PATTERN = f"^{ID_CHARACTERS}+$"
#: The longest booking, hold or venue id (a table's is shorter).
ID_MAX_LENGTH = 128
#: A booking's, a hold's or a venue's id: the service makes and accepts no other.
BookingId = Annotated[str, Field(min_length=1, max_length=ID_MAX_LENGTH, pattern=ID_PATTERN)]
#: A venue's seating-policy hash: SHA-256, in lowercase hexadecimal.
PolicyHash = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]

# -- UUIDs ------------------------------------------------------------------------------------------

#: A UUID as JSON Schema's ``format: uuid`` and RFC 9562 write it: 8-4-4-4-12 hexadecimal digits
#: (not the other spellings Python would also read: without hyphens, in braces, as a URN).
UUID_PATTERN = r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$"
_UUID = re.compile(UUID_PATTERN)


def _uuid_text(value: Any) -> Any:
    if isinstance(value, str) and _UUID.fullmatch(value) is None:
        raise ValueError("must be a UUID written as 8-4-4-4-12 hexadecimal digits")
    return value


Uuid = Annotated[
    uuid.UUID,
    BeforeValidator(_uuid_text),
    WithJsonSchema({"type": "string", "format": "uuid", "pattern": UUID_PATTERN}),
]

# -- printable text ---------------------------------------------------------------------------------

# Control characters (Unicode category Cc: C0, DEL and C1, so CR, LF and TAB too), the line and
# paragraph separators (Zl, Zp), and surrogates (Cs: in a Python or a JavaScript string, only
# ever a lone half of a pair). None belongs in a name, a zone or a reason: they break headers,
# log lines and the layout of an email, and make two names that look alike differ.
_NOT_PRINTABLE = r"\u0000-\u001f\u007f-\u009f\u2028\u2029\ud800-\udfff"
#: "Nothing unprintable anywhere", without ``$``: Python's ``re.search`` lets ``$`` match before
#: a final newline where JavaScript's does not, and a lookahead reads alike in both (Ajv compiles
#: patterns with the ``u`` flag, so a lone surrogate is one code point there as here).
PRINTABLE_PATTERN = rf"^(?![\s\S]*[{_NOT_PRINTABLE}])"
_UNPRINTABLE = re.compile(f"[{_NOT_PRINTABLE}]")


def _printable(value: str) -> str:
    if _UNPRINTABLE.search(value):
        raise ValueError("must be printable text: no control characters, line breaks or lone surrogates")
    return value


#: Free text (a name, a zone, a reason): printable (bound its length with ``Field``).
Text = Annotated[str, AfterValidator(_printable), JsonSchemaPattern(PRINTABLE_PATTERN)]


# -- published schemas ------------------------------------------------------------------------------


class StandardJsonSchema(GenerateJsonSchema):
    """JSON Schema 2020-12 as any validator reads it (Ajv in strict mode included): a ``$schema``
    line, and none of OpenAPI's keywords, such as the ``discriminator`` pydantic writes for a
    tagged union (its ``oneOf`` does the validating)."""

    DIALECT = "https://json-schema.org/draft/2020-12/schema"

    def generate(self, schema: CoreSchema, mode: JsonSchemaMode = "validation") -> JsonSchemaValue:
        return {"$schema": self.DIALECT, **super().generate(schema, mode)}

    def tagged_union_schema(self, schema: core_schema.TaggedUnionSchema) -> JsonSchemaValue:
        generated = super().tagged_union_schema(schema)
        generated.pop("discriminator", None)
        return generated


# -- errors -----------------------------------------------------------------------------------------


def safe_errors(errors: ValidationError | Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Validation errors as ``[{"loc", "msg"}]`` that never echo a submitted value.

    Takes pydantic's ``ValidationError`` or its ``errors()`` list (as Powertools' request
    validation reports them). A location names fields, parameters and headers (an unexpected
    field too) when the name looks like one of ours; anything else in it came from the input
    and reads ``(unknown)``.
    """
    if isinstance(errors, ValidationError):
        errors = errors.errors(include_url=False, include_context=False, include_input=True)
    safe = []
    for error in errors:
        kind = str(error.get("type", ""))
        msg = _REWORDED.get(kind, str(error.get("msg", "invalid value")))
        submitted = error.get("input")
        if kind == "value_error" and "email" in msg:
            msg = "value is not a valid email address"
        elif kind == "extra_forbidden":
            msg = "unexpected field"
        elif isinstance(submitted, str) and submitted and submitted in msg:
            msg = "invalid value"
        loc = [safe_name(part) for part in error.get("loc", ())]
        safe.append({"loc": loc, "msg": msg})
    return safe


def safe_name(part: Any) -> str | int:
    """A location part as it may be shown: a position, a name of ours, or ``(unknown)``."""
    if isinstance(part, int):
        return part
    return part if _FIELD_NAME.fullmatch(str(part)) else UNKNOWN_NAME


def error_locations(exc: ValidationError, declared_by: TypeAdapter[Any] | type[BaseModel]) -> list[str]:
    """Where validation failed, as dotted paths, for log lines: positions and the names that
    ``declared_by``'s schema declares (its fields, at any depth, and its tags); any other part
    (an unexpected key, a key of a free-form object) came from the input and may be a guest's
    name, so it reads ``(unknown)``. A 422 may name a caller's own unexpected key back to it; a
    log line, read by operators, never does."""
    declared = _declared_names(declared_by)
    return sorted(
        {
            ".".join(str(part) if isinstance(part, int) or part in declared else UNKNOWN_NAME for part in loc)
            for loc in (error["loc"] for error in exc.errors(include_url=False, include_input=False))
        }
    )


@functools.cache
def _declared_names(declared_by: TypeAdapter[Any] | type[BaseModel]) -> frozenset[str]:
    """Every property name and string constant in the JSON Schema of ``declared_by``; built once,
    when its first invalid input is logged."""
    try:
        schema = (
            declared_by.json_schema(by_alias=True)
            if isinstance(declared_by, TypeAdapter)
            else declared_by.model_json_schema(by_alias=True)
        )
    except Exception:  # a log line's detail never turns a refused message into a failure
        return frozenset()
    names: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            names.update(node.get("properties", {}))
            if isinstance(node.get("const"), str):
                names.add(node["const"])
            names.update(value for value in node.get("enum", ()) if isinstance(value, str))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    return frozenset(names)


class ValidationFailed(DomainError):
    """422 ``VALIDATION_FAILED`` with ``errors: [{"loc", "msg"}]``."""

    code = "VALIDATION_FAILED"
    status = 422
    title = "Request validation failed"

    def __init__(self, errors: list[dict[str, Any]], detail: str = "") -> None:
        super().__init__(detail or "The request does not match the schema; see errors.")
        self.errors = errors

    def problem_fields(self) -> dict[str, Any]:
        return {"errors": self.errors}
