"""Admin notifications of policy drift (docs/reference/notifications.md#channels): the notifier's logic.

``delivery`` takes one drift event from the notifications queue to the admin, through a signed
webhook (``webhook``) or, with none configured, an email job; ``failure_policy`` decides, without
I/O, whether a failed webhook is retried by the queue or dead-lettered; ``consumer`` is the
Lambda's batch loop.
"""
