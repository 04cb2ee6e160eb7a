"""One EventBridge pipe from a DynamoDB stream to an SQS queue, locally: poll, filter, render, send.

Run as ``python scripts/devstack/stream_worker.py SPEC.json`` (the local stack writes the spec
from the synthesized template's ``AWS::Pipes::Pipe``: see ``local_resources.stream_worker_specs``).
Like the pipe, it reads every shard of the table's stream, turns each record into the event the
pipe sees (the stream record with ``eventSourceARN``), lets through the records matching any of
the pipe's ``FilterCriteria`` patterns, renders each one with the pipe's ``InputTemplate`` and
sends it to the target queue, in stream order.

Its position is checkpointed in a small state file (the last sequence number handled in each
shard), written after each record sent and after each batch: a worker restarted by the
supervisor resumes after it (``AFTER_SEQUENCE_NUMBER``), so it neither loses nor re-sends a
record it had sent. Only a worker killed between a send and that write re-sends that one record,
as a pipe may (delivery is at least once). The first start of a run reads from the pipe's
``StartingPosition`` (``TRIM_HORIZON``: the whole stream, fresh each run).

A send that fails is retried, with a growing pause, until it succeeds: nothing is dropped (the
pipe in AWS gives up after ``MaximumRetryAttempts`` and describes the batch to its DLQ).

EventBridge patterns: exact values and ``prefix``, the subset the templates use; anything else
is refused when the spec is made, never silently ignored. Input templates: ``<$.path.to.value>``
placeholders (a string value goes in as it is, anything else as JSON).

This worker's own lines go to stderr (the sequence numbers it sends, never a record's content).
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import re
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from devstack.files import write_json_atomically
from devstack.serving import log_to_stderr

#: Printed (to stderr) once every shard has its starting position and polling starts.
READY_MARKER = "reading the stream"
#: A pause between polls that found nothing, doubling up to the longest (as quick as a pipe when
#: busy, and few requests to moto, which keeps every shard iterator it ever handed out, when idle).
MIN_POLL_SECONDS = 0.2
MAX_POLL_SECONDS = 2.0
#: How often the stream's shards are listed again (a shard may close and children open).
SHARD_REFRESH_SECONDS = 10.0
MAX_SEND_PAUSE_SECONDS = 5.0
DEFAULT_BATCH_SIZE = 10
_PLACEHOLDER = re.compile(r"<([^<>]*)>")
_PATH_PART = re.compile(r"\.([A-Za-z0-9_\-]+)|\[(\d+)\]")

log = logging.getLogger("devstack.stream_worker")


class UnsupportedPipe(ValueError):
    """A filter pattern or input template this worker cannot apply faithfully."""


@dataclass(frozen=True)
class StreamWorkerSpec:
    """An EventBridge pipe from a DynamoDB stream to an SQS queue, as the template defines it."""

    name: str
    region: str
    endpoint_url: str
    stream_arn: str
    target_queue_url: str
    state_file: str
    starting_position: str = "TRIM_HORIZON"
    batch_size: int = DEFAULT_BATCH_SIZE
    #: EventBridge patterns (parsed); a record passes when it matches any. None at all: every one.
    filters: Sequence[Mapping[str, Any]] = field(default_factory=list)
    #: ``TargetParameters.InputTemplate``; None sends the event itself, as JSON.
    input_template: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> StreamWorkerSpec:
        return cls(**json.loads(text))


# --- EventBridge patterns -----------------------------------------------------------------------


def check_pattern(pattern: Any, where: str = "pattern") -> None:
    """Raise :class:`UnsupportedPipe` unless ``pattern`` uses only exact values and ``prefix``."""
    if not isinstance(pattern, Mapping) or not pattern:
        raise UnsupportedPipe(f"{where}: a pattern is a non-empty JSON object")
    for key, wanted in pattern.items():
        if isinstance(wanted, Mapping):
            check_pattern(wanted, f"{where}.{key}")
            continue
        if not isinstance(wanted, list) or not wanted:
            raise UnsupportedPipe(f"{where}.{key}: a pattern's leaf is a non-empty array")
        for option in wanted:
            if isinstance(option, Mapping):
                if set(option) != {"prefix"} or not isinstance(option["prefix"], str):
                    raise UnsupportedPipe(
                        f"{where}.{key}: only exact values and prefix are emulated, not {sorted(option)}"
                    )
            elif isinstance(option, list):
                raise UnsupportedPipe(f"{where}.{key}: an array inside a pattern's array")


def matches(pattern: Mapping[str, Any], event: Any) -> bool:
    """Whether ``event`` matches an EventBridge ``pattern`` (exact values and ``prefix``)."""
    if not isinstance(event, Mapping):
        return False
    for key, wanted in pattern.items():
        if key not in event:
            return False
        value = event[key]
        if isinstance(wanted, Mapping):
            if not matches(wanted, value):
                return False
        elif not any(_option_matches(option, item) for option in wanted for item in _values(value)):
            return False
    return True


def passes(filters: Sequence[Mapping[str, Any]], event: Any) -> bool:
    """A pipe's filter criteria: any pattern matching lets the event through; none given, all pass."""
    return not filters or any(matches(pattern, event) for pattern in filters)


