"""``make bench``: what the email consumer itself costs, as ratios against baselines of the same run.

The consumer is measured through its real entry point only (``lambdas/email_consumer/handler.py``,
configured by its environment), with AWS and the provider in processes of their own, so the
figures are the consumer's and not the emulator's:

- moto server and the Resend double (``scripts/devstack/http_provider.py``, 100 ms per send) are
  started as the local stack starts them (``local_stack``, ``devstack.supervisor``); the queues
  and the deliveries table are made in moto from the synthesized ``local`` template
  (``devstack.local_resources``), plus a provider secret and the Powertools idempotency table.
- Four consumers, each in a process of its own (``scripts/bench_consumer.py``: a clean import
  state, a CPU clock that counts that consumer only, settings read once per process as in Lambda):
  ``ours`` (the email consumer function with the ``local`` stage's environment, switched to Resend
  at the double, ``SEND_CONCURRENCY`` 10 as in prod), ``ours_serial`` (the same, concurrency 1),
  and the Powertools reference consumer (``scripts/bench_reference.py``) with ``BatchProcessor``
  (``powertools``) and with ``AsyncBatchProcessor`` (``powertools_async``).
- Each consumer is warmed up with one batch (its cold start is excluded), then gets batches of
  ``BATCH`` new jobs (``deliver_at`` = now) in ``ROUNDS`` rounds, in a rotating order so drift in
  the machine's load falls on all of them alike: one batch a round for the one-at-a-time
  consumers, ``CONCURRENT_REPEATS`` for the others. Figures are medians over batches.
- The handlers' output (Powertools log lines at the stage's INFO level, EMF metric blobs) goes to
  a file per consumer, never to this table. Metrics stay on: turning them off
  (``POWERTOOLS_METRICS_DISABLED``) or raising the log level would leave out work the function
  does in AWS and flatter ours.

Figures (``.local/bench.json``, or ``$LOCAL_DIR/bench.json``, holds them and their inputs):

- consumer_cpu_ms_per_email: the consumer process's CPU time (``time.process_time()`` around the
  handler call: all its threads, the send pool included) per email; the same for the others.
- cpu_ms_per_email_vs_powertools: ours / the reference (target: at most 1.5, while ours also
  renders, leases and emits metrics). The same work costs more CPU done one email at a time
  (short bursts between waits) than in one burst, so each mode is compared with its own:
  ours / AsyncBatchProcessor (both 10 sends at once; also ``..._vs_powertools_async``) and ours
  with ``SEND_CONCURRENCY=1`` / BatchProcessor (both one at a time;
  ``serial_cpu_ms_per_email_vs_powertools``). The figure is the larger of the two.
- batch_seconds_vs_powertools_async: wall-clock seconds per batch, ours / the async reference,
  the emulator included: moto spends far longer on ours' conditional UpdateItem than on the
  reference's PutItem (in AWS neither costs the consumer CPU), so moto's own CPU per email is
  shown next to it (from ``/proc``).
- consumer_speedup_vs_serial: ours with ``SEND_CONCURRENCY=1`` / ours, wall clock per batch
  (target: at least 5).
- ddb_writes_per_email / ddb_reads_per_email: ours' DynamoDB requests per delivered email,
  counted through botocore ``before-call`` events in the consumer's process (target: at most 2
  writes, 0 reads); ddb_requests_per_email gives them for every consumer.
- delivery_lag_ms_median: ours' ``EmailDeliveryLagMs`` metric, read back from its EMF blobs.
- cold_import_ratio_vs_boto3: each handler's cold import time over ``import boto3`` alone, both
  in fresh interpreters that see what a function sees in Lambda and nothing else: the functions'
  CPython version when this machine has one (else this interpreter's), the dependencies layer's
  packages built for this machine (``.build/bench/runtime``), boto3, and the domain layer, both
  layers with their bytecode as they ship. Taking turns round by round, with every server
  stopped; the median of each round's ratio. The development environment would add what Lambda
  never loads (httpx, for one, imports its command-line tool when click and rich are installed).

Both consumers pay one thing AWS would not charge them: moto's server (werkzeug's) closes the
connection after every response, so each AWS call opens a new loopback connection.

Every process the bench starts is stopped when it ends, also on Ctrl-C, SIGTERM or an error.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import os
import platform
import pstats
import re
import select
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import IO, Any

from local_stack import (
    HOST,
    LOCAL_CREDENTIALS,
    REGION,
    LocalConfig,
    LocalStack,
    child_environment,
    servers,
)

from devstack.local_resources import TemplateError
from devstack.supervisor import Component, Output, StackFailed, Supervisor, port_accepts
from devstack.worker import QueueWorkerSpec
from layer_assets import build as layer_build
from stacks.settings import LAMBDA_PYTHON_VERSION

ROOT = Path(__file__).resolve().parent.parent
BATCH = 10
ROUNDS = 9
COMPARISON_RUNS = 3  # the consumers' comparison, from fresh processes each time; figures are medians
CONCURRENT_REPEATS = 3  # batches per round of the consumers that send a batch at once
LATENCY_MS = 100
SEND_CONCURRENCY = 10  # the prod stage's; a batch of 10 goes out at once
IMPORT_RUNS = 11  # rounds, each importing boto3 and every handler once
COLD_IMPORT_TARGET = 2.0  # each function's cold import, over `import boto3`
CPU_RATIO_TARGET = 1.0  # ours' CPU per email over the reference's, in each mode
BATCH_RATIO_TARGET = 1.0  # ours' batch wall clock over the async reference's
#: ``--profile``: the consumers profiled (both send a batch at once), batches each, rows shown.
PROFILED = ("ours", "powertools_async")
PROFILE_BATCHES = 20
PROFILE_TOP = 30
# What a function's interpreter can import, built for this machine (see runtime_path).
RUNTIME_DIR = ROOT / ".build" / "bench" / "runtime"
API_KEY = "re_bench"
READY_TIMEOUT_SECONDS = 90.0
INVOCATION_TIMEOUT_SECONDS = 60.0
WRITES = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}
READS = {"GetItem", "Query", "Scan", "BatchGetItem", "TransactGetItems"}
# One line per answer of the provider double: "POST /emails -> 200 idempotency_key=<dedupe key>".
# What a failure message shows of a handler's log line besides its level and message.
_LOG_DETAILS = ("location", "provider_status", "failure_reason", "error_type", "outcome")
_ANSWER_LINE = re.compile(r"POST /emails -> (?P<status>\d{3}) idempotency_key=(?P<key>\S+)")


class BenchFailed(RuntimeError):
    """The bench could not measure what it says; the message says why."""


@dataclasses.dataclass(frozen=True)
class ConsumerUnderTest:
    label: str
    title: str
    #: Variables set on top of the email consumer function's own environment.
    environment: Mapping[str, str]
    #: ``module.attribute`` under scripts/ for the reference; None: the email consumer's handler.
    reference_handler: str | None = None
    #: Batches in a row each round: a concurrent batch takes a quarter of a second, so those get
    #: more samples for the same time (per-batch CPU varies by a fifth on a busy 2-core machine).
    batches_per_round: int = 1


@dataclasses.dataclass(frozen=True)
class BenchStack:
    """Where the servers are, and what the consumers need from them."""

    env: Mapping[str, str]  # every local process's: the endpoint, dummy credentials
    provider_url: str
    consumer: QueueWorkerSpec  # the email consumer's mapping, from the template
    emulator_pid: int  # moto server's
    secret_arn: str
    reservations_table: str


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def running_stack(workdir: Path, output: Output, stop: threading.Event) -> Iterator[BenchStack]:
    """moto server and the provider double on free loopback ports, with the template's resources."""
    config = LocalConfig(local_dir=workdir, aws_port=free_port())
    env = child_environment(config)
    provider_port = free_port()
    supervisor = Supervisor(cwd=str(ROOT), output=output)
    try:
        for component in servers(config, env):
            if component.name == "aws":  # not the SMTP sink: the bench sends through Resend's API
                supervisor.start(component)
        supervisor.start(
            Component(
                "provider",
                [
                    *(sys.executable, "-m", "devstack.http_provider", "--host", HOST),
                    *("--port", str(provider_port), "--latency-ms", str(LATENCY_MS), "--api-key", API_KEY),
                ],
                env=env,
                ready=port_accepts(HOST, provider_port),
            )
        )
        stack = LocalStack(config, output, stop)
        template = stack.synthesize(env)  # meanwhile the servers boot
        if template is None:  # only when ``stop`` is set
            raise BenchFailed("stopped while synthesizing")
        supervisor.wait_ready(READY_TIMEOUT_SECONDS, stop)
        specs = {spec.name: spec for spec in stack.create_resources(template)}
        if "email_worker" not in specs:
            raise BenchFailed(f"the template has no email queue consumer (mappings: {sorted(specs)})")
        if stack.names is None:
            raise BenchFailed("the local stack named none of its resources")
        yield BenchStack(
            env=env,
            provider_url=f"http://{HOST}:{provider_port}",
            emulator_pid=supervisor.pids()["aws"],
            consumer=specs["email_worker"],
            reservations_table=stack.names.tables["reservations"].name,
            **_reference_resources(config.aws_endpoint_url),
        )
    finally:
        supervisor.stop_all()


