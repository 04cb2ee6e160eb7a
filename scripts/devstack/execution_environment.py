"""One Lambda execution environment, locally: the handler imported once, one event at a time.

Run by the API server (``api_server.py``) and the scheduler (``scheduler.py``) as

    python scripts/devstack/execution_environment.py SPEC.json FUNCTION_NAME FD

The process plays the Lambda runtime for one function, as ``worker.py`` does for a queue: it
applies the function's environment and imports its handler (the cold start), then takes one
event at a time from the socket ``FD`` and answers it there. Every message is one JSON line:

- to the server, once: ``{"ready": true}``, or ``{"init_error": "<type>"}`` before exiting;
- from the server: ``{"event": {...}}``; to it: ``{"response": ...}`` (the handler's result, which
  must serialize to JSON as Lambda requires) or ``{"error": "<type>"}``.

The handler's own output (its Powertools JSON lines, its EMF metric blobs) goes to stdout
untouched; this process's lines go to stderr. The server relays both, whole lines, to its own;
the local stack's supervisor prefixes them. It ends when the server closes the socket (or stops
it with a signal).
"""

from __future__ import annotations

import json
import logging
import socket
import sys
import traceback
from collections.abc import Sequence
from typing import Any, BinaryIO

from devstack.api_gateway import MAX_RESPONSE_BYTES
from devstack.serving import log_to_stderr
from devstack.worker import FunctionSpec, Handler, LambdaContext, load_handler

log = logging.getLogger("devstack.execution_environment")


def _line(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":")).encode("utf-8") + b"\n"


def _send(channel: socket.socket, message: dict[str, Any]) -> None:
    channel.sendall(_line(message))


def invoke(handler: Handler, event: dict[str, Any], function: FunctionSpec, region: str) -> bytes:
    """One invocation; the line that answers it (the response is serialized once, for its size
    check and the answer both)."""
    context = LambdaContext(function, region)
    try:
        response = handler(event, context)
    except Exception as error:
        # What the Lambda runtime logs for an unhandled error; API Gateway answers 502.
        log.error(
            "%s: invocation %s failed:\n%s",
            function.name,
            context.aws_request_id,
            traceback.format_exc().rstrip(),
        )
        return _line({"error": type(error).__name__})
    try:
        payload = json.dumps(response, separators=(",", ":"))
    except (TypeError, ValueError):
        log.error("%s: invocation %s: the response is not JSON", function.name, context.aws_request_id)
        return _line({"error": "Runtime.MarshalError"})
    encoded = payload.encode("utf-8")
    if len(encoded) > MAX_RESPONSE_BYTES:
        log.error("%s: invocation %s: the response is over 6 MB", function.name, context.aws_request_id)
        return _line({"error": "Function.ResponseSizeTooLarge"})
    return b'{"response":' + encoded + b"}\n"


def serve(channel: socket.socket, reader: BinaryIO, function: FunctionSpec, region: str) -> int:
    try:
        handler = load_handler(function, region)
    except Exception as error:
        log.error("%s: the handler failed to load:\n%s", function.name, traceback.format_exc().rstrip())
        _send(channel, {"init_error": type(error).__name__})
        return 1
    _send(channel, {"ready": True})
    for line in reader:
        request = json.loads(line)
        channel.sendall(invoke(handler, request["event"], function, region))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 3:
        print("usage: execution_environment.py SPEC.json FUNCTION_NAME FD", file=sys.stderr)
        return 2
    spec_file, function_name, descriptor = args
    log_to_stderr(log)
    # The API's spec, or the scheduler's: both name their functions and region alike.
    with open(spec_file, encoding="utf-8") as file:
        spec = json.load(file)
    function = FunctionSpec(**spec["functions"][function_name])
    with socket.socket(fileno=int(descriptor)) as channel, channel.makefile("rb") as reader:
        return serve(channel, reader, function, spec["region"])


if __name__ == "__main__":
    sys.exit(main())
