"""The schedules, locally: what EventBridge rules run on a clock in AWS
(docs/reference/local-stack.md#schedules).

    python scripts/devstack/scheduler.py SPEC.json

The local stack writes the spec (``schedules.py``) from the synthesized template: every enabled
``AWS::Events::Rule`` with a ``ScheduleExpression`` and a Lambda target
(``local_resources.schedule_specs``), with the period the rule's metadata gives for the stage
(EventBridge's rates are whole minutes; the local stage runs in seconds). Each scheduled function
runs in one execution environment of its own (``execution_environment.py``: its handler imported
once, with its own environment), and is invoked once a period with the event a schedule sends.
Runs of one function never overlap: the next period starts when a run ends. A run that fails
(the handler raised, timed out, or took its environment down) is logged and not repeated: the
next run is the retry, as with the rules' ``retry_attempts`` of 0; a dead environment is
replaced, as Lambda replaces one.

The handlers' own lines (their Powertools JSON) reach stdout unchanged; this process's lines go
to stderr. It stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import functools
import logging
import signal
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from devstack.api_server import ExecutionEnvironment, FunctionPool, InvocationFailed, LogRelay, RelayHandler
from devstack.schedules import Schedule, SchedulerSpec, scheduled_event
from devstack.serving import LINE_FORMAT

log = logging.getLogger("devstack.scheduler")

#: Logged (to stderr) once every scheduled function's environment is warm.
READY_MARKER = "scheduling"
#: How long a run may take beyond the function's own timeout before it counts as lost.
GRACE_SECONDS = 5.0


class Scheduler:
    """One pool of one environment per scheduled function, and a thread per schedule."""

    def __init__(self, spec: SchedulerSpec, spec_file: Path, relay: LogRelay) -> None:
        self.spec = spec
        self.stopping = threading.Event()
        self.pools: Mapping[str, FunctionPool] = {
            schedule.rule: FunctionPool(
                schedule.function,
                1,
                functools.partial(ExecutionEnvironment, spec_file, schedule.function, relay),
            )
            for schedule in spec.schedules
        }
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for pool in self.pools.values():
            pool.warm_up()
        for schedule in self.spec.schedules:
            thread = threading.Thread(target=self._run, args=(schedule,), daemon=True)
            thread.start()
            self._threads.append(thread)
        every = ", ".join(f"{s.function.name} every {s.period_seconds:g} s" for s in self.spec.schedules)
        log.info("%s: %s", READY_MARKER, every)

    def _run(self, schedule: Schedule) -> None:
        pool = self.pools[schedule.rule]
        while not self.stopping.wait(schedule.period_seconds):
            event = scheduled_event(schedule, self.spec.region, datetime.now(UTC))
            deadline = time.monotonic() + schedule.function.timeout_seconds + GRACE_SECONDS
            try:
                pool.invoke(event, deadline)
            except InvocationFailed as failure:
                log.warning(
                    "%s: the run failed (%s); the next is due in %g s",
                    schedule.rule,
                    failure.reason,
                    schedule.period_seconds,
                )

    def stop(self) -> None:
        self.stopping.set()
        for thread in self._threads:
            thread.join(timeout=GRACE_SECONDS)
        for pool in self.pools.values():
            pool.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: scheduler.py SPEC.json", file=sys.stderr)
        return 2
    relay = LogRelay(sys.stdout.buffer, sys.stderr.buffer)
    handler = RelayHandler(relay)
    handler.setFormatter(logging.Formatter(LINE_FORMAT))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False

    spec_file = Path(args[0]).resolve()
    scheduler = Scheduler(SchedulerSpec.from_json(spec_file.read_text(encoding="utf-8")), spec_file, relay)
    stop = threading.Event()

    def on_signal(_signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    scheduler.start()
    try:
        while not stop.wait(1.0):
            pass
    finally:
        scheduler.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
