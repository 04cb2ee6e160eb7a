"""One queue's SQS event source mapping, locally: poll, invoke the real handler, delete.

Run as ``python scripts/devstack/worker.py SPEC.json`` (the local stack writes the spec from the
synthesized template). The process plays the Lambda runtime for one function: it applies the
function's environment, imports its handler once (the cold start), and for each batch builds the
event exactly as the SQS event source mapping delivers it. Like the mapping, it deletes the
records the handler did not list in ``batchItemFailures`` (with ``ReportBatchItemFailures``), and
deletes none when the handler raises or answers something malformed.

The handler's own output (its Powertools JSON lines, its EMF metric blobs) goes to stdout
untouched, as in Lambda; this worker's lines go to stderr. The local stack's supervisor reads
both, line by line: it prefixes each with the worker's name and sends the metric blobs to
``metrics.jsonl``.

Not reproduced: concurrent batches (one at a time here), ``FilterCriteria``, and the function
timeout (the context's remaining time counts down, but a slow invocation is not cut short).
"""

from __future__ import annotations

import base64
import importlib.util
import json
import logging
import math
import os
import sys
import time
import traceback
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from devstack.serving import log_to_stderr

#: Printed (to stderr) once the handler is imported and polling starts.
READY_MARKER = "polling for messages"
#: Shorter than the event source mapping's 20 s: a killed worker's long poll lives on in moto and
#: takes the next message into a dead connection (back only after the visibility timeout), so a
#: short poll keeps that window small after a restart.
LONG_POLL_SECONDS = 5
SQS_MAX_RECEIVE = 10
LOCAL_ACCOUNT_ID = "123456789012"
#: The system attributes the event source mapping passes on (FIFO and tracing ones when present).
EVENT_ATTRIBUTES = (
    "ApproximateReceiveCount",
    "SentTimestamp",
    "SenderId",
    "ApproximateFirstReceiveTimestamp",
    "SequenceNumber",
    "MessageGroupId",
    "MessageDeduplicationId",
    "AWSTraceHeader",
)

log = logging.getLogger("devstack.worker")

Handler = Callable[[dict[str, Any], Any], Any]


@dataclass(frozen=True)
class FunctionSpec:
    """The Lambda function a worker invokes, as the template defines it."""

    name: str
    handler: str
    code_dir: str
    timeout_seconds: int
    memory_mb: int
    environment: Mapping[str, str]


@dataclass(frozen=True)
class QueueWorkerSpec:
    """An SQS event source mapping: which queue, which function, how batches are formed."""

    name: str
    region: str
    queue_url: str
    queue_arn: str
    function: FunctionSpec
    batch_size: int = 10
    batching_window_seconds: int = 0
    report_batch_item_failures: bool = False

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> QueueWorkerSpec:
        raw = json.loads(text)
        return cls(**{**raw, "function": FunctionSpec(**raw["function"])})


class LambdaContext:
    """What the Lambda runtime hands a Python handler as ``context``."""

    def __init__(self, function: FunctionSpec, region: str) -> None:
        self.function_name = function.name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:{region}:{LOCAL_ACCOUNT_ID}:function:{function.name}"
        self.memory_limit_in_mb = function.memory_mb
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{function.name}"
        self.log_stream_name = f"{time.strftime('%Y/%m/%d')}/[$LATEST]{uuid.uuid4().hex}"
        self.identity = None
        self.client_context = None
        self._deadline = time.monotonic() + function.timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def _message_attribute(value: Mapping[str, Any]) -> dict[str, Any]:
    attribute: dict[str, Any] = {}
    if "StringValue" in value:
        attribute["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        attribute["binaryValue"] = base64.b64encode(value["BinaryValue"]).decode()
    attribute["stringListValues"] = list(value.get("StringListValues", []))
    attribute["binaryListValues"] = [base64.b64encode(v).decode() for v in value.get("BinaryListValues", [])]
    attribute["dataType"] = value["DataType"]
    return attribute


def sqs_record(message: Mapping[str, Any], *, queue_arn: str, region: str) -> dict[str, Any]:
    """One ``ReceiveMessage`` message as the event source mapping puts it in ``Records``."""
    attributes = message.get("Attributes", {})
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": {name: attributes[name] for name in EVENT_ATTRIBUTES if name in attributes},
        "messageAttributes": {
            name: _message_attribute(value) for name, value in message.get("MessageAttributes", {}).items()
        },
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }


def sqs_event(messages: Sequence[Mapping[str, Any]], *, queue_arn: str, region: str) -> dict[str, Any]:
    return {"Records": [sqs_record(m, queue_arn=queue_arn, region=region) for m in messages]}


def records_to_delete(
    records: Sequence[Mapping[str, Any]], response: Any, *, report_batch_item_failures: bool
) -> list[Mapping[str, Any]]:
    """The records the event source mapping deletes after a successful invocation.

    Without ``ReportBatchItemFailures`` a success deletes all. With it, all but the listed
    failures; a malformed response (not an object, an item id that is empty or not in the batch)
    counts as the whole batch failing, as Lambda treats it.
    """
    if not report_batch_item_failures:
        return list(records)
    if response is None:
        return list(records)
    if not isinstance(response, Mapping):
        return []
    failures = response.get("batchItemFailures")
    if failures is None:
        return list(records)
    if not isinstance(failures, list):
        return []
    in_batch = {record["messageId"] for record in records}
    failed: set[str] = set()
    for failure in failures:
        item = failure.get("itemIdentifier") if isinstance(failure, Mapping) else None
        if not isinstance(item, str) or item not in in_batch:
            return []
        failed.add(item)
    return [record for record in records if record["messageId"] not in failed]


