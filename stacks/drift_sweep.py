"""The drift sweep: a small function, run on an EventBridge schedule, that ends the drift flows
nobody repeated once their replacement expired (docs/reference/http-api.md#interrupted-flows).

A confirm that replaced a hold and then failed (a 5xx, a timeout) leaves its flow open; its repeat
finishes it, and when there is none the sweep does: it releases the replacement and writes the
flow's one ``policy_drift.unrecovered`` event (reason ``interrupted``). It finds the flows through
the reservations table's sparse open-flows index, never by scanning, and every ending is
conditioned on the flow still being open, so racing sweeps and repeats write one event. DynamoDB's
TTL is no clock: it deletes when it likes, and never tells anyone.

Locally the scheduler process runs the function on the stage's own period
(``SCHEDULE_PERIOD_METADATA`` on the rule: EventBridge's rates are whole minutes).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

from aws_cdk import Duration
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from stacks.function import LAMBDAS_DIR, ServiceFunction
from stacks.reservations_table import BOOKING_ITEMS_ONLY, FREE_CLAIMED_BOOKING_ID, OPEN_FLOWS_INDEX
from stacks.runbook import AlarmKey, Page
from stacks.settings import SCHEDULE_PERIOD_METADATA, StageSettings
from stacks.watched import WatchedFunction

# Powertools service name: the "service" of the sweep's logs and EMF metrics.
DRIFT_SWEEP_SERVICE = "drift-sweep"
#: What the sweep's code calls on the reservations table's items (its index apart).
DRIFT_SWEEP_TABLE_ACTIONS = (
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
)


class DriftSweep(Construct):
    """The sweep function, its schedule, and what its failures mean (``watched``)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        settings: StageSettings,
        layers: Sequence[lambda_.ILayerVersion],
        reservations_table: dynamodb.ITable,
    ) -> None:
        super().__init__(scope, construct_id)
        sweep = settings.drift_sweep
        self.function = ServiceFunction(
            self,
            "Sweep",
            settings=settings,
            service=DRIFT_SWEEP_SERVICE,
            description="Ends the drift flows nobody repeated once their replacement expired",
            code_dir=LAMBDAS_DIR / "drift_sweep",
            layers=layers,
            environment={"RESERVATIONS_TABLE": reservations_table.table_name},
            timeout_seconds=sweep.timeout_seconds,
            memory_mb=sweep.memory_mb,
            reserved_concurrency=sweep.reserved_concurrency,
        )
        # What its code calls, and nothing else: the index read; the flow's hold, its replacement
        # and the venue read; the ending's transaction (the two holds updated, the claimed booking
        # id deleted, the event put). It never reads the table's ownership records: a replacement
        # it releases has expired, and owns nothing.
        self.function.allow(["dynamodb:Query"], f"{reservations_table.table_arn}/index/{OPEN_FLOWS_INDEX}")
        self.function.allow(DRIFT_SWEEP_TABLE_ACTIONS, reservations_table.table_arn)
        self.function.allow(
            FREE_CLAIMED_BOOKING_ID, reservations_table.table_arn, conditions=BOOKING_ITEMS_ONLY
        )
        self.schedule = self._schedule(settings)
        self.watched = WatchedFunction(
            name="Drift sweep",
            function=self.function,
            on_errors=Page(
                AlarmKey.DRIFT_SWEEP_ERRORS,
                "The drift sweep failed whole runs: drift flows interrupted after their hold was "
                "replaced stay open, their replacements held (owning nothing once expired) and "
                "their admins untold, until a run succeeds.",
            ),
            on_throttles=Page(
                AlarmKey.DRIFT_SWEEP_THROTTLES,
                "Lambda throttled the drift sweep: account concurrency is exhausted, so interrupted "
                "drift flows wait for a run that is let through.",
            ),
        )

    def _schedule(self, settings: StageSettings) -> events.Rule:
        sweep = settings.drift_sweep
        schedule = events.Rule(
            self,
            "Schedule",
            description=f"Runs the drift sweep ({settings.name})",
            schedule=events.Schedule.rate(Duration.minutes(max(1, sweep.every_seconds // 60))),
            # A run that fails is not retried: the next one, a period later, sweeps the same flows.
            targets=[targets.LambdaFunction(self.function.function, retry_attempts=0)],
        )
        cast(events.CfnRule, schedule.node.default_child).add_metadata(
            SCHEDULE_PERIOD_METADATA, sweep.every_seconds
        )
        return schedule