def _reference_resources(endpoint: str) -> dict[str, str]:
    """The provider secret both consumers read (the reference keeps its idempotency records in
    the consumer's own deliveries table)."""
    import boto3

    session = boto3.session.Session(
        aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        region_name=REGION,
    )
    secret = session.client("secretsmanager", endpoint_url=endpoint).create_secret(
        Name="bench-provider", SecretString=json.dumps({"api_key": API_KEY})
    )
    return {"secret_arn": secret["ARN"]}


def consumers_under_test(stack: BenchStack) -> list[ConsumerUnderTest]:
    provider = {
        "EMAIL_PROVIDER": "resend",
        "RESEND_BASE_URL": stack.provider_url,
        "PROVIDER_SECRET_ARN": stack.secret_arn,
    }
    reference = provider
    concurrent, serial = {"SEND_CONCURRENCY": str(SEND_CONCURRENCY)}, {"SEND_CONCURRENCY": "1"}
    return [
        ConsumerUnderTest("ours", "ours", {**provider, **concurrent}, batches_per_round=CONCURRENT_REPEATS),
        ConsumerUnderTest("ours_serial", "ours, SEND_CONCURRENCY=1", {**provider, **serial}),
        ConsumerUnderTest("powertools", "Powertools BatchProcessor", reference, "bench_reference.handler"),
        ConsumerUnderTest(
            "powertools_async",
            "Powertools AsyncBatchProcessor",
            {**reference, **concurrent},
            "bench_reference.async_handler",
            batches_per_round=CONCURRENT_REPEATS,
        ),
    ]