def _values(value: Any) -> list[Any]:
    # An array in the event matches when any of its elements does.
    return list(value) if isinstance(value, list) else [value]


def _option_matches(option: Any, value: Any) -> bool:
    if isinstance(option, Mapping):
        return isinstance(value, str) and value.startswith(option["prefix"])
    if isinstance(option, bool) or isinstance(value, bool):
        return option is value  # JSON true is not 1
    return bool(option == value)


# --- Input templates ----------------------------------------------------------------------------


def check_template(template: str) -> None:
    """Raise :class:`UnsupportedPipe` for a placeholder that is not a ``$.`` JSON path."""
    for placeholder in _PLACEHOLDER.findall(template):
        _path(placeholder)


def render(template: str | None, event: Mapping[str, Any]) -> str:
    """The message a pipe sends for ``event``: the template with each ``<$.path>`` filled in."""
    if template is None:
        return json.dumps(event, separators=(",", ":"))

    def value(match: re.Match[str]) -> str:
        found = _lookup(event, _path(match.group(1)))
        if found is None:
            return ""
        return found if isinstance(found, str) else json.dumps(found, separators=(",", ":"))

    return _PLACEHOLDER.sub(value, template)


def _path(placeholder: str) -> list[str | int]:
    if not placeholder.startswith("$"):
        raise UnsupportedPipe(f"input template placeholder <{placeholder}>: only $. JSON paths are emulated")
    rest, parts = placeholder[1:], []
    while rest:
        match = _PATH_PART.match(rest)
        if match is None:
            raise UnsupportedPipe(f"input template placeholder <{placeholder}>: not a simple JSON path")
        parts.append(match.group(1) if match.group(1) is not None else int(match.group(2)))
        rest = rest[match.end() :]
    return parts


def _lookup(event: Any, path: Sequence[str | int]) -> Any:
    for part in path:
        if isinstance(part, int):
            event = event[part] if isinstance(event, list) and part < len(event) else None
        else:
            event = event.get(part) if isinstance(event, Mapping) else None
    return event


# --- Stream records -----------------------------------------------------------------------------


def pipe_event(record: Mapping[str, Any], *, stream_arn: str, region: str) -> dict[str, Any]:
    """A ``GetRecords`` record as the pipe sees it (and filters and renders it): JSON, with the
    creation time in epoch seconds, binary values in base64, and ``eventSourceARN``."""
    event: dict[str, Any] = _as_json(record)
    event["awsRegion"] = region
    event["eventSourceARN"] = stream_arn
    return event


def _as_json(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _as_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set):
        return [_as_json(item) for item in value]
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, datetime):
        return int(value.timestamp())
    return value


