"""What a function's code asks of AWS, as IAM sees it: every botocore call recorded by an event
hook, turned into the IAM actions it needs on the resources it names.

A call is recorded from every client made while :class:`CallRecorder` is installed, whoever
makes it (our adapters, Powertools' secrets provider, boto3 itself), but only while a
``recording()`` block runs: the test's own setup and checks are left out.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import botocore.session

#: What DynamoDB checks for each operation of a transaction (there is no IAM action for the
#: transaction itself).
_TRANSACT_WRITE = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}
#: Batch operations SQS authorizes as their single form.
_SQS_SINGLE = {
    "SendMessageBatch": "SendMessage",
    "DeleteMessageBatch": "DeleteMessage",
    "ChangeMessageVisibilityBatch": "ChangeMessageVisibility",
}


@dataclass(frozen=True, order=True)
class Call:
    """An IAM action on one resource, as the call named it: a table (``table/<name>``), an index
    (``table/<name>/index/<index>``), a queue (its URL) or a secret (its id). A deletion also
    names the kind of item it reaches (``where``: ``LeadingKeys BOOKING#*``), which its grant
    must be held to."""

    action: str
    resource: str
    where: str = ""


def _deleting(table: str, key: Mapping[str, Any]) -> Call:
    """A DeleteItem, with the kind of item its partition key names (the text up to its ``#``)."""
    partition = key.get("pk")
    value = partition.get("S", "") if isinstance(partition, Mapping) else str(partition)
    kind, marker, _ = value.partition("#")
    return Call("dynamodb:DeleteItem", f"table/{table}", f"LeadingKeys {kind}{marker}*")


def iam_calls(service: str, operation: str, params: Mapping[str, Any]) -> set[Call]:
    """The IAM actions a call of ``service``'s ``operation`` with ``params`` is authorized by."""
    if service == "dynamodb":
        return _dynamodb(operation, params)
    if service == "sqs":
        return {Call(f"sqs:{_SQS_SINGLE.get(operation, operation)}", str(params["QueueUrl"]))}
    if service == "secretsmanager":
        return {Call(f"secretsmanager:{operation}", str(params["SecretId"]))}
    return {Call(f"{service}:{operation}", "*")}


def _dynamodb(operation: str, params: Mapping[str, Any]) -> set[Call]:
    if operation == "TransactWriteItems":
        return {
            _deleting(body["TableName"], body["Key"])
            if kind == "Delete"
            else Call(f"dynamodb:{_TRANSACT_WRITE[kind]}", f"table/{body['TableName']}")
            for item in params["TransactItems"]
            for kind, body in item.items()
        }
    if operation == "DeleteItem":
        return {_deleting(params["TableName"], params["Key"])}
    if operation == "TransactGetItems":
        return {
            Call("dynamodb:GetItem", f"table/{item['Get']['TableName']}") for item in params["TransactItems"]
        }
    if operation in ("BatchGetItem", "BatchWriteItem"):
        return {Call(f"dynamodb:{operation}", f"table/{name}") for name in params["RequestItems"]}
    resource = f"table/{params['TableName']}"
    if "IndexName" in params:
        resource += f"/index/{params['IndexName']}"
    return {Call(f"dynamodb:{operation}", resource)}


@dataclass
class CallRecorder:
    """Records the IAM view of every botocore call made inside :meth:`recording`, from any thread."""

    calls: set[Call] = field(default_factory=set)
    _recording: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def hook(self, params: Mapping[str, Any], model: Any, **_: Any) -> None:
        # ``provide-client-params``: the parameters as the caller gave them, before validation.
        if not self._recording:
            return
        calls = iam_calls(model.service_model.signing_name, model.name, params)
        with self._lock:
            self.calls |= calls

    @contextmanager
    def recording(self) -> Iterator[None]:
        self._recording = True
        try:
            yield
        finally:
            self._recording = False

    def take(self) -> set[Call]:
        """What was recorded so far, forgotten here."""
        with self._lock:
            taken, self.calls = self.calls, set()
        return taken

    @contextmanager
    def installed(self) -> Iterator[CallRecorder]:
        """Every botocore client created meanwhile reports its calls to :meth:`hook`."""
        original = botocore.session.Session.create_client
        recorder = self

        def create_client(session: botocore.session.Session, *args: Any, **kwargs: Any) -> Any:
            client = original(session, *args, **kwargs)
            client.meta.events.register("provide-client-params.*.*", recorder.hook)
            return client

        botocore.session.Session.create_client = create_client  # type: ignore[method-assign]
        try:
            yield self
        finally:
            botocore.session.Session.create_client = original  # type: ignore[method-assign]