class ConsumerProcess:
    """A running ``bench_consumer.py``: one request, one JSON answer."""

    def __init__(
        self,
        consumer: ConsumerUnderTest,
        spec: QueueWorkerSpec,
        workdir: Path,
        env: Mapping[str, str],
        profile: Path | None = None,
        run: str = "",
    ):
        self.consumer = consumer
        name = f"{consumer.label}{run}"
        self.sink = workdir / f"{name}.stdout"
        self.stderr_file = workdir / f"{name}.stderr"
        spec_file = workdir / f"{name}.json"
        spec_file.write_text(spec.to_json(), encoding="utf-8")
        with self.stderr_file.open("wb") as stderr:
            self.process = subprocess.Popen(
                [
                    *(sys.executable, "scripts/bench_consumer.py", str(spec_file), str(self.sink)),
                    *(("--profile", str(profile)) if profile is not None else ()),
                ],
                cwd=ROOT,
                env=dict(env),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                # Its own session: a terminal's Ctrl-C reaches the bench, which stops it.
                start_new_session=True,
            )

    def read(self, timeout: float) -> dict[str, Any]:
        stdout = self.process.stdout
        if stdout is None:
            raise RuntimeError("the consumer was started without a stdout pipe")
        readable, _, _ = select.select([stdout], [], [], timeout)
        line = stdout.readline() if readable else ""
        if not line:
            raise BenchFailed(
                f"consumer {self.consumer.label} stopped answering "
                f"(exit code {self.process.poll()}); its stderr:\n{self.stderr_tail()}"
            )
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise BenchFailed(f"consumer {self.consumer.label} raised:\n{answer['error']}")
        return answer

    def run_batch(self, prefix: str, *, profile: bool = False) -> dict[str, Any]:
        stdin = self.process.stdin
        if stdin is None:
            raise RuntimeError("the consumer was started without a stdin pipe")
        stdin.write(json.dumps({"batch": prefix, "profile": profile}) + "\n")
        stdin.flush()
        answer = self.read(INVOCATION_TIMEOUT_SECONDS)
        if answer["failed"]:
            raise BenchFailed(
                f"consumer {self.consumer.label}: {answer['failed']} of {BATCH} records failed in batch "
                f"{prefix}; its last log lines:\n{self.log_tail()}\nits stderr:\n{self.stderr_tail()}"
            )
        return answer

    def log_tail(self, lines: int = 5) -> str:
        """The handler's last log lines (Powertools JSON), one short line each."""
        tail = []
        with contextlib.suppress(OSError):
            for line in self.sink.read_text(encoding="utf-8", errors="replace").splitlines()[::-1]:
                with contextlib.suppress(ValueError):
                    entry = json.loads(line)
                    if isinstance(entry, dict) and "message" in entry:
                        details = {k: v for k, v in entry.items() if k in _LOG_DETAILS}
                        tail.append(f"  {entry.get('level')} {entry['message']} {details or ''}".rstrip())
                if len(tail) == lines:
                    break
        return "\n".join(tail[::-1])

    def stderr_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.stderr_file.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def close(self) -> None:
        """End of input ends the process; one that hangs has its group killed."""
        with contextlib.suppress(OSError, ValueError):
            if self.process.stdin is not None:
                self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


def consumer_spec(stack: BenchStack, consumer: ConsumerUnderTest) -> QueueWorkerSpec:
    """The email consumer function's mapping, its environment, memory and timeout from the
    template; for the reference, its handler swapped for the reference's."""
    function = stack.consumer.function
    if consumer.reference_handler is not None:
        function = dataclasses.replace(
            function,
            name=f"{function.name}-{consumer.label}",
            handler=consumer.reference_handler,
            code_dir=str(ROOT / "scripts"),
        )
    function = dataclasses.replace(function, environment={**function.environment, **consumer.environment})
    return dataclasses.replace(stack.consumer, batch_size=BATCH, function=function)


def process_cpu_seconds(pid: int) -> float | None:
    """Another process's CPU time (user + system, all its threads), from ``/proc``; None where
    there is no ``/proc`` (the emulator's figures are then left out)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # from field 3 (state) on; the name may hold spaces
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def measure_consumers(stack: BenchStack, workdir: Path, run: int = 0) -> dict[str, dict[str, Any]]:
    """Start each consumer, warm it up, then run the rounds; every consumer's process ends before
    this returns. ``run`` tells the comparison's runs apart (batch prefixes, output files)."""
    processes: list[ConsumerProcess] = []
    results: dict[str, dict[str, Any]] = {}
    try:
        for consumer in consumers_under_test(stack):
            process = ConsumerProcess(
                consumer, consumer_spec(stack, consumer), workdir, stack.env, run=f"-run{run}"
            )
            processes.append(process)
            ready = process.read(READY_TIMEOUT_SECONDS)
            warmup = process.run_batch(f"{consumer.label}-m{run}warmup")  # the cold start, not measured
            results[consumer.label] = {
                "title": consumer.title,
                "import_seconds": ready["import_seconds"],
                "first_batch_seconds": warmup["wall_seconds"],
                "first_batch_cpu_seconds": warmup["cpu_seconds"],
                "first_batch_aws_calls": warmup["aws_calls"],
                "batches": [],
            }
        for round_ in range(ROUNDS):
            shift = round_ % len(processes)
            for process in processes[shift:] + processes[:shift]:
                label = process.consumer.label
                for repeat in range(process.consumer.batches_per_round):
                    emulator_started = process_cpu_seconds(stack.emulator_pid)
                    answer = process.run_batch(f"{label}-m{run}r{round_}b{repeat}")
                    emulator_ended = process_cpu_seconds(stack.emulator_pid)
                    if emulator_started is not None and emulator_ended is not None:
                        answer["emulator_cpu_seconds"] = emulator_ended - emulator_started
                    results[label]["batches"].append(answer)
    finally:
        for process in processes:
            process.close()
    for process in processes:
        results[process.consumer.label]["stdout"] = handler_output(process.sink)
    return results


