"""The operator's tools behind ``scripts/``: none of this is in a Lambda asset.

The hold importer and backfill (``migration`` plans, ``hold_migration`` writes), the stack's
outputs as the tools find them (``stack_lookup``), and the dead-letter queues' tool
(``scripts/dlq.py``), whose logic is pure and I/O-free:

``dead_letters`` says what a dead letter is as an operator may see it (attributes and SQS
metadata only, never a body's personal data); ``selection`` picks and groups them (reason, type,
age); ``sweep`` walks a DLQ once, acting on the selected letters and leaving the rest in place;
``redrive`` holds the actions (send to the source queue then delete; delete) and their pacing.
The SQS side is ``operations.dead_letter_queues``. ``console`` holds the scripts'
common arguments (which stack) and is the only part that reads the environment.
"""