def receive_batch(sqs: Any, spec: QueueWorkerSpec) -> list[dict[str, Any]]:
    """Long-poll one batch: up to ``batch_size`` messages, gathering for at most the batching
    window once the first message is in. Returns ``[]`` when a long poll finds nothing."""
    batch: list[dict[str, Any]] = []
    window_ends: float | None = None
    while len(batch) < spec.batch_size:
        if window_ends is None:
            wait = LONG_POLL_SECONDS
        else:
            remaining = window_ends - time.monotonic()
            if remaining <= 0:
                break
            wait = min(LONG_POLL_SECONDS, math.ceil(remaining))
        response = sqs.receive_message(
            QueueUrl=spec.queue_url,
            MaxNumberOfMessages=min(SQS_MAX_RECEIVE, spec.batch_size - len(batch)),
            WaitTimeSeconds=wait,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        received = response.get("Messages", [])
        if not batch and not received:
            return []
        batch.extend(received)
        if window_ends is None:
            if spec.batching_window_seconds <= 0:
                break
            window_ends = time.monotonic() + spec.batching_window_seconds
    return batch


def delete_records(sqs: Any, queue_url: str, records: Sequence[Mapping[str, Any]]) -> None:
    for start in range(0, len(records), SQS_MAX_RECEIVE):
        chunk = records[start : start + SQS_MAX_RECEIVE]
        response = sqs.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": r["receiptHandle"]} for i, r in enumerate(chunk)],
        )
        for failure in response.get("Failed", []):
            log.warning("could not delete a message (%s); it will be received again", failure.get("Code"))


def invoke(handler: Handler, event: dict[str, Any], spec: QueueWorkerSpec) -> list[Mapping[str, Any]]:
    """Invoke the handler with one batch; returns the records to delete."""
    context = LambdaContext(spec.function, spec.region)
    records = event["Records"]
    try:
        response = handler(event, context)
    except Exception:
        # What the Lambda runtime logs for an unhandled error; the batch returns to the queue.
        log.error(
            "invocation %s failed, no record deleted:\n%s",
            context.aws_request_id,
            traceback.format_exc().rstrip(),
        )
        return []
    to_delete = records_to_delete(
        records, response, report_batch_item_failures=spec.report_batch_item_failures
    )
    if len(to_delete) < len(records):
        log.info(
            "invocation %s: %d of %d records left for redelivery",
            context.aws_request_id,
            len(records) - len(to_delete),
            len(records),
        )
    return to_delete


def runtime_environment(function: FunctionSpec, region: str) -> dict[str, str]:
    """The variables the Lambda runtime itself sets for a function."""
    return {
        "AWS_LAMBDA_FUNCTION_NAME": function.name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_mb),
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function.name}",
        "AWS_REGION": region,
        "AWS_DEFAULT_REGION": region,
        "LAMBDA_TASK_ROOT": function.code_dir,
    }


def process_batch(
    sqs: Any, handler: Handler, spec: QueueWorkerSpec, messages: Sequence[Mapping[str, Any]]
) -> None:
    """One invocation: the batch as an SQS event to the handler, then the deletes it allows."""
    event = sqs_event(messages, queue_arn=spec.queue_arn, region=spec.region)
    to_delete = invoke(handler, event, spec)
    if to_delete:
        delete_records(sqs, spec.queue_url, to_delete)


def load_handler(function: FunctionSpec, region: str) -> Handler:
    """Apply the function's environment and import its handler file, as a cold start does.

    The domain package is importable already (the project's editable install stands in for the
    layers under /opt/python); the handler module is loaded from the function's code folder.
    """
    os.environ.update(runtime_environment(function, region))
    os.environ.update(function.environment)
    module_path, _, attribute = function.handler.rpartition(".")
    source = Path(function.code_dir, *module_path.split(".")).with_suffix(".py")
    spec = importlib.util.spec_from_file_location(f"lambda_{function.name}_{module_path}", source)
    if spec is None or spec.loader is None:
        raise ImportError(f"no handler module at {source}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    handler: Handler = getattr(module, attribute)
    return handler


def run(spec: QueueWorkerSpec) -> None:
    """Poll and invoke until the process is stopped."""
    handler = load_handler(spec.function, spec.region)
    import boto3  # after the environment is applied: endpoint, region and credentials come from it

    sqs = boto3.session.Session().client("sqs", region_name=spec.region)
    log.info("%s: %s (%s)", READY_MARKER, spec.queue_url.rsplit("/", 1)[-1], spec.function.handler)
    while True:
        messages = receive_batch(sqs, spec)
        if messages:
            process_batch(sqs, handler, spec, messages)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: worker.py SPEC.json", file=sys.stderr)
        return 2
    log_to_stderr(log)
    with open(args[0], encoding="utf-8") as spec_file:
        spec = QueueWorkerSpec.from_json(spec_file.read())
    run(spec)
    return 0


if __name__ == "__main__":
    sys.exit(main())
