"""Reservations: venues and their seating policy, table allocation, holds (CONTRACT §1).

Everything here is pure: no AWS, no I/O, no clock. Callers pass ``now`` and what is busy.
"""
