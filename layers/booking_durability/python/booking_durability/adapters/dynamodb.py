"""One DynamoDB helper for every table of the service.

Items go in and come out as plain Python values through boto3's ``TypeSerializer`` /
``TypeDeserializer`` (numbers come back as ``int`` when whole, else ``Decimal``). Every refused
condition is reported, never ignored: a conditional write answers ``Written`` with either the
new item or the refused one, and a transaction names which of its operations was refused.
Any other failure becomes ``StoreUnavailable`` carrying the AWS error code only (its message
may quote a key, and keys can be chosen by clients).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import BotoCoreError, ClientError

from booking_durability.adapters.aws import error_code
from booking_durability.errors import StoreUnavailable

Item = dict[str, Any]

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


#: Integers DynamoDB's numbers hold exactly (38 significant digits): written as they are.
_EXACT_INT = 10**38


def to_dynamo(values: Mapping[str, Any]) -> dict[str, Any]:
    """Python values as DynamoDB attribute values (floats as exact decimals)."""
    return {name: _attribute(value) for name, value in values.items()}


def from_dynamo(item: Mapping[str, Any]) -> Item:
    return {name: _value(value) for name, value in item.items()}


def _attribute(value: Any) -> dict[str, Any]:
    # Strings and whole numbers, most of every request, without boto3's serializer's chain of
    # type tests and decimal context: the same attribute values, a fraction of a write's CPU.
    kind = type(value)
    if kind is str:
        return {"S": value}
    if kind is int and -_EXACT_INT < value < _EXACT_INT:
        return {"N": str(value)}
    serialized: dict[str, Any] = _serializer.serialize(_exact(value))
    return serialized


def _value(attribute: Mapping[str, Any]) -> Any:
    # The reverse for strings and whole numbers; everything else as boto3 reads it.
    if "S" in attribute:
        return attribute["S"]
    number = attribute.get("N")
    if number is not None and number.isascii() and number.removeprefix("-").isdigit():
        return int(number)
    return _plain(_deserializer.deserialize(attribute))


def _exact(value: Any) -> Any:
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, Mapping):
        return {k: _exact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_exact(v) for v in value]
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else value
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, set):
        return {_plain(v) for v in value}
    return value


@dataclass(frozen=True)
class Written:
    """The outcome of a conditional write: ``accepted`` with the item now stored, or refused
    with the item as it was (``{}`` when there was none)."""

    accepted: bool
    item: Item


@dataclass(frozen=True)
class Expression:
    """An update or condition expression with its placeholders (``#name`` and ``:value``)."""

    text: str
    values: Mapping[str, Any] = field(default_factory=dict)
    names: Mapping[str, str] = field(default_factory=dict)

    def __and__(self, other: Expression) -> Expression:
        return self._join("AND", other)

    def __or__(self, other: Expression) -> Expression:
        return self._join("OR", other)

    def _join(self, operator: str, other: Expression) -> Expression:
        return Expression(
            f"({self.text}) {operator} ({other.text})",
            {**self.values, **other.values},
            {**self.names, **other.names},
        )


@dataclass(frozen=True)
class Operation:
    """One operation of a transaction; ``label`` says which it was when it is refused."""

    label: str
    kind: str  # "Put" | "Update" | "Delete" | "ConditionCheck"
    key: Mapping[str, Any] | None = None
    item: Mapping[str, Any] | None = None
    update: Expression | None = None
    condition: Expression | None = None


class TransactionRefused(Exception):
    """A transaction did not commit: ``refused`` maps each refused operation's label to the item
    as it was; empty when it met another transaction touching an item at the same time."""

    def __init__(self, refused: Mapping[str, Item]) -> None:
        super().__init__(f"transaction refused: {sorted(refused)}")
        self.refused = dict(refused)


class DynamoTable:
    """One table: reads, conditional writes and transactions, in plain Python values."""

    def __init__(self, name: str, client: Any) -> None:
        self.name = name
        self.client = client

    def get(self, key: Mapping[str, Any]) -> Item | None:
        response = self._call("get_item", TableName=self.name, Key=to_dynamo(key), ConsistentRead=True)
        return from_dynamo(response["Item"]) if "Item" in response else None

    def get_many(self, keys: Sequence[Mapping[str, Any]]) -> list[Item]:
        """The items of ``keys`` that exist, in one BatchGetItem round trip (more only when
        DynamoDB leaves keys unprocessed)."""
        pending = [to_dynamo(key) for key in keys]
        found: list[Item] = []
        while pending:
            response = self._call(
                "batch_get_item", RequestItems={self.name: {"Keys": pending, "ConsistentRead": True}}
            )
            found.extend(from_dynamo(item) for item in response.get("Responses", {}).get(self.name, []))
            pending = response.get("UnprocessedKeys", {}).get(self.name, {}).get("Keys", [])
        return found

    def query(
        self,
        key_condition: Expression,
        *,
        filter: Expression | None = None,
        projection: str | None = None,
        index: str | None = None,
    ) -> Iterator[Item]:
        """Every item the query matches, page after page: strongly consistent reads of the
        table, or eventually consistent ones of the global secondary index ``index``."""
        request: dict[str, Any] = {
            "TableName": self.name,
            "KeyConditionExpression": key_condition.text,
            "ConsistentRead": index is None,  # a global secondary index has no consistent reads
        }
        if index is not None:
            request["IndexName"] = index
        expressions = [key_condition] + ([filter] if filter else [])
        if filter is not None:
            request["FilterExpression"] = filter.text
        if projection is not None:
            request["ProjectionExpression"] = projection
        _placeholders(request, expressions)
        while True:
            page = self._call("query", **request)
            yield from (from_dynamo(item) for item in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def put(self, item: Mapping[str, Any], *, condition: Expression | None = None) -> Written:
        request: dict[str, Any] = {"TableName": self.name, "Item": to_dynamo(item)}
        return self._conditional("put_item", request, condition, lambda _response: dict(item))

    def update(
        self,
        key: Mapping[str, Any],
        update: Expression,
        *,
        condition: Expression | None = None,
        return_item: bool = True,
        item_before: bool = False,
    ) -> Written:
        """One UpdateItem; the item after the write when accepted (``{}`` unless ``return_item``:
        DynamoDB then sends, and we parse, nothing), as it was when refused. With
        ``item_before``, the item as it was before an accepted write instead (``{}`` when there
        was none): a caller that knows what its write sets need not have the whole item sent."""
        request: dict[str, Any] = {
            "TableName": self.name,
            "Key": to_dynamo(key),
            "UpdateExpression": update.text,
            "ReturnValues": "ALL_OLD" if item_before else "ALL_NEW" if return_item else "NONE",
        }
        return self._conditional(
            "update_item",
            request,
            condition,
            lambda response: from_dynamo(response.get("Attributes", {})),
            extra=[update],
        )

    def transact(self, operations: Sequence[Operation]) -> None:
        """All of ``operations`` or none; raises ``TransactionRefused`` naming the refused ones."""
        items = [_transaction_item(self.name, op) for op in operations]
        try:
            self.client.transact_write_items(TransactItems=items)
        except ClientError as exc:
            if error_code(exc) != "TransactionCanceledException":
                raise StoreUnavailable(f"transact_write_items failed: {error_code(exc)}") from None
            reasons = exc.response.get("CancellationReasons") or []
            refused: dict[str, Item] = {}
            for op, reason in zip(operations, reasons, strict=False):
                code = reason.get("Code", "None")
                if code == "ConditionalCheckFailed":
                    refused[op.label] = from_dynamo(reason.get("Item", {}))
                elif code not in ("None", None, "TransactionConflict"):
                    raise StoreUnavailable(f"transact_write_items failed: {code}") from None
            # A conflict with another transaction, or a cancellation without a reason we can act
            # on, refuses nothing by name: the caller re-reads.
            raise TransactionRefused(refused) from None
        except BotoCoreError as exc:
            raise StoreUnavailable(f"transact_write_items failed: {error_code(exc)}") from None

    # -- plumbing ----------------------------------------------------------------------------

    def _conditional(
        self,
        operation: str,
        request: dict[str, Any],
        condition: Expression | None,
        accepted: Any,
        extra: Sequence[Expression] = (),
    ) -> Written:
        expressions = list(extra)
        if condition is not None:
            request["ConditionExpression"] = condition.text
            request["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
            expressions.append(condition)
        _placeholders(request, expressions)
        try:
            response = getattr(self.client, operation)(**request)
        except ClientError as exc:
            if error_code(exc) == "ConditionalCheckFailedException":
                return Written(accepted=False, item=from_dynamo(exc.response.get("Item", {})))
            raise StoreUnavailable(f"{operation} failed: {error_code(exc)}") from None
        except BotoCoreError as exc:
            raise StoreUnavailable(f"{operation} failed: {error_code(exc)}") from None
        return Written(accepted=True, item=accepted(response))

    def _call(self, operation: str, **request: Any) -> Any:
        try:
            return getattr(self.client, operation)(**request)
        except (ClientError, BotoCoreError) as exc:
            raise StoreUnavailable(f"{operation} failed: {error_code(exc)}") from None


def _transaction_item(table_name: str, op: Operation) -> dict[str, Any]:
    """``op`` as an item of ``TransactWriteItems``; a refused condition returns the item as it was."""
    body: dict[str, Any] = {"TableName": table_name}
    if op.key is not None:
        body["Key"] = to_dynamo(op.key)
    if op.item is not None:
        body["Item"] = to_dynamo(op.item)
    expressions = []
    if op.update is not None:
        body["UpdateExpression"] = op.update.text
        expressions.append(op.update)
    if op.condition is not None:
        body["ConditionExpression"] = op.condition.text
        body["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        expressions.append(op.condition)
    _placeholders(body, expressions)
    return {op.kind: body}


def _placeholders(request: dict[str, Any], expressions: Sequence[Expression]) -> None:
    names: dict[str, str] = {}
    values: dict[str, Any] = {}
    for expression in expressions:
        names.update(expression.names)
        values.update(expression.values)
    if names:
        request["ExpressionAttributeNames"] = names
    if values:
        request["ExpressionAttributeValues"] = to_dynamo(values)
