"""``make bench``: what the email consumer costs, as ratios against baselines of the same run.

- consumer_speedup_vs_serial: a batch of 10 against the HTTP provider double answering in
  100 ms, delivered by this consumer vs the same consumer forced serial (SEND_CONCURRENCY=1);
  serial seconds / concurrent seconds (target: at least 5).
- ddb_writes_per_email / ddb_reads_per_email: DynamoDB requests per delivered email on the
  happy path, counted through botocore events (target: at most 2 writes, 0 reads).
- cold_import_ratio_vs_boto3: each handler's cold import time in a fresh interpreter over
  ``import boto3`` alone (medians of several runs).

AWS is moto in-process; the provider is the loopback double. Prints a table and writes the
same figures to .local/bench.json (or $LOCAL_DIR/bench.json).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "layers" / "booking_durability" / "python"), str(ROOT / "scripts"), str(ROOT)]

BATCH = 10
LATENCY_SECONDS = 0.1
ROUNDS = 5
IMPORT_RUNS = 7
WRITES = {"PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "TransactWriteItems"}
READS = {"GetItem", "Query", "Scan", "BatchGetItem", "TransactGetItems"}


def _job(booking_id: str) -> dict[str, Any]:
    return {
        "schema": "booking-email/v1",
        "job_id": str(uuid.uuid4()),
        "booking_id": booking_id,
        "email_type": "booking_confirmed",
        "deliver_at": "2026-01-01T00:00:00Z",
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


def _event(prefix: str) -> dict[str, Any]:
    records = []
    for i in range(BATCH):
        body = json.dumps(_job(f"{prefix}_{i}"))
        records.append(
            {
                "messageId": str(uuid.uuid4()),
                "receiptHandle": uuid.uuid4().hex,
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "eventSource": "aws:sqs",
            }
        )
    return {"Records": records}


def consumer_figures() -> dict[str, float]:
    import boto3
    from moto import mock_aws

    from booking_durability.adapters import aws
    from booking_durability.adapters.deliveries_table import DeliveryLedger
    from booking_durability.adapters.email_queue import EmailQueue
    from booking_durability.emails.consumer import consume_batch
    from booking_durability.emails.delivery import EmailDelivery
    from booking_durability.emails.providers import build_provider
    from booking_durability.settings import ConsumerSettings
    from devstack.http_provider import HttpProviderDouble

    os.environ.update(
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",  # noqa: S106 - moto accepts any credentials
        AWS_DEFAULT_REGION="eu-west-1",
    )
    os.environ.pop("AWS_ENDPOINT_URL", None)
    with mock_aws(), HttpProviderDouble(latency_seconds=LATENCY_SECONDS, api_key="re_bench") as double:
        aws.client.cache_clear()
        sqs, ddb = boto3.client("sqs"), boto3.client("dynamodb")
        queue = sqs.create_queue(QueueName="email")["QueueUrl"]
        dlq = sqs.create_queue(QueueName="email-dlq")["QueueUrl"]
        ddb.create_table(
            TableName="deliveries",
            BillingMode="PAY_PER_REQUEST",
            KeySchema=[
                {"AttributeName": "booking_id", "KeyType": "HASH"},
                {"AttributeName": "email_key", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "booking_id", "AttributeType": "S"},
                {"AttributeName": "email_key", "AttributeType": "S"},
            ],
        )

        def delivery(concurrency: int) -> EmailDelivery:
            settings = ConsumerSettings.model_validate(
                {
                    "STAGE": "bench",
                    "DELIVERIES_TABLE": "deliveries",
                    "EMAIL_QUEUE_URL": queue,
                    "EMAIL_DLQ_URL": dlq,
                    "SEND_CONCURRENCY": concurrency,
                    "EMAIL_PROVIDER": "resend",
                    "RESEND_BASE_URL": double.url,
                }
            )
            provider = build_provider(settings, {"api_key": "re_bench"})
            return EmailDelivery(
                settings=settings,
                ledger=DeliveryLedger("deliveries"),
                queue=EmailQueue(queue),
                dlq=EmailQueue(dlq),
                provider=lambda: provider,
            )

        calls: list[str] = []
        aws.client("dynamodb").meta.events.register(
            "before-call.dynamodb", lambda model, **_: calls.append(model.name)
        )
        concurrent, serial = delivery(BATCH), delivery(1)
        consume_batch(_event("warmup"), None, concurrent)  # connections, templates, moto warm
        timings: dict[str, list[float]] = {"concurrent": [], "serial": []}
        for round_ in range(ROUNDS):
            for name, subject in (("concurrent", concurrent), ("serial", serial)):
                event = _event(f"{name}{round_}")
                calls.clear()
                started = time.perf_counter()
                response = consume_batch(event, None, subject)
                timings[name].append(time.perf_counter() - started)
                if response["batchItemFailures"]:
                    raise SystemExit(f"bench batch failed: {response}")
                if name == "concurrent" and round_ == 0:
                    writes = sum(c in WRITES for c in calls) / BATCH
                    reads = sum(c in READS for c in calls) / BATCH
        delivered = len(double.deliveries)
        expected = BATCH * (1 + 2 * ROUNDS)
        if delivered != expected:
            raise SystemExit(f"bench expected {expected} deliveries, the double saw {delivered}")
    serial_s, concurrent_s = statistics.median(timings["serial"]), statistics.median(timings["concurrent"])
    return {
        "serial_seconds": serial_s,
        "concurrent_seconds": concurrent_s,
        "consumer_speedup_vs_serial": serial_s / concurrent_s,
        "ddb_writes_per_email": writes,
        "ddb_reads_per_email": reads,
    }


def _import_seconds(statement: str, path: list[str]) -> float:
    code = (
        "import sys, time; sys.path[:0] = "
        + repr(path)
        + "; t = time.perf_counter(); "
        + statement
        + "; print(time.perf_counter() - t)"
    )
    runs = []
    for _ in range(IMPORT_RUNS):
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
        )
        runs.append(float(out.stdout.strip().splitlines()[-1]))
    return statistics.median(runs)


def cold_import_figures() -> dict[str, Any]:
    package = str(ROOT / "layers" / "booking_durability" / "python")
    baseline = _import_seconds("import boto3", [])
    handlers = {}
    for folder in sorted((ROOT / "lambdas").iterdir()):
        if (folder / "handler.py").exists():
            handlers[folder.name] = _import_seconds("import handler", [str(folder), package])
    return {
        "boto3_import_seconds": baseline,
        "handler_import_seconds": handlers,
        "cold_import_ratio_vs_boto3": {name: seconds / baseline for name, seconds in handlers.items()},
    }


def _commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, cwd=ROOT
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main() -> int:
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")  # the table is the output, not the logs
    figures: dict[str, Any] = {**consumer_figures(), **cold_import_figures()}
    figures["generated_at"] = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    figures["commit"] = _commit()
    rows = [
        ("consumer_speedup_vs_serial", f"{figures['consumer_speedup_vs_serial']:.2f}x", ">= 5x"),
        ("  serial batch of 10 (median)", f"{figures['serial_seconds'] * 1000:.0f} ms", ""),
        ("  concurrent batch of 10 (median)", f"{figures['concurrent_seconds'] * 1000:.0f} ms", ""),
        ("ddb_writes_per_email", f"{figures['ddb_writes_per_email']:.2f}", "<= 2"),
        ("ddb_reads_per_email", f"{figures['ddb_reads_per_email']:.2f}", "0"),
        ("import boto3 (median)", f"{figures['boto3_import_seconds'] * 1000:.0f} ms", "baseline"),
    ]
    for name, ratio in figures["cold_import_ratio_vs_boto3"].items():
        seconds = figures["handler_import_seconds"][name]
        rows.append((f"cold_import_ratio_vs_boto3[{name}]", f"{ratio:.2f}x ({seconds * 1000:.0f} ms)", ""))
    width = max(len(r[0]) for r in rows)
    print(f"{'figure':<{width}}  {'measured':>18}  target")
    for name, value, target in rows:
        print(f"{name:<{width}}  {value:>18}  {target}")
    out_dir = Path(os.environ.get("LOCAL_DIR", ROOT / ".local"))
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "bench.json").write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")
    print(f"wrote {out_dir / 'bench.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