def handler_output(sink: Path) -> dict[str, Any]:
    """What a consumer printed: log lines, EMF blobs, and its delivery-lag metric values."""
    logs = emf = 0
    lag: list[float] = []
    for line in sink.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            document = json.loads(line)
        except ValueError:
            logs += 1
            continue
        if isinstance(document, dict) and "_aws" in document:
            emf += 1
            value = document.get("EmailDeliveryLagMs")
            lag.extend(value if isinstance(value, list) else [] if value is None else [value])
        else:
            logs += 1
    return {"log_lines": logs, "emf_blobs": emf, "delivery_lag_ms": lag}


def check_deliveries(server_log: Path, runs: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """Every email each consumer was given, in every run, reached the double once, and nothing
    was refused."""
    delivered: dict[str, set[str]] = {label: set() for label in runs[0]}
    refused = []
    for line in server_log.read_text(encoding="utf-8", errors="replace").splitlines():
        match = _ANSWER_LINE.search(line)
        if match is None:
            continue
        if match["status"] != "200":
            refused.append(line)
        delivered.setdefault(match["key"].split("-", 1)[0], set()).add(match["key"])
    # Every batch measured, plus the warm-up, of every run.
    expected = {
        label: sum(BATCH * (len(results[label]["batches"]) + 1) for results in runs) for label in runs[0]
    }
    counts = {label: len(keys) for label, keys in delivered.items()}
    if refused or counts != expected:
        raise BenchFailed(
            f"the provider double should have delivered {expected} emails and delivered {counts}; "
            f"refused: {refused[:5]}"
        )
    return counts


def _per_email(calls: Sequence[Mapping[str, int]], service: str, operations: set[str]) -> float:
    """Calls of ``service`` among ``operations`` per email, over the measured batches."""
    total = sum(
        n for batch in calls for name, n in batch.items() if name in {f"{service}.{op}" for op in operations}
    )
    return total / (BATCH * len(calls))


def consumer_figures(results: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
    """The figures of the measured batches (medians), and each consumer's own summary."""
    for result in results.values():
        batches = result["batches"]
        calls = [r["aws_calls"] for r in batches]
        result["cpu_ms_per_email"] = statistics.median(r["cpu_seconds"] for r in batches) * 1000 / BATCH
        result["batch_seconds"] = statistics.median(r["wall_seconds"] for r in batches)
        emulator = [r["emulator_cpu_seconds"] for r in batches if "emulator_cpu_seconds" in r]
        result["emulator_cpu_ms_per_email"] = (
            statistics.median(emulator) * 1000 / BATCH if len(emulator) == len(batches) else None
        )
        result["ddb_writes_per_email"] = _per_email(calls, "dynamodb", WRITES)
        result["ddb_reads_per_email"] = _per_email(calls, "dynamodb", READS)
        names = sorted({name for c in calls for name in c})
        result["aws_calls_per_email"] = {
            name: sum(c.get(name, 0) for c in calls) / (BATCH * len(calls)) for name in names
        }
    cpu = {label: result["cpu_ms_per_email"] for label, result in results.items()}
    seconds = {label: result["batch_seconds"] for label, result in results.items()}
    # The same work costs more CPU done one email at a time (short bursts between waits) than in
    # one burst: each consumer is compared with the reference that runs in its own mode.
    concurrent = cpu["ours"] / cpu["powertools_async"]
    one_at_a_time = cpu["ours_serial"] / cpu["powertools"]
    lag = results["ours"]["stdout"]["delivery_lag_ms"]
    return {
        "consumer_cpu_ms_per_email": cpu["ours"],
        "serial_cpu_ms_per_email": cpu["ours_serial"],
        "powertools_cpu_ms_per_email": cpu["powertools"],
        "powertools_async_cpu_ms_per_email": cpu["powertools_async"],
        "cpu_ms_per_email_vs_powertools": max(concurrent, one_at_a_time),
        "cpu_ms_per_email_vs_powertools_async": concurrent,
        "serial_cpu_ms_per_email_vs_powertools": one_at_a_time,
        "concurrent_seconds": seconds["ours"],
        "serial_seconds": seconds["ours_serial"],
        "powertools_seconds": seconds["powertools"],
        "powertools_async_seconds": seconds["powertools_async"],
        "batch_seconds_vs_powertools_async": seconds["ours"] / seconds["powertools_async"],
        "consumer_speedup_vs_serial": seconds["ours_serial"] / seconds["ours"],
        "ddb_writes_per_email": results["ours"]["ddb_writes_per_email"],
        "ddb_reads_per_email": results["ours"]["ddb_reads_per_email"],
        "ddb_requests_per_email": {
            label: {"writes": r["ddb_writes_per_email"], "reads": r["ddb_reads_per_email"]}
            for label, r in results.items()
        },
        "emulator_cpu_ms_per_email": {label: r["emulator_cpu_ms_per_email"] for label, r in results.items()},
        "delivery_lag_ms_median": statistics.median(lag) if lag else None,
    }


def profile_consumers(stack: BenchStack, workdir: Path, out_dir: Path) -> dict[str, Path]:
    """Each of ``PROFILED`` warmed up, then ``PROFILE_BATCHES`` batches under its CPU profiler;
    the profile files, by label."""
    consumers = {consumer.label: consumer for consumer in consumers_under_test(stack)}
    written: dict[str, Path] = {}
    for label in PROFILED:
        consumer = consumers[label]
        profile = out_dir / f"profile-{label}.pstats"
        process = ConsumerProcess(consumer, consumer_spec(stack, consumer), workdir, stack.env, profile)
        try:
            process.read(READY_TIMEOUT_SECONDS)
            process.run_batch(f"{label}-warmup")
            for batch in range(PROFILE_BATCHES):
                process.run_batch(f"{label}-p{batch}", profile=True)
        finally:
            process.close()
        if not profile.exists():
            raise BenchFailed(f"consumer {label} wrote no profile")
        written[label] = profile
    return written


def _function_name(where: tuple[str, int, str]) -> str:
    filename, line, name = where
    if filename == "~":  # a builtin: its name says it all
        return name
    for marker in ("site-packages/", "python/booking_durability/", "/scripts/", "/lib/python"):
        if marker in filename:
            filename = filename.split(marker, 1)[1]
            break
    return f"{filename}:{line}({name})"


def profile_report(profile: Path, emails: int, top: int = PROFILE_TOP) -> str:
    """The profile's top entries by cumulative and by own CPU time, per email."""
    stats: dict[Any, Any] = pstats.Stats(str(profile)).stats  # type: ignore[attr-defined]
    entries = [(where, calls, own, cumulative) for where, (_, calls, own, cumulative, _) in stats.items()]
    total = sum(own for _, _, own, _ in entries)
    lines = [f"{total * 1000 / emails:.2f} ms of CPU per email, over {emails} emails"]
    for title, column in (("cumulative", 3), ("own", 2)):
        lines.append(f"\nby {title} time: ms/email  calls/email  function")
        for entry in sorted(entries, key=lambda e: e[column], reverse=True)[:top]:
            where, calls, own, cumulative = entry
            value = cumulative if column == 3 else own
            lines.append(f"  {value * 1000 / emails:8.3f}  {calls / emails:11.1f}  {_function_name(where)}")
    return "\n".join(lines) + "\n"


def reservation_figures(stack: BenchStack, holds: int = 5) -> dict[str, Any]:
    """DynamoDB round trips of the reservation logic against the same moto server, counted
    through botocore events: per hold without contention, per confirm without and with drift."""
    import boto3

    from booking_durability.adapters.dynamodb import DynamoTable
    from booking_durability.adapters.reservations_table import ReservationsTable
    from booking_durability.observability import logger
    from booking_durability.reservations import catalog, holding
    from booking_durability.reservations.confirmation import ConfirmRequest, confirm_with_policy_retry
    from booking_durability.reservations.holds import HoldRequest
    from booking_durability.reservations.venues import VenueConfig

    client = boto3.session.Session(region_name=REGION).client(
        "dynamodb",
        endpoint_url=stack.env["AWS_ENDPOINT_URL"],
        aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )
    calls: list[str] = []
    client.meta.events.register("before-call.dynamodb", lambda model, **_: calls.append(model.name))
    store = ReservationsTable(DynamoTable(stack.reservations_table, client))
    logger.setLevel("ERROR")  # the table is the output: no log lines in it

    def now() -> datetime:
        return datetime.now(UTC)

    def venue(buffer: int) -> VenueConfig:
        tables = [{"id": f"T{i:02d}", "capacity": 2 + i % 4, "zone": "main"} for i in range(20)]
        policy = {
            "slot_minutes": 15,
            "default_duration_minutes": 90,
            "buffer_minutes": buffer,
            "max_party_size": 8,
            "hold_ttl_seconds": 600,
            "allow_combinations": False,
            "bookable_zones": ["main"],
        }
        return VenueConfig.model_validate({"tables": tables, "policy": policy})

    def counted(action: Any, trips: list[int]) -> Any:
        calls.clear()
        result = action()
        trips.append(len(calls))
        return result

    catalog.save_venue(store, "bench", venue(10), None, now())
    day = (now() + timedelta(days=7)).replace(hour=19, minute=0, second=0, microsecond=0)
    hold_trips: list[int] = []
    confirm_trips: list[int] = []
    drift_trips: list[int] = []
    for i in range(holds):
        request = HoldRequest(venue_id="bench", party_size=2, starts_at=day + timedelta(minutes=15 * i))
        hold = counted(lambda r=request: holding.hold_tables(store, r, now), hold_trips)
        confirm = ConfirmRequest(hold.hold_id, f"bk_bench_{i}", f"key-{i}")
        counted(lambda c=confirm: confirm_with_policy_retry(store, c, now), confirm_trips)
    tomorrow = day + timedelta(days=1)
    for i in range(holds):
        request = HoldRequest(venue_id="bench", party_size=3, starts_at=tomorrow + timedelta(minutes=15 * i))
        hold = holding.hold_tables(store, request, now)
        catalog.save_venue(store, "bench", venue(11 + i), None, now())  # the policy drifts
        confirm = ConfirmRequest(hold.hold_id, f"bk_drift_{i}")
        body = counted(lambda c=confirm: confirm_with_policy_retry(store, c, now), drift_trips)
        if body["policy_drift"] is None:
            raise BenchFailed("the drift bench met no drift")
    return {
        "hold_round_trips": statistics.median(hold_trips),
        "confirm_round_trips": statistics.median(confirm_trips),
        "confirm_round_trips_with_drift": statistics.median(drift_trips),
        "reservation_round_trips": {"holds": hold_trips, "confirms": confirm_trips, "drift": drift_trips},
    }


@dataclasses.dataclass(frozen=True)
class ImportEnvironment:
    """An interpreter and the ``PYTHONPATH`` that show it what a function sees in Lambda."""

    python: Path
    version: str
    python_path: str


def import_environment() -> ImportEnvironment:
    """What a function sees in Lambda, and nothing of the development environment: the runtime's
    CPython version when this machine has it (else this interpreter's), the dependencies layer's
    requirements installed and trimmed as the layer is, for this machine, the boto3 the Lambda
    runtime brings (the version development pins), and the domain layer; both layers with their
    bytecode, as they ship. Built once, then only when inputs change."""
    pins = (ROOT / "requirements-dev.txt").read_text(encoding="utf-8").splitlines()
    boto3 = next((line.split("#")[0].strip() for line in pins if line.startswith("boto3==")), None)
    if boto3 is None:
        raise BenchFailed("requirements-dev.txt pins no boto3 version")
    requirements = RUNTIME_DIR.with_name("runtime-requirements.txt")
    text = (
        layer_build.REQUIREMENTS.read_text(encoding="utf-8")
        + f"# What the Lambda runtime provides, at the version development pins\n{boto3}\n"
    )
    requirements.parent.mkdir(parents=True, exist_ok=True)
    if not requirements.exists() or requirements.read_text(encoding="utf-8") != text:
        requirements.write_text(text, encoding="utf-8")
    compiler = layer_build.bytecode_compiler(LAMBDA_PYTHON_VERSION)
    if compiler is None:
        compiler = layer_build.BytecodeCompiler(Path(sys.executable))
        version, platforms = layer_build.host_target()
    else:
        version, platforms = layer_build.host_target(LAMBDA_PYTHON_VERSION)
    try:
        dependencies = layer_build.ensure_dependencies_layer(
            requirements=requirements,
            layer_dir=RUNTIME_DIR,
            python_version=version,
            platforms=platforms,
            compiler=compiler,
            # boto3 and its dependencies stand for the runtime's: nothing is left out.
            dropped=(),
        )
    except subprocess.CalledProcessError as failure:
        raise BenchFailed(f"could not install the functions' packages for this machine: {failure}") from None
    domain = layer_build.ensure_domain_layer(
        layer_dir=RUNTIME_DIR.with_name("domain"), python_version=version, compiler=compiler
    )
    python_path = os.pathsep.join([str(dependencies.layer_dir / "python"), str(domain.layer_dir / "python")])
    return ImportEnvironment(python=compiler.python, version=version, python_path=python_path)


def _import_seconds(environment: ImportEnvironment, statement: str, setup: str = "pass") -> float:
    """Seconds ``statement`` takes in a fresh interpreter that imports only from the environment's
    path (``-S``: no site-packages, no editable-install finder)."""
    code = f"import time; {setup}; t = time.perf_counter(); {statement}; print(time.perf_counter() - t)"
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTHON")}
    env["PYTHONPATH"] = environment.python_path
    command = [str(environment.python), "-S", "-c", code]
    out = subprocess.run(command, capture_output=True, text=True, check=False, cwd=ROOT, env=env)
    if out.returncode != 0:
        raise BenchFailed(f"`{statement}` failed:\n{out.stderr[-2000:]}")
    return float(out.stdout.strip().splitlines()[-1])


def cold_import_figures() -> dict[str, Any]:
    """Each handler's module loaded from its file, as the Lambda runtime loads it, in a fresh
    interpreter that sees only what the function ships with; ``import boto3`` alone, in the same
    environment, is the baseline.

    The imports take turns, one run each a round, so a change in the machine's load falls on all
    of them alike; a handler's ratio is the median of its runs over the baseline's run of the same
    round. A first round is not counted (it also writes the handler files' own bytecode)."""
    environment = import_environment()
    statements = {"boto3": ("import boto3", "pass")}
    for folder in sorted((ROOT / "lambdas").iterdir()):
        source = folder / "handler.py"
        if source.exists():
            locate = f"spec = util.spec_from_file_location('handler', {str(source)!r})"
            statements[folder.name] = (
                "spec.loader.exec_module(util.module_from_spec(spec))",
                f"from importlib import util; {locate}",
            )
    runs: dict[str, list[float]] = {name: [] for name in statements}
    for _ in range(IMPORT_RUNS + 1):
        for name, (statement, setup) in statements.items():
            runs[name].append(_import_seconds(environment, statement, setup))
    baseline = runs.pop("boto3")[1:]
    handlers = {name: seconds[1:] for name, seconds in runs.items()}
    return {
        "boto3_import_seconds": statistics.median(baseline),
        "handler_import_seconds": {name: statistics.median(seconds) for name, seconds in handlers.items()},
        "cold_import_ratio_vs_boto3": {
            name: statistics.median(mine / base for mine, base in zip(seconds, baseline, strict=True))
            for name, seconds in handlers.items()
        },
        "cold_import_runs": {"boto3": baseline, **handlers},
        "cold_import_python": environment.version,
    }


def _zipped_size(folder: Path, keep: Callable[[Path], bool]) -> tuple[int, int]:
    """Bytes of ``folder``'s files that ``keep`` keeps, zipped (deflate, as an asset is uploaded)
    and unzipped."""
    files = sorted(path for path in folder.rglob("*") if path.is_file() and keep(path.relative_to(folder)))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in files:
            archive.write(path, path.relative_to(folder).as_posix())
    return buffer.tell(), sum(path.stat().st_size for path in files)


def asset_figures() -> dict[str, Any]:
    """What Lambda is sent: each layer (``make layer``'s folders, whole) and each function's code
    (its folder without caches, as ``stacks/function.py`` excludes them), zipped."""
    layers = {"dependencies": layer_build.LAYER_DIR, "domain": layer_build.DOMAIN_LAYER_DIR}
    missing = [str(folder) for folder in layers.values() if not (folder / "python").is_dir()]
    if missing:
        raise BenchFailed(f"layers not built (make layer): {', '.join(missing)}")

    def no_cache(relative: Path) -> bool:
        return "__pycache__" not in relative.parts and relative.suffix != ".pyc"

    sizes = {"layer": {name: _zipped_size(folder, lambda _: True) for name, folder in layers.items()}}
    sizes["function"] = {
        folder.name: _zipped_size(folder, no_cache)
        for folder in sorted((ROOT / "lambdas").iterdir())
        if (folder / "handler.py").is_file()
    }
    return {
        "asset_bytes_zipped": {
            kind: {name: z for name, (z, _) in found.items()} for kind, found in sizes.items()
        },
        "asset_bytes_unzipped": {
            kind: {name: u for name, (_, u) in found.items()} for kind, found in sizes.items()
        },
    }


def _commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, cwd=ROOT
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _verdict(ok: bool) -> str:
    return "ok" if ok else "MISS"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def _ratio(figures: Mapping[str, Any], name: str) -> str:
    """A ratio as the median of the comparison's runs, the runs' own values beside it."""
    runs = " ".join(f"{value:.2f}" for value in figures.get(f"{name}_runs", []))
    return f"{figures[name]:.2f}x" + (f" ({runs})" if runs else "")


def table(figures: Mapping[str, Any]) -> list[tuple[str, str, str, str]]:
    """The printed table: (figure, measured, target, verdict) rows; indented rows are its inputs.
    The consumers' figures are medians of the comparison's runs, each run's value in brackets."""
    ddb, emulator = figures["ddb_requests_per_email"], figures["emulator_cpu_ms_per_email"]
    cpu_ratio = figures["cpu_ms_per_email_vs_powertools"]
    batch_ratio = figures["batch_seconds_vs_powertools_async"]
    rows = [
        ("consumer_cpu_ms_per_email", f"{figures['consumer_cpu_ms_per_email']:.2f} ms", "", ""),
        ("  ours, SEND_CONCURRENCY=1", f"{figures['serial_cpu_ms_per_email']:.2f} ms", "", ""),
        (
            "  Powertools AsyncBatchProcessor",
            f"{figures['powertools_async_cpu_ms_per_email']:.2f} ms",
            "",
            "",
        ),
        ("  Powertools BatchProcessor", f"{figures['powertools_cpu_ms_per_email']:.2f} ms", "", ""),
        (
            "cpu_ms_per_email_vs_powertools",
            _ratio(figures, "cpu_ms_per_email_vs_powertools"),
            f"<= {CPU_RATIO_TARGET:g}x",
            _verdict(cpu_ratio <= CPU_RATIO_TARGET),
        ),
        (
            "  concurrent: ours / AsyncBatchProcessor",
            _ratio(figures, "cpu_ms_per_email_vs_powertools_async"),
            "",
            "",
        ),
        (
            "  one at a time: ours / BatchProcessor",
            _ratio(figures, "serial_cpu_ms_per_email_vs_powertools"),
            "",
            "",
        ),
        (
            "batch_seconds_vs_powertools_async",
            _ratio(figures, "batch_seconds_vs_powertools_async"),
            f"<= {BATCH_RATIO_TARGET:g}x",
            _verdict(batch_ratio <= BATCH_RATIO_TARGET),
        ),
        ("  ours, batch of 10", _ms(figures["concurrent_seconds"]), "", ""),
        ("  Powertools async, batch of 10", _ms(figures["powertools_async_seconds"]), "", ""),
    ]
    if emulator["ours"] is not None and emulator["powertools_async"] is not None:
        rows.append(
            (
                "  moto's CPU per email: ours / theirs",
                f"{emulator['ours']:.1f} / {emulator['powertools_async']:.1f} ms",
                "",
                "",
            )
        )
    speedup = figures["consumer_speedup_vs_serial"]
    # DynamoDB requests are counted, not timed: every run must keep to the target, not the median.
    writes = max(figures["ddb_writes_per_email_runs"])
    reads = max(figures["ddb_reads_per_email_runs"])
    rows += [
        (
            "consumer_speedup_vs_serial",
            _ratio(figures, "consumer_speedup_vs_serial"),
            ">= 5x",
            _verdict(speedup >= 5),
        ),
        ("  ours, SEND_CONCURRENCY=1, batch of 10", _ms(figures["serial_seconds"]), "", ""),
        ("ddb_writes_per_email (most of a run)", f"{writes:.2f}", "<= 2", _verdict(writes <= 2)),
        ("ddb_reads_per_email (most of a run)", f"{reads:.2f}", "0", _verdict(reads == 0)),
    ]
    for label in ("powertools", "powertools_async"):
        writes, reads = ddb[label]["writes"], ddb[label]["reads"]
        rows.append((f"  {label}: writes, reads", f"{writes:.2f}, {reads:.2f}", "", ""))
    rows += [
        (
            "hold_round_trips (POST /v1/holds)",
            f"{figures['hold_round_trips']:g}",
            "<= 3",
            _verdict(figures["hold_round_trips"] <= 3),
        ),
        (
            "confirm_round_trips (no drift)",
            f"{figures['confirm_round_trips']:g}",
            "<= 2",
            _verdict(figures["confirm_round_trips"] <= 2),
        ),
        (
            "confirm_round_trips_with_drift (recovered)",
            f"{figures['confirm_round_trips_with_drift']:g}",
            "<= 6",
            _verdict(figures["confirm_round_trips_with_drift"] <= 6),
        ),
    ]
    lag = figures["delivery_lag_ms_median"]
    rows += [
        ("EmailDeliveryLagMs of ours", "-" if lag is None else f"{lag:.0f} ms", "", ""),
        (
            f"import boto3 (CPython {figures['cold_import_python']})",
            _ms(figures["boto3_import_seconds"]),
            "baseline",
            "",
        ),
    ]
    for name, ratio in figures["cold_import_ratio_vs_boto3"].items():
        seconds = figures["handler_import_seconds"][name]
        rows.append(
            (
                f"cold_import_ratio_vs_boto3[{name}]",
                f"{ratio:.2f}x ({_ms(seconds)})",
                f"<= {COLD_IMPORT_TARGET:g}x",
                _verdict(ratio <= COLD_IMPORT_TARGET),
            )
        )
    for kind, sizes in figures["asset_bytes_zipped"].items():
        for name, size in sizes.items():
            unzipped = figures["asset_bytes_unzipped"][kind][name]
            rows.append(
                (f"asset_bytes_zipped[{kind}:{name}]", f"{_mb(size)} ({_mb(unzipped)} unzipped)", "", "")
            )
    return rows


def _mb(size: int) -> str:
    return f"{size / 1e6:.2f} MB"


def print_table(rows: Sequence[tuple[str, str, str, str]], out: IO[str]) -> None:
    width = max(len(r[0]) for r in rows)
    measured = max(18, *(len(r[1]) for r in rows))
    out.write(f"{'figure':<{width}}  {'measured':>{measured}}  {'target':<8}  verdict\n")
    for name, value, target, verdict in rows:
        out.write(f"{name:<{width}}  {value:>{measured}}  {target:<8}  {verdict}".rstrip() + "\n")


def _stop_on_signal(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def median_of_runs(runs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The comparison's figures over its runs: each number the median of the runs' (and, in
    ``<name>_runs``, the runs' own values, in order), each mapping the same, key by key."""
    combined: dict[str, Any] = {}
    for name, first in runs[0].items():
        values = [run[name] for run in runs]
        if isinstance(first, dict):
            combined[name] = median_of_runs(values)
        elif isinstance(first, int | float) and not isinstance(first, bool):
            combined[name] = statistics.median(values)
            combined[f"{name}_runs"] = values
        else:
            combined[name] = first if all(value == first for value in values) else values
    return combined


def run(workdir: Path) -> dict[str, Any]:
    stop = threading.Event()
    server_log = workdir / "servers.log"
    runs: list[dict[str, dict[str, Any]]] = []
    with server_log.open("w", encoding="utf-8") as log:
        output = Output(log)
        with running_stack(workdir, output, stop) as stack:
            for number in range(COMPARISON_RUNS):
                runs.append(measure_consumers(stack, workdir, number))
            reservations = reservation_figures(stack)
    delivered = check_deliveries(server_log, runs)
    comparison = median_of_runs([consumer_figures(results) for results in runs])
    figures: dict[str, Any] = {**comparison, **reservations, **cold_import_figures(), **asset_figures()}
    figures["consumers"] = runs
    figures["inputs"] = {
        "comparison_runs": COMPARISON_RUNS,
        "batch": BATCH,
        "rounds": ROUNDS,
        "concurrent_batches_per_round": CONCURRENT_REPEATS,
        "provider_latency_ms": LATENCY_MS,
        "send_concurrency": SEND_CONCURRENCY,
        "import_runs": IMPORT_RUNS,
        "import_environment": f"{layer_build.REQUIREMENTS.relative_to(ROOT)} + boto3 + the domain layer",
        "emails_delivered": delivered,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    figures["generated_at"] = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    figures["commit"] = _commit()
    return figures


def output_dir() -> Path:
    out_dir = Path(os.environ.get("LOCAL_DIR", ROOT / ".local"))
    if not out_dir.is_absolute():
        out_dir = ROOT / out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    return out_dir


def run_profile(workdir: Path) -> None:
    """``--profile``: the consumers' hot path, printed and written beside the bench's figures."""
    stop = threading.Event()
    out_dir = output_dir()
    with (
        (workdir / "servers.log").open("w", encoding="utf-8") as log,
        running_stack(workdir, Output(log), stop) as stack,
    ):
        profiles = profile_consumers(stack, workdir, out_dir)
    for label, profile in profiles.items():
        report = profile_report(profile, PROFILE_BATCHES * BATCH)
        text = profile.with_suffix(".txt")
        text.write_text(report, encoding="utf-8")
        print(f"== {label} ({profile})")
        print(report)
    print(f"wrote {', '.join(str(p.with_suffix('.txt')) for p in profiles.values())} and their .pstats")


def main(argv: Sequence[str] | None = None) -> int:
    usage = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    usage.add_argument(
        "--profile",
        action="store_true",
        help="profile the consumers' hot path (CPU time per email) instead of measuring (make profile)",
    )
    options = usage.parse_args(argv)
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _stop_on_signal)
    workdir = Path(tempfile.mkdtemp(prefix="bench-"))
    try:
        if options.profile:
            run_profile(workdir)
            shutil.rmtree(workdir, ignore_errors=True)
            return 0
        figures = run(workdir)
    except (BenchFailed, StackFailed, TemplateError) as failure:
        print(f"bench failed: {failure}\n(servers' and consumers' output kept in {workdir})", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        shutil.rmtree(workdir, ignore_errors=True)
        print("bench interrupted; every process it started is stopped", file=sys.stderr)
        return 130
    shutil.rmtree(workdir, ignore_errors=True)
    print_table(table(figures), sys.stdout)
    out_dir = output_dir()
    (out_dir / "bench.json").write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")
    print(f"wrote {out_dir / 'bench.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
