"""Operator logic for the dead-letter queues (``scripts/dlq.py``), pure and I/O-free, and what
the operator scripts share on the command line.

``dead_letters`` says what a dead letter is as an operator may see it (attributes and SQS
metadata only, never a body's personal data); ``selection`` picks and groups them (reason, type,
age); ``sweep`` walks a DLQ once, acting on the selected letters and leaving the rest in place;
``redrive`` holds the actions (send to the source queue then delete; delete) and their pacing.
The SQS side is ``booking_durability.adapters.dead_letter_queues``. ``console`` holds the scripts'
common arguments (which stack) and is the only part that reads the environment.
"""
