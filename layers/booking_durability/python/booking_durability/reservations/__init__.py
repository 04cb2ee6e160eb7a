"""Reservations: venues and their seating policy, table allocation, holds (CONTRACT §1).

No AWS here: the logic (``catalog``, ``holding``, ``confirmation``, ``migration``) reads and writes
through the store it is handed (``ports.ReservationStore``, ``migration.MigrationStore``), and
the clock comes in as ``now``. The rules
(``venues``, ``holds``, ``allocator``, ``intervals`` and ``ownership``'s record arithmetic) are
pure: what is busy is passed to them.
"""