# --- The position, across restarts ----------------------------------------------------------------


class Checkpoints:
    """The last sequence number handled per shard, and the shards read to their end, in a file."""

    def __init__(self, path: Path, stream_arn: str) -> None:
        self.path = path
        self.stream_arn = stream_arn
        self.resumed = False  # True when a previous worker of this run left a position
        self.sequence_numbers: dict[str, str] = {}
        self.finished: set[str] = set()
        with contextlib.suppress(FileNotFoundError):
            saved = json.loads(path.read_text(encoding="utf-8"))
            if saved.get("stream_arn") == stream_arn:
                self.resumed = True
                self.sequence_numbers = dict(saved.get("sequence_numbers", {}))
                self.finished = set(saved.get("finished", []))

    def advance(self, shard_id: str, sequence_number: str) -> None:
        self.sequence_numbers[shard_id] = sequence_number

    def finish(self, shard_id: str) -> None:
        self.finished.add(shard_id)

    def save(self) -> None:
        """Replace the file at once: a worker killed meanwhile leaves the old one or the new one."""
        document = {
            "stream_arn": self.stream_arn,
            "sequence_numbers": self.sequence_numbers,
            "finished": sorted(self.finished),
        }
        write_json_atomically(self.path, document)
        self.resumed = True


# --- The pipe -------------------------------------------------------------------------------------


