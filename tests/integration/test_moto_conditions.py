"""moto's condition expressions, parsed once per text (``scripts/devstack/atomic_moto.py``): each
request's names and values bound into the kept tree, so moto answers every request as it would
parsing the text afresh, and every refusal is made again each time."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.dynamodb.comparisons import ConditionExpressionParser
from moto.dynamodb.models.dynamo_type import DynamoType, Item

from devstack.atomic_moto import make_dynamodb_atomic
from tests.integration.conftest import REGION

TABLE = "ledger"

#: (condition, names, values): the shapes the ledger sends, and moto's other constructs.
CONDITIONS: list[tuple[str, dict[str, str], dict[str, Any]]] = [
    (
        "(attribute_not_exists(booking_id) OR expires_at < :now) OR (#status = :queued AND"
        " (attribute_not_exists(not_before) OR not_before <= :now)) OR #status = :failed",
        {"#status": "status"},
        {":now": {"N": "100"}, ":queued": {"S": "queued"}, ":failed": {"S": "failed"}},
    ),
    ("lease_token = :token", {}, {":token": {"S": "t-1"}}),
    (
        "NOT (#s IN (:a, :b)) AND size(#n.#m) BETWEEN :low AND :high",
        {"#s": "status", "#n": "m", "#m": "k"},
        {":a": {"S": "x"}, ":b": {"S": "y"}, ":low": {"N": "1"}, ":high": {"N": "9"}},
    ),
    (
        "begins_with(#s, :p) OR contains(tags, :p) OR attribute_type(n, :t)",
        {"#s": "status"},
        {":p": {"S": "q"}, ":t": {"S": "N"}},
    ),
    ("#a.b <> :v AND things = :v", {"#a": "map"}, {":v": {"S": "1"}}),
]

ITEMS = [
    None,
    {
        "booking_id": {"S": "b"},
        "status": {"S": "queued"},
        "expires_at": {"N": "50"},
        "lease_token": {"S": "t-1"},
    },
    {
        "booking_id": {"S": "b"},
        "status": {"S": "failed"},
        "not_before": {"N": "500"},
        "n": {"N": "1"},
        "m": {"M": {"k": {"S": "abc"}}},
        "tags": {"SS": ["q"]},
        "things": {"S": "1"},
        "map": {"M": {"b": {"S": "2"}}},
    },
]


def moto_parse(text: str, names: dict[str, str] | None, values: dict[str, Any] | None) -> Any:
    """What moto itself makes of the condition: its parser as it ships, afresh."""
    parser = ConditionExpressionParser(text, names, values)
    op = ConditionExpressionParser.parse.__wrapped__(parser)  # type: ignore[attr-defined]
    return op, parser.expr_attr_names_found, parser.expr_attr_values_found


def kept_parse(text: str, names: dict[str, str] | None, values: dict[str, Any] | None) -> Any:
    parser = ConditionExpressionParser(text, names, values)
    op = parser.parse()
    return op, parser.expr_attr_names_found, parser.expr_attr_values_found


def item_of(attrs: dict[str, Any] | None) -> Item | None:
    if attrs is None:
        return None
    return Item(DynamoType(attrs["booking_id"]), None, attrs=attrs)


def outcome(op: Any, attrs: dict[str, Any] | None) -> tuple[str, object]:
    """What the condition makes of the item: its answer, or what it raised."""
    try:
        return "answer", op.expr(item_of(attrs))
    except Exception as exc:
        return "raised", f"{type(exc).__name__}: {exc}"


@pytest.fixture(autouse=True)
def atomic() -> None:
    make_dynamodb_atomic()


@pytest.mark.parametrize(("text", "names", "values"), CONDITIONS)
def test_a_kept_parse_is_moto_own(text: str, names: dict[str, str], values: dict[str, Any]) -> None:
    for _ in range(2):  # the second time from what was kept
        op, names_found, values_found = kept_parse(text, names, values)
        expected, expected_names, expected_values = moto_parse(text, names, values)
        assert repr(op) == repr(expected)
        assert (names_found, values_found) == (expected_names, expected_values)
        for attrs in ITEMS:
            assert outcome(op, attrs) == outcome(expected, attrs)


def test_each_request_binds_its_own_values_and_names() -> None:
    text = "#s = :v"
    for name, value in (("status", "queued"), ("status", "failed"), ("job", "queued")):
        op, _, _ = kept_parse(text, {"#s": name}, {":v": {"S": value}})
        expected, _, _ = moto_parse(text, {"#s": name}, {":v": {"S": value}})
        assert repr(op) == repr(expected)
        item = item_of({"booking_id": {"S": "b"}, "status": {"S": "queued"}})
        assert op.expr(item) is (name == "status" and value == "queued")


def test_a_text_is_parsed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    text = "attribute_not_exists(once_only) OR once_only < :now"
    lexed: list[str] = []
    lex = ConditionExpressionParser._lex_condition_expression

    def counting(self: ConditionExpressionParser) -> Any:
        lexed.append(str(self.condition_expression))
        return lex(self)

    monkeypatch.setattr(ConditionExpressionParser, "_lex_condition_expression", counting)
    for now in ("1", "2", "3"):
        kept_parse(text, {}, {":now": {"N": now}})
    assert lexed.count(text) <= 1


@pytest.mark.parametrize(
    ("text", "names", "values"),
    [
        ("#s = :v", {"#s": "status"}, {}),  # a value the request lacks
        ("#s = :v", {}, {":v": {"S": "x"}}),  # a name the request lacks
        ("#s = :v", None, None),
        ("a = = :v", {}, {":v": {"S": "x"}}),  # refused text
        ("(a = :v", {}, {":v": {"S": "x"}}),
        ("((a = :v))", {}, {":v": {"S": "x"}}),  # redundant parentheses
        ("size = :v", {}, {":v": {"S": "x"}}),  # a reserved word
    ],
)
def test_every_refusal_is_moto_own_each_time(text: str, names: Any, values: Any) -> None:
    try:
        moto_parse(text, names, values)
    except Exception as exc:
        expected = exc
    else:
        pytest.fail("moto parsed it")
    for _ in range(2):
        with pytest.raises(type(expected)) as refused:
            kept_parse(text, names, values)
        assert str(refused.value) == str(expected)
    # A refusal keeps nothing: the same text with what it lacked now parses.
    if isinstance(expected, KeyError):
        full = ({"#s": "status"}, {":v": {"S": "x"}})
        assert repr(kept_parse(text, *full)[0]) == repr(moto_parse(text, *full)[0])


@pytest.fixture
def dynamodb(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    import boto3

    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)
    with mock_aws():
        client = boto3.client("dynamodb", region_name=REGION)
        client.create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "booking_id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "booking_id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield client


def test_conditional_writes_read_each_request_values(dynamodb: Any) -> None:
    def write(at: str) -> bool:
        try:
            dynamodb.update_item(
                TableName=TABLE,
                Key={"booking_id": {"S": "b-1"}},
                UpdateExpression="SET seen = :at",
                ConditionExpression="attribute_not_exists(seen) OR seen < :at",
                ExpressionAttributeValues={":at": {"N": at}},
            )
        except ClientError as refused:
            code = refused.response["Error"]["Code"]
        else:
            return True
        assert code == "ConditionalCheckFailedException"
        return False

    assert [write(at) for at in ("5", "3", "7", "7", "8")] == [True, False, True, False, True]
