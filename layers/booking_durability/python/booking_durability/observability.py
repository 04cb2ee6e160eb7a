"""The service's one observability module: Powertools logger and metrics, tracing on demand.

Module-level ``logger`` and ``metrics`` follow the Powertools idiom; both are cheap to create
and read their service name from ``POWERTOOLS_SERVICE_NAME`` themselves. A Tracer is not cheap:
it imports the X-Ray SDK (~270 ms of cold start), so it exists only when the stage enables
tracing (``ENABLE_TRACING=true``). ``instrumented`` wraps every handler the same way.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric

from booking_durability.metric_names import NAMESPACE

logger = Logger()
metrics = Metrics(namespace=NAMESPACE)

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


def instrumented(handler: Handler) -> Handler:
    """Every function's handler wrapper: Lambda context in the logs (never the event, which may
    carry guest data), the Tracer when enabled, and the invocation's metrics flushed at the end.

    Metrics are flushed only when there are some: dead letters are emitted at once with their
    own dimension (``count_with_dimension``), so an invocation that only dead-lettered leaves the
    main set empty, and Powertools' empty-metrics warning would be misleading.
    """
    logged = logger.inject_lambda_context(log_event=False)(handler)
    wrapped: Callable[..., Any] | None = None

    @functools.wraps(handler)
    def run(event: Any, context: Any) -> Any:
        nonlocal wrapped
        if wrapped is None:
            active = tracer()
            wrapped = logged if active is None else active.capture_lambda_handler(logged)
        try:
            return wrapped(event, context)
        finally:
            with _metrics_lock:
                if metrics.metric_set:
                    metrics.flush_metrics()
                else:
                    metrics.clear_metrics()

    return run  # type: ignore[return-value]
