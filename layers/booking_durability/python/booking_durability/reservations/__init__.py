"""Reservations: venues and their seating policy, table allocation, holds (docs/reference/http-api.md#venues,
docs/reference/http-api.md#holds).

No AWS here: the logic (``catalog``, ``holding``, ``confirmation``, ``drift``) reads and writes
through the store it is handed (``ports.ReservationStore``), and
the clock comes in as ``now``. The rules
(``venues``, ``holds``, ``allocator``, ``intervals`` and ``ownership``'s record arithmetic) are
pure: what is busy is passed to them.
"""
