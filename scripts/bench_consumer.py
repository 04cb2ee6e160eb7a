"""One consumer of ``make bench``, in a process of its own: the Lambda runtime, measured.

    python scripts/bench_consumer.py SPEC.json SINK [--profile PROFILE]

``scripts/bench.py`` starts one of these per consumer (ours, ours forced serial, the Powertools
reference and its async variant), so each one imports its handler into a clean interpreter and
nothing else runs in it: moto server and the provider double are other processes. ``SPEC.json``
is a ``devstack.worker.QueueWorkerSpec``; its function is loaded as the local stack's workers load
it (its environment applied, then its handler imported: the cold start).

Everything the handler prints (its Powertools log lines and EMF metric blobs) goes to ``SINK``, a
file, so the bench can count it but its table never shows it. The process speaks to the bench
through its original stdout, one JSON line per request read on stdin:

- on start, once the handler is imported: ``{"ready": true, "import_seconds": ...}``;
- for each ``{"batch": PREFIX}``: it builds an SQS event of ``batch_size`` new jobs (booking ids
  ``PREFIX-0``…, ``deliver_at`` = now, as a job published for immediate delivery has), invokes
  the handler once and answers ``{"wall_seconds", "cpu_seconds", "failed", "aws_calls"}``.
  ``cpu_seconds`` is ``time.process_time()`` around the call: every thread of this process, so
  the consumer's send pool is included, and no server's CPU is. ``aws_calls`` counts the AWS API
  calls the invocation made (``{"dynamodb.UpdateItem": 20, ...}``), through a botocore
  ``before-call`` handler registered on every botocore session this process creates, so it sees
  the clients the handler makes for itself without touching them.

With ``{"batch": PREFIX, "profile": true}`` the invocation also runs under cProfile with a CPU
clock (``time.thread_time``): the calling thread and every task the handler hands a thread pool
(each pool thread keeps a profiler of its own, started and stopped around each task, so a
profile never spans a wait). When stdin closes, the merged profile of every such request is
written to ``PROFILE`` (``--profile PROFILE``; ``make profile`` reads it).

It exits when stdin closes.
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import hashlib
import json
import os
import pstats
import sys
import threading
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import IO, Any

from devstack.worker import LambdaContext, QueueWorkerSpec, load_handler, sqs_event


class AwsCallCounter:
    """Counts ``service.Operation`` calls made through any botocore session created after install."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: Counter[str] = Counter()

    def install(self) -> None:
        # botocore registers BUILTIN_HANDLERS on every new session: the handler's own clients
        # (and Powertools' idempotency and parameters clients) get this one too.
        from botocore import handlers

        handlers.BUILTIN_HANDLERS.append(("before-call", self._count))

    def _count(self, event_name: str, **_: Any) -> None:
        # event_name is "before-call.<service>.<Operation>"; returning None lets the call proceed.
        _event, service, operation = event_name.split(".", 2)
        with self._lock:
            self._calls[f"{service}.{operation}"] += 1

    def take(self) -> dict[str, int]:
        with self._lock:
            calls = dict(self._calls)
            self._calls.clear()
        return calls


