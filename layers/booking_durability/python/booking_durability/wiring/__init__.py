"""Each function's dependencies, built in one module per function, on first use.

``Wired`` holds what a builder made for the life of the execution environment (warm
invocations reuse it); ``reset()`` forgets every one of them, so tests build their own.
Nothing is built at import time: settings are validated and clients made at the first call.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")

_ALL: list[Wired[Any]] = []


class Wired(Generic[T]):
    def __init__(self, build: Callable[[], T]) -> None:
        self._build = build
        self._lock = threading.Lock()
        self._value: T | None = None
        _ALL.append(self)

    def __call__(self) -> T:
        with self._lock:
            if self._value is None:
                self._value = self._build()
            return self._value

    def reset(self) -> None:
        with self._lock:
            self._value = None


def reset() -> None:
    """Forget everything every function's wiring built (tests call it between cases)."""
    for wired in _ALL:
        wired.reset()
