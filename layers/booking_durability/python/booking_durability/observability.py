"""The service's one observability module: Powertools logger and metrics, tracing on demand.

Module-level ``logger`` and ``metrics`` follow the Powertools idiom; both are cheap to create.
A Tracer is not: it imports the X-Ray SDK (~270 ms of cold start), so it exists only when the
stage enables tracing (``ENABLE_TRACING=true``).
"""

from __future__ import annotations

import functools
import os
import threading
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric

NAMESPACE = "BookingDurability"

logger = Logger(service=os.environ.get("POWERTOOLS_SERVICE_NAME", "booking-durability"))
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", NAMESPACE))

# Dead letters are emitted at once with their own dimension (single_metric), so an invocation
# that only dead-lettered leaves the main set empty: Powertools' warning would be misleading.
warnings.filterwarnings("ignore", message="No application metrics to publish", category=UserWarning)

# Powertools Metrics keeps one dict per invocation; records are handled on worker threads.
_metrics_lock = threading.Lock()


def count(name: str, value: float = 1, unit: str | MetricUnit = MetricUnit.Count) -> None:
    """Add to a metric flushed with the invocation's EMF blob (thread-safe)."""
    with _metrics_lock:
        metrics.add_metric(name=name, unit=unit, value=value)


def count_with_dimension(name: str, dimension: str, value: str) -> None:
    """A metric with its own low-cardinality dimension (e.g. ``failure_reason``), emitted at once."""
    with (
        _metrics_lock,
        single_metric(
            name=name,
            unit=MetricUnit.Count,
            value=1,
            namespace=metrics.namespace,
            default_dimensions=metrics.default_dimensions,
        ) as metric,
    ):
        metric.add_dimension(name=dimension, value=value)
        if metrics.service:  # like every other metric of the function, so alarms can filter on it
            metric.add_dimension(name="service", value=metrics.service)


def tracing_enabled() -> bool:
    return os.environ.get("ENABLE_TRACING", "false").lower() == "true"


@functools.cache
def tracer() -> Any:
    """The Powertools Tracer, created on first use and only when tracing is enabled."""
    if not tracing_enabled():
        return None
    from aws_lambda_powertools import Tracer

    return Tracer()


Handler = TypeVar("Handler", bound=Callable[..., Any])


def traced(handler: Handler) -> Handler:
    """Wrap a Lambda handler with the Tracer on its first call, only if tracing is enabled."""
    wrapped: Callable[..., Any] | None = None

    @functools.wraps(handler)
    def run(event: Any, context: Any) -> Any:
        nonlocal wrapped
        if wrapped is None:
            active = tracer()
            wrapped = handler if active is None else active.capture_lambda_handler(handler)
        return wrapped(event, context)

    return run  # type: ignore[return-value]
