"""Items go to DynamoDB and come back exactly as boto3's own serializer would have them."""

from __future__ import annotations

from decimal import Decimal, DecimalException
from typing import Any

import pytest
from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from hypothesis import given
from hypothesis import strategies as st

from booking_durability.adapters.dynamodb import from_dynamo, to_dynamo

SCALARS = (
    st.text()
    | st.integers(min_value=-(10**38) + 1, max_value=10**38 - 1)
    | st.booleans()
    | st.none()
    | st.decimals(allow_nan=False, allow_infinity=False, places=6, min_value=-(10**20), max_value=10**20)
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)


def _boto3(value: Any) -> Any:
    return TypeSerializer().serialize(value)


@given(st.dictionaries(st.text(max_size=8), VALUES, max_size=5))
def test_values_are_written_as_boto3_writes_them(values: dict[str, Any]) -> None:
    assert to_dynamo(values) == {name: _boto3(value) for name, value in values.items()}


@given(st.dictionaries(st.text(max_size=8), VALUES, max_size=5))
def test_what_was_written_reads_back_as_it_was(values: dict[str, Any]) -> None:
    assert from_dynamo(to_dynamo(values)) == values


def test_numbers_read_back_as_int_when_whole_and_decimal_otherwise() -> None:
    item = {"whole": {"N": "-12"}, "exponent": {"N": "1E+2"}, "fraction": {"N": "1.50"}}
    read = from_dynamo(item)
    assert read == {"whole": -12, "exponent": 100, "fraction": Decimal("1.50")}
    assert type(read["exponent"]) is int
    assert from_dynamo(item) == {
        name: value
        if not isinstance(value := TypeDeserializer().deserialize(attribute), Decimal)
        or value != value.to_integral_value()
        else int(value)
        for name, attribute in item.items()
    }


def test_a_whole_number_beyond_dynamodbs_precision_is_refused_as_boto3_refuses_it() -> None:
    # boto3 raises decimal.Rounded for a 39th significant digit: the fast path must not write it
    with pytest.raises(DecimalException):
        _boto3(10**38)
    with pytest.raises(DecimalException):
        to_dynamo({"n": 10**38})
    with pytest.raises(DecimalException):
        to_dynamo({"n": -(10**38) - 1})
