"""What the local scheduler (``scheduler.py``) runs: each scheduled rule's target and period, as
the local stack reads them from the synthesized template, and the event a schedule sends."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from devstack.worker import LOCAL_ACCOUNT_ID, FunctionSpec


@dataclass(frozen=True)
class Schedule:
    """One rule's target: which function, how often."""

    rule: str  # the rule's logical id
    rule_arn: str
    period_seconds: float
    function: FunctionSpec


@dataclass(frozen=True)
class SchedulerSpec:
    region: str
    schedules: Sequence[Schedule]

    def to_json(self) -> str:
        # "functions" and "region" as the API's spec has them: execution_environment.py reads both.
        functions = {schedule.function.name: asdict(schedule.function) for schedule in self.schedules}
        document = {
            "region": self.region,
            "schedules": [asdict(s) for s in self.schedules],
            "functions": functions,
        }
        return json.dumps(document, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> SchedulerSpec:
        raw = json.loads(text)
        schedules = [
            Schedule(**{**schedule, "function": FunctionSpec(**schedule["function"])})
            for schedule in raw["schedules"]
        ]
        return cls(region=raw["region"], schedules=schedules)


def scheduled_event(schedule: Schedule, region: str, now: datetime) -> dict[str, Any]:
    """The event an EventBridge schedule hands its target."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": LOCAL_ACCOUNT_ID,
        "time": now.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "region": region,
        "resources": [schedule.rule_arn],
        "detail": {},
    }
