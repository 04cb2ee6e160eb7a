"""moto's update expressions, parsed once per text (``scripts/devstack/atomic_moto.py``): moto
answers every request as it would parsing each afresh, values and item read per request, and
every refusal made again each time, whatever was kept from an earlier request of the same text."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.dynamodb.parsing.ast_nodes import DepthFirstTraverser, Node  # type: ignore[attr-defined]
from moto.dynamodb.parsing.expressions import (  # type: ignore[attr-defined]
    ExpressionTokenizer,
    UpdateExpressionParser,
)
from moto.dynamodb.parsing.validators import (
    ExpressionAttributeResolvingProcessor,
    ExpressionAttributeValueProcessor,
    OverlappingPathsValidator,
)

from devstack.atomic_moto import make_dynamodb_atomic
from tests.integration.conftest import REGION

TABLE = "ledger"


@pytest.fixture
def dynamodb(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    import boto3

    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(name, value)
    make_dynamodb_atomic()
    with mock_aws():
        client = boto3.client("dynamodb", region_name=REGION)
        client.create_table(
            TableName=TABLE,
            KeySchema=[
                {"AttributeName": "booking_id", "KeyType": "HASH"},
                {"AttributeName": "email_key", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "booking_id", "AttributeType": "S"},
                {"AttributeName": "email_key", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        yield client


def key(booking: str) -> dict[str, Any]:
    return {"booking_id": {"S": booking}, "email_key": {"S": "booking_confirmed#1"}}


def update(client: Any, booking: str, text: str, names: dict[str, str] | None = None, **values: Any) -> Any:
    request: dict[str, Any] = {"TableName": TABLE, "Key": key(booking), "UpdateExpression": text}
    if names:
        request["ExpressionAttributeNames"] = names
    if values:
        request["ExpressionAttributeValues"] = {f":{name}": value for name, value in values.items()}
    return client.update_item(**request, ReturnValues="ALL_NEW")["Attributes"]


def refusal(client: Any, *args: Any, **kwargs: Any) -> str:
    with pytest.raises(ClientError) as refused:
        update(client, *args, **kwargs)
    assert refused.value.response["Error"]["Code"] == "ValidationException"
    return str(refused.value.response["Error"]["Message"])


def test_an_expression_is_parsed_and_checked_once_per_text(
    dynamodb: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = "SET attempts = if_not_exists(attempts, :zero) + :one, job_id = :job REMOVE not_before"
    tokenized: list[str] = []
    make_list = ExpressionTokenizer.make_list

    def counting(expression: str) -> Any:
        tokenized.append(expression)
        return make_list(expression)

    checked: list[object] = []
    traverse = OverlappingPathsValidator.traverse

    def checking(self: OverlappingPathsValidator, node: Any) -> Any:
        checked.append(node)
        return traverse(self, node)

    monkeypatch.setattr(ExpressionTokenizer, "make_list", staticmethod(counting))
    monkeypatch.setattr(OverlappingPathsValidator, "traverse", checking)
    for booking in ("b-1", "b-1", "b-2"):
        update(dynamodb, booking, text, zero={"N": "0"}, one={"N": "1"}, job={"S": "j"})
    assert tokenized.count(text) <= 1
    # The checks that read only the text run once for it (and these names and table keys).
    assert len(checked) == 1


def test_values_and_the_item_are_read_on_every_request(dynamodb: Any) -> None:
    text = "SET attempts = if_not_exists(attempts, :zero) + :one, job_id = :job"
    first = update(dynamodb, "b-1", text, zero={"N": "0"}, one={"N": "1"}, job={"S": "first"})
    again = update(dynamodb, "b-1", text, zero={"N": "0"}, one={"N": "1"}, job={"S": "second"})
    other = update(dynamodb, "b-2", text, zero={"N": "10"}, one={"N": "5"}, job={"S": "third"})
    assert (first["attempts"], first["job_id"]) == ({"N": "1"}, {"S": "first"})
    assert (again["attempts"], again["job_id"]) == ({"N": "2"}, {"S": "second"})
    assert (other["attempts"], other["job_id"]) == ({"N": "15"}, {"S": "third"})


def test_overlapping_paths_are_checked_for_each_set_of_names(dynamodb: Any) -> None:
    text = "SET #a = :v, #b = :v"
    apart = update(dynamodb, "b-1", text, {"#a": "x", "#b": "y"}, v={"S": "1"})
    assert (apart["x"], apart["y"]) == ({"S": "1"}, {"S": "1"})
    for _ in range(2):
        assert "Two document paths overlap" in refusal(
            dynamodb, "b-1", text, {"#a": "x", "#b": "x"}, v={"S": "1"}
        )
    assert update(dynamodb, "b-1", text, {"#a": "x", "#b": "y"}, v={"S": "2"})["y"] == {"S": "2"}


def test_every_refusal_is_made_again_each_time(dynamodb: Any) -> None:
    for _ in range(2):
        assert "Two document paths overlap" in refusal(dynamodb, "b-1", "SET a = :v, a = :v", v={"S": "1"})
        assert "key" in refusal(dynamodb, "b-1", "SET #k = :v", {"#k": "email_key"}, v={"S": "1"}).lower()
        assert "syntax error" in refusal(dynamodb, "b-1", "SET a = = :v", v={"S": "1"}).lower()
        assert "SET" in refusal(dynamodb, "b-1", "SET a = :v SET b = :v", v={"S": "1"})
        assert ":missing" in refusal(dynamodb, "b-1", "SET a = :missing, b = :v", v={"S": "1"})
    assert "a" not in dynamodb.get_item(TableName=TABLE, Key=key("b-1")).get("Item", {})


def test_an_update_that_creates_its_item_is_validated_once(
    dynamodb: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    walks: list[object] = []
    traverse = ExpressionAttributeValueProcessor.traverse

    def walking(self: ExpressionAttributeValueProcessor, node: Any) -> Any:
        walks.append(node)
        return traverse(self, node)

    monkeypatch.setattr(ExpressionAttributeValueProcessor, "traverse", walking)
    text = "SET attempts = if_not_exists(attempts, :zero) + :one, job_id = :job"
    for booking, job in (("new-1", "first"), ("new-1", "again"), ("new-2", "other")):
        walks.clear()
        stored = update(dynamodb, booking, text, zero={"N": "0"}, one={"N": "1"}, job={"S": job})
        assert len(walks) == 1
        assert stored["job_id"] == {"S": job}
    assert update(dynamodb, "new-1", "SET job_id = :job", job={"S": "x"})["attempts"] == {"N": "2"}


def test_a_refused_update_of_a_new_key_creates_no_item(dynamodb: Any) -> None:
    for _ in range(2):
        assert "operand" in refusal(dynamodb, "new-3", "SET a = :v + :v", v={"S": "x"}).lower()
        assert "does not exist" in refusal(dynamodb, "new-3", "SET a = absent_here").lower()
        assert "key" in refusal(dynamodb, "new-3", "SET a = if_not_exists(booking_id, :v)", v={"S": "x"})
        assert "Item" not in dynamodb.get_item(TableName=TABLE, Key=key("new-3"))
    assert update(dynamodb, "new-3", "SET a = :v", v={"S": "x"})["a"] == {"S": "x"}


def test_a_walk_calls_only_the_child_hooks_a_processor_has(
    dynamodb: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    hooks: list[str] = []
    resolving = ExpressionAttributeResolvingProcessor.pre_processing_of_child

    def nothing(self: DepthFirstTraverser, node: Any, child_id: int) -> None:
        hooks.append("nothing")

    def resolving_hook(self: ExpressionAttributeResolvingProcessor, node: Any, child_id: int) -> None:
        hooks.append("resolving")
        resolving(self, node, child_id)

    monkeypatch.setattr(DepthFirstTraverser, "pre_processing_of_child", nothing)
    monkeypatch.setattr(ExpressionAttributeResolvingProcessor, "pre_processing_of_child", resolving_hook)
    stored = update(
        dynamodb, "b-1", "SET a = if_not_exists(a, :zero) + :one", zero={"N": "0"}, one={"N": "1"}
    )
    assert stored["a"] == {"N": "1"}
    assert "resolving" in hooks
    assert "nothing" not in hooks


def test_a_kept_tree_is_searched_once_for_its_names_and_values(
    dynamodb: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = "SET #n = :v, searched_once = :w"
    searched: list[object] = []
    find_clauses = Node.find_clauses

    def counting(self: Node, clause_types: Any) -> Any:
        if self.parent is None:  # a whole tree, not one of its parts
            searched.append(self)
        return find_clauses(self, clause_types)

    monkeypatch.setattr(Node, "find_clauses", counting)
    searches = []
    for booking, value in (("b-1", "1"), ("b-1", "2"), ("b-2", "3")):
        stored = update(dynamodb, booking, text, {"#n": "n"}, v={"S": value}, w={"N": value})
        assert (stored["n"], stored["searched_once"]) == ({"S": value}, {"N": value})
        searches.append(searched.count(UpdateExpressionParser.make(text)))
    # The kept tree is searched by the first request only (once per list of clause types).
    assert searches[0] > 0
    assert searches == [searches[0]] * 3
    # Every request still gets its names and values checked against the ones it sends.
    assert "unused" in refusal(dynamodb, "b-1", text, {"#n": "n", "#x": "x"}, v={"S": "1"}, w={"N": "1"})