class StreamPipe:
    """Reads the stream's shards from their checkpoints and forwards what passes, in order."""

    def __init__(self, spec: StreamWorkerSpec, *, streams: Any, sqs: Any, checkpoints: Checkpoints) -> None:
        self.spec = spec
        self.streams = streams
        self.sqs = sqs
        self.checkpoints = checkpoints
        self._iterators: dict[str, str] = {}
        self._parents: dict[str, str | None] = {}
        self._listed_at = -SHARD_REFRESH_SECONDS

    def poll(self) -> int:
        """One round over the open shards; the number of records read."""
        if time.monotonic() - self._listed_at >= SHARD_REFRESH_SECONDS:
            self._list_shards()
        read = 0
        for shard_id in list(self._iterators):
            parent = self._parents.get(shard_id)
            if parent in self._iterators:  # a parent shard is read to its end first
                continue
            read += self._read(shard_id)
        return read

    def _list_shards(self) -> None:
        shards: list[Mapping[str, Any]] = []
        request: dict[str, Any] = {"StreamArn": self.spec.stream_arn}
        while True:
            description = self.streams.describe_stream(**request)["StreamDescription"]
            shards.extend(description.get("Shards", []))
            last = description.get("LastEvaluatedShardId")
            if not last:
                break
            request["ExclusiveStartShardId"] = last
        for shard in shards:
            shard_id = shard["ShardId"]
            self._parents[shard_id] = shard.get("ParentShardId")
            if shard_id not in self._iterators and shard_id not in self.checkpoints.finished:
                self._iterators[shard_id] = self._iterator(shard_id)
        self._listed_at = time.monotonic()

    def _iterator(self, shard_id: str) -> str:
        """Where reading a shard (re)starts: after its checkpoint; else from its start when this
        run's worker read the stream before (a restart), or the pipe's starting position."""
        request = {"StreamArn": self.spec.stream_arn, "ShardId": shard_id}
        sequence_number = self.checkpoints.sequence_numbers.get(shard_id)
        if sequence_number is not None:
            request |= {"ShardIteratorType": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": sequence_number}
        elif self.checkpoints.resumed or self.spec.starting_position == "TRIM_HORIZON":
            request["ShardIteratorType"] = "TRIM_HORIZON"
        else:
            request["ShardIteratorType"] = self.spec.starting_position
        iterator: str = self.streams.get_shard_iterator(**request)["ShardIterator"]
        return iterator

    def _read(self, shard_id: str) -> int:
        from botocore.exceptions import ClientError

        try:
            response = self.streams.get_records(
                ShardIterator=self._iterators[shard_id], Limit=max(1, min(self.spec.batch_size, 1000))
            )
        except ClientError as error:
            # An expired or trimmed iterator: start again from the checkpoint.
            log.warning("%s: GetRecords failed (%s); back to the checkpoint", shard_id, _code(error))
            self._iterators[shard_id] = self._iterator(shard_id)
            return 0
        records = response.get("Records", [])
        for record in records:
            self._forward(shard_id, record)
        next_iterator = response.get("NextShardIterator")
        if next_iterator is None:  # a closed shard, read to its end
            del self._iterators[shard_id]
            self.checkpoints.finish(shard_id)
        else:
            self._iterators[shard_id] = next_iterator
        if records or next_iterator is None:
            self.checkpoints.save()
        return len(records)

    def _forward(self, shard_id: str, record: Mapping[str, Any]) -> None:
        sequence_number = str(record["dynamodb"]["SequenceNumber"])
        event = pipe_event(record, stream_arn=self.spec.stream_arn, region=self.spec.region)
        if passes(self.spec.filters, event):
            self._send(render(self.spec.input_template, event), sequence_number)
            self.checkpoints.advance(shard_id, sequence_number)
            self.checkpoints.save()  # at once: a restart must not send it again
        else:
            self.checkpoints.advance(shard_id, sequence_number)

    def _send(self, body: str, sequence_number: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        pauses = doubling(MIN_POLL_SECONDS, MAX_SEND_PAUSE_SECONDS)
        while True:
            try:
                self.sqs.send_message(QueueUrl=self.spec.target_queue_url, MessageBody=body)
            except (BotoCoreError, ClientError) as error:
                reason = _code(error) if isinstance(error, ClientError) else type(error).__name__
                pause = next(pauses)
                log.warning("record %s not sent (%s); retrying in %.1f s", sequence_number, reason, pause)
                time.sleep(pause)
                continue
            log.info("record %s sent to %s", sequence_number, self.spec.target_queue_url.rsplit("/", 1)[-1])
            return


def _code(error: Any) -> str:
    return str(error.response.get("Error", {}).get("Code", "unknown"))


def doubling(first: float, longest: float) -> Iterator[float]:
    """Pauses doubling from ``first`` up to ``longest``, then staying there."""
    pause = first
    while True:
        yield pause
        pause = min(longest, pause * 2)


def idle_pauses() -> Iterator[float]:
    """The pauses after polls that found nothing: doubling from the shortest to the longest."""
    return doubling(MIN_POLL_SECONDS, MAX_POLL_SECONDS)


def run(spec: StreamWorkerSpec) -> None:
    """Forward the stream until the process is stopped."""
    import boto3  # the endpoint is explicit: moto serves DynamoDB Streams only when it is named

    session = boto3.session.Session()
    streams = session.client("dynamodbstreams", region_name=spec.region, endpoint_url=spec.endpoint_url)
    sqs = session.client("sqs", region_name=spec.region, endpoint_url=spec.endpoint_url)
    checkpoints = Checkpoints(Path(spec.state_file), spec.stream_arn)
    pipe = StreamPipe(spec, streams=streams, sqs=sqs, checkpoints=checkpoints)
    pipe.poll()
    checkpoints.save()  # from now on, a restart of this run's worker resumes
    resumed = " (resuming after its checkpoints)" if checkpoints.sequence_numbers else ""
    log.info("%s: %s%s", READY_MARKER, spec.stream_arn.rsplit("/", 3)[-3], resumed)
    pauses = idle_pauses()
    while True:
        if pipe.poll():
            pauses = idle_pauses()
        else:
            time.sleep(next(pauses))


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: stream_worker.py SPEC.json", file=sys.stderr)
        return 2
    log_to_stderr(log)
    with open(args[0], encoding="utf-8") as spec_file:
        spec = StreamWorkerSpec.from_json(spec_file.read())
    run(spec)
    return 0


if __name__ == "__main__":
    sys.exit(main())