class CpuProfile:
    """cProfile on the CPU clock, for the calling thread and the tasks of every thread pool."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._profiles: dict[int, cProfile.Profile] = {}
        self.active = False
        original: Any = ThreadPoolExecutor.submit
        profile = self

        # Pools are the handler's own (its wiring makes them): tasks are wrapped as submitted.
        def submit(executor: ThreadPoolExecutor, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
            if profile.active:
                fn = profile.wrap(fn)
            return original(executor, fn, *args, **kwargs)

        setattr(ThreadPoolExecutor, "submit", submit)  # noqa: B010 (mypy refuses a method assignment)

    def _own(self) -> cProfile.Profile:
        with self._lock:
            return self._profiles.setdefault(threading.get_ident(), cProfile.Profile(time.thread_time))

    @contextmanager
    def running(self) -> Iterator[None]:
        profiler = self._own()
        self.active = True
        profiler.enable()
        try:
            yield
        finally:
            profiler.disable()
            self.active = False

    def wrap(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def profiled(*args: Any, **kwargs: Any) -> Any:
            profiler = self._own()
            profiler.enable()
            try:
                return fn(*args, **kwargs)
            finally:
                profiler.disable()

        return profiled

    def dump(self, path: str) -> None:
        with self._lock:
            profiles = [p for p in self._profiles.values() if p.getstats()]
        if not profiles:
            return
        stats = pstats.Stats(profiles[0])
        for other in profiles[1:]:
            stats.add(other)
        stats.dump_stats(path)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def bench_job(booking_id: str) -> dict[str, Any]:
    """A booking confirmation due now, as the booking app publishes it."""
    return {
        "schema": "booking-email/v1",
        "job_id": str(uuid.uuid4()),
        "booking_id": booking_id,
        "email_type": "booking_confirmed",
        "revision": 0,
        "deliver_at": _now(),
        "recipient": {"email": "bench.guest@example.test", "name": "Bench Guest"},
        "locale": "es",
        "time_zone": "Europe/Madrid",
        "data": {
            "restaurant_name": "Casa",
            "party_size": 2,
            "starts_at": "2026-12-24T20:30:00Z",
            "reference": "R1",
        },
    }


def bench_event(prefix: str, spec: QueueWorkerSpec) -> dict[str, Any]:
    """An SQS event of ``spec.batch_size`` jobs, shaped as the event source mapping delivers it."""
    sent_at = str(int(time.time() * 1000))
    messages = []
    for i in range(spec.batch_size):
        body = json.dumps(bench_job(f"{prefix}-{i}"))
        messages.append(
            {
                "MessageId": str(uuid.uuid4()),
                "ReceiptHandle": uuid.uuid4().hex,
                "MD5OfBody": hashlib.md5(body.encode(), usedforsecurity=False).hexdigest(),
                "Body": body,
                "Attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": sent_at,
                    "SenderId": "AIDABENCH",
                    "ApproximateFirstReceiveTimestamp": sent_at,
                },
                "MessageAttributes": {
                    "email_type": {"StringValue": "booking_confirmed", "DataType": "String"},
                    "schema": {"StringValue": "booking-email/v1", "DataType": "String"},
                },
            }
        )
    return sqs_event(messages, queue_arn=spec.queue_arn, region=spec.region)


def invoke_measured(
    handler: Any, spec: QueueWorkerSpec, prefix: str, calls: AwsCallCounter, profile: CpuProfile | None = None
) -> dict[str, Any]:
    event = bench_event(prefix, spec)
    context = LambdaContext(spec.function, spec.region)
    calls.take()
    started_cpu, started = time.process_time(), time.perf_counter()
    if profile is None:
        response = handler(event, context)
    else:
        with profile.running():
            response = handler(event, context)
    wall, cpu = time.perf_counter() - started, time.process_time() - started_cpu
    failures = response.get("batchItemFailures", []) if isinstance(response, dict) else None
    return {
        "wall_seconds": wall,
        "cpu_seconds": cpu,
        "failed": len(event["Records"]) if failures is None else len(failures),
        "aws_calls": calls.take(),
    }


def _answer(channel: IO[str], document: dict[str, Any]) -> None:
    channel.write(json.dumps(document) + "\n")
    channel.flush()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("spec", metavar="SPEC.json")
    parser.add_argument("sink", metavar="SINK")
    parser.add_argument(
        "--profile", metavar="PROFILE", help="where the profile of requests that ask for one goes"
    )
    args = parser.parse_args(argv)
    with open(args.spec, encoding="utf-8") as spec_file:
        spec = QueueWorkerSpec.from_json(spec_file.read())
    profile = CpuProfile() if args.profile else None
    calls = AwsCallCounter()
    calls.install()  # before the handler's import creates any client
    # The bench's channel is the original stdout; the handler's prints go to the sink (fd 1).
    channel = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")
    sys.stdout.flush()
    sink = os.open(args.sink, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(sink, sys.stdout.fileno())
    os.close(sink)

    started = time.perf_counter()
    handler = load_handler(spec.function, spec.region)
    _answer(channel, {"ready": True, "import_seconds": time.perf_counter() - started})
    for line in sys.stdin:
        request = json.loads(line)
        profiled = profile if request.get("profile") else None
        try:
            _answer(channel, invoke_measured(handler, spec, str(request["batch"]), calls, profiled))
        except Exception:
            # What the Lambda runtime would log; the bench reports it and stops.
            _answer(channel, {"error": traceback.format_exc()})
    if profile is not None:
        profile.dump(args.profile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
